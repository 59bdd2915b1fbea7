package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/redis-keda/redis-keda/e2e/internal/proc"
)

// Reasons the stand-in reports in pod status.
const (
	// ReasonImageNotRunnable: the image is not a project image, so the
	// stand-in has no local binary for it.
	ReasonImageNotRunnable = "ImageNotRunnableByStandIn"
	// ReasonBinaryNotFound: a project image whose command[0] has no binary
	// in BinDir (or no command at all).
	ReasonBinaryNotFound = "StandInBinaryNotFound"
	// ReasonConfigError: env could not be resolved yet (missing secret or
	// configmap); retried every second, as the kubelet does.
	ReasonConfigError = "CreateContainerConfigError"
)

// podRunner runs one pod's containers. It exists for every pod UID the
// stand-in has seen until the pod is gone from the API.
type podRunner struct {
	n    *Node
	pod  *corev1.Pod
	skip bool

	termOnce  sync.Once
	termCh    chan struct{} // deletion requested
	grace     time.Duration // set before termCh closes
	forceOnce sync.Once
	forceCh   chan struct{} // pod gone: kill now, no status

	startTime   metav1.Time
	initialized bool
	conds       map[corev1.PodConditionType]corev1.PodCondition // last reported, for stable transition times
	containers  []*container                                    // init containers first, then main ones

	procMu sync.Mutex
	procs  []*proc.Process // every started container process, for Node.Signal
}

type container struct {
	spec     corev1.Container
	init     bool
	binary   string
	proc     *proc.Process
	started  metav1.Time
	finished metav1.Time
	exitCode int
	reason   string // terminated reason
	waiting  *corev1.ContainerStateWaiting
}

func newRunner(n *Node, pod *corev1.Pod, skip bool) *podRunner {
	return &podRunner{n: n, pod: pod.DeepCopy(), skip: skip, termCh: make(chan struct{}), forceCh: make(chan struct{})}
}

// terminate asks the runner to stop the pod: with force, without waiting for
// the grace period and without reporting status.
func (r *podRunner) terminate(grace time.Duration, force bool) {
	r.termOnce.Do(func() {
		r.grace = grace
		close(r.termCh)
	})
	if force {
		r.forceOnce.Do(func() { close(r.forceCh) })
	}
}

// signal sends sig to every running container process of the pod and says
// how many got it.
func (r *podRunner) signal(sig syscall.Signal) (int, error) {
	r.procMu.Lock()
	defer r.procMu.Unlock()
	n := 0
	for _, p := range r.procs {
		if p.Exited() {
			continue
		}
		if err := p.Signal(sig); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (r *podRunner) key() string { return r.pod.Namespace + "/" + r.pod.Name }

// imageRepository strips digest and tag: "ghcr.io/a/redis-keda:v1" → "ghcr.io/a/redis-keda".
func imageRepository(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	slash := strings.LastIndexByte(image, '/')
	if colon := strings.LastIndexByte(image, ':'); colon > slash {
		image = image[:colon]
	}
	return image
}

func (n *Node) runnable(image string) bool {
	repo := imageRepository(image)
	for _, img := range n.opts.Images {
		if repo == img || strings.HasSuffix(repo, "/"+img) {
			return true
		}
	}
	return false
}

// binaryFor maps a project container to a local binary, or says why not.
func (n *Node) binaryFor(c *corev1.Container) (string, string, string) {
	if !n.runnable(c.Image) {
		return "", ReasonImageNotRunnable, fmt.Sprintf(
			"container %q: image %q is not run by the e2e node stand-in (no container runtime here); it runs only images of repository %s, mapping command[0] to a binary in %s",
			c.Name, c.Image, strings.Join(n.opts.Images, ", "), n.opts.BinDir)
	}
	if len(c.Command) == 0 {
		return "", ReasonBinaryNotFound, fmt.Sprintf(
			"container %q: the node stand-in needs an explicit command (e.g. [\"/jobs\"]) to pick a binary in %s", c.Name, n.opts.BinDir)
	}
	bin := filepath.Join(n.opts.BinDir, filepath.Base(c.Command[0]))
	st, err := os.Stat(bin)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return "", ReasonBinaryNotFound, fmt.Sprintf(
			"container %q: command %q maps to %s, which is not an executable file", c.Name, c.Command[0], bin)
	}
	return bin, "", ""
}

// run is the pod's whole life on the stand-in.
func (r *podRunner) run() {
	if r.skip {
		return
	}
	ctx := r.n.ctx
	pod := r.pod
	for i := range pod.Spec.InitContainers {
		r.containers = append(r.containers, &container{spec: pod.Spec.InitContainers[i], init: true})
	}
	for i := range pod.Spec.Containers {
		r.containers = append(r.containers, &container{spec: pod.Spec.Containers[i]})
	}
	r.startTime = metav1.Now()

	for _, c := range r.containers {
		bin, reason, msg := r.n.binaryFor(&c.spec)
		if reason != "" {
			r.refuse(reason, msg)
			return
		}
		c.binary = bin
		c.waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	r.patch(corev1.PodPending, "", "")

	envs, ok := r.resolveAllEnv(ctx)
	if !ok {
		return
	}

	workDir := filepath.Join(r.n.opts.LogDir, "work", pod.Namespace+"_"+pod.Name)
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		r.refuse("StandInSetupFailed", err.Error())
		return
	}
	defer os.RemoveAll(workDir)
	logFile, err := os.OpenFile(r.n.LogPath(pod.Namespace, pod.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.refuse("StandInSetupFailed", err.Error())
		return
	}
	defer logFile.Close()

	exited := make(chan *container, len(r.containers))
	var waiters sync.WaitGroup
	defer waiters.Wait()
	start := func(c *container) error {
		env := append([]string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + workDir,
			"HOSTNAME=" + pod.Name,
		}, envs[c]...)
		lookup := envLookup(envs[c])
		var args []string
		for _, a := range append(c.spec.Command[1:], c.spec.Args...) {
			args = append(args, expand(a, lookup))
		}
		p, err := proc.Start(proc.Spec{
			Name: r.key() + "/" + c.spec.Name, Path: c.binary, Args: args, Env: env,
			Dir: workDir, Stdout: logFile, Stderr: logFile,
		})
		if err != nil {
			return err
		}
		c.proc, c.started, c.waiting = p, metav1.Now(), nil
		r.procMu.Lock()
		r.procs = append(r.procs, p)
		r.procMu.Unlock()
		waiters.Go(func() {
			<-p.Done()
			exited <- c
		})
		return nil
	}

	// Init containers: one after the other, each must exit 0.
	for _, c := range r.containers {
		if !c.init {
			continue
		}
		if err := start(c); err != nil {
			r.startFailed(c, err)
			return
		}
		r.patch(corev1.PodPending, "", "")
		if !r.waitFor(ctx, exited, 1) {
			return
		}
		if c.exitCode != 0 {
			r.finish()
			return
		}
	}
	r.initialized = true

	main := 0
	for _, c := range r.containers {
		if c.init {
			continue
		}
		if err := start(c); err != nil {
			r.startFailed(c, err)
			r.killAll(0)
			r.drain(exited)
			return
		}
		main++
	}
	r.n.logf("pod %s running (%d containers)", r.key(), main)
	r.patch(corev1.PodRunning, "", "")
	if r.waitFor(ctx, exited, main) {
		r.finish()
	}
}

// waitFor waits until count containers have exited, recording their exit
// and patching status after each. On deletion it kills the pod, reports it
// terminal and deletes it; on Stop it kills the pod. Either way it returns
// false, and true once count containers exited on their own.
func (r *podRunner) waitFor(ctx context.Context, exited chan *container, count int) bool {
	for count > 0 {
		select {
		case c := <-exited:
			r.record(c)
			count--
			if count > 0 {
				r.patch(corev1.PodRunning, "", "")
			}
		case <-r.termCh:
			r.n.logf("pod %s: deletion requested, stopping (grace %s)", r.key(), r.grace)
			r.killAll(r.grace)
			r.drain(exited)
			select {
			case <-r.forceCh:
			default:
				r.finish()
				r.n.forceDelete(r.pod)
			}
			return false
		case <-ctx.Done():
			r.killAll(min(r.n.opts.StopGrace, podGrace(r.pod)))
			r.drain(exited)
			return false
		}
	}
	return true
}

func podGrace(pod *corev1.Pod) time.Duration {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

// killAll sends SIGTERM to every running container's process group, waits
// up to grace (cut short if the pod is force-deleted), then SIGKILLs them.
func (r *podRunner) killAll(grace time.Duration) {
	var running []*proc.Process
	for _, c := range r.containers {
		if c.proc != nil && !c.proc.Exited() {
			running = append(running, c.proc)
			_ = c.proc.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for _, p := range running {
		select {
		case <-p.Done():
		case <-deadline.C:
		case <-r.forceCh:
		}
	}
	for _, p := range running {
		if err := p.Stop(0); err != nil {
			r.n.logf("pod %s: %v", r.key(), err)
		}
	}
}

// drain records every started container that has not been recorded yet
// (all of them have exited after killAll).
func (r *podRunner) drain(exited chan *container) {
	for _, c := range r.containers {
		if c.proc != nil && c.finished.IsZero() {
			r.record(<-exited)
		}
	}
}

func (r *podRunner) record(c *container) {
	c.finished = metav1.Now()
	c.exitCode = c.proc.ExitCode()
	switch {
	case c.exitCode == 0:
		c.reason = "Completed"
	default:
		c.reason = "Error"
	}
	r.n.logf("pod %s: container %s exited %d", r.key(), c.spec.Name, c.exitCode)
}

// finish reports the terminal phase: Succeeded if every started container
// exited 0, else Failed.
func (r *podRunner) finish() {
	phase := corev1.PodSucceeded
	for _, c := range r.containers {
		if c.proc == nil && !c.init {
			phase = corev1.PodFailed
		}
		if c.proc != nil && c.exitCode != 0 {
			phase = corev1.PodFailed
		}
	}
	r.patch(phase, "", "")
}

func (r *podRunner) startFailed(c *container, err error) {
	c.finished, c.exitCode, c.reason = metav1.Now(), 128, "StartError"
	c.waiting = nil
	r.n.logf("pod %s: %v", r.key(), err)
	r.patch(corev1.PodFailed, "StartError", err.Error())
}

// refuse marks the pod Failed without running anything.
func (r *podRunner) refuse(reason, msg string) {
	now := metav1.Now()
	for _, c := range r.containers {
		c.waiting = nil
		c.finished, c.exitCode, c.reason = now, 128, reason
	}
	r.n.logf("pod %s refused: %s: %s", r.key(), reason, msg)
	r.patch(corev1.PodFailed, reason, msg)
}

// resolveAllEnv resolves every container's env, retrying each second while a
// referenced secret or configmap is missing (status: CreateContainerConfigError).
func (r *podRunner) resolveAllEnv(ctx context.Context) (map[*container][]string, bool) {
	lastMsg := ""
	for {
		envs := map[*container][]string{}
		var err error
		for _, c := range r.containers {
			var vars []corev1.EnvVar
			vars, err = r.n.resolveEnv(ctx, r.pod, &c.spec)
			if err != nil {
				err = fmt.Errorf("container %s: %w", c.spec.Name, err)
				break
			}
			for _, v := range vars {
				envs[c] = append(envs[c], v.Name+"="+v.Value)
			}
		}
		if err == nil {
			return envs, true
		}
		if msg := err.Error(); msg != lastMsg {
			lastMsg = msg
			r.n.logf("pod %s: %s (retrying)", r.key(), msg)
			for _, c := range r.containers {
				c.waiting = &corev1.ContainerStateWaiting{Reason: ReasonConfigError, Message: msg}
			}
			r.patch(corev1.PodPending, "", "")
		}
		select {
		case <-r.termCh:
			r.finish()
			select {
			case <-r.forceCh:
			default:
				r.n.forceDelete(r.pod)
			}
			return nil, false
		case <-ctx.Done():
			return nil, false
		case <-time.After(time.Second):
		}
	}
}

func envLookup(env []string) func(string) (string, bool) {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// patch sends the pod's status as a strategic merge patch to pods/status.
func (r *podRunner) patch(phase corev1.PodPhase, reason, message string) {
	st := r.status(phase, reason, message)
	body, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		r.n.logf("pod %s: marshal status: %v", r.key(), err)
		return
	}
	ctx, cancel := context.WithTimeout(r.n.ctx, 10*time.Second)
	defer cancel()
	_, err = r.n.client.CoreV1().Pods(r.pod.Namespace).Patch(ctx, r.pod.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status")
	if err != nil && !apierrors.IsNotFound(err) && !errors.Is(err, context.Canceled) {
		r.n.logf("pod %s: patch status %s: %v", r.key(), phase, err)
	}
}

func (r *podRunner) status(phase corev1.PodPhase, reason, message string) corev1.PodStatus {
	now := metav1.Now()
	terminal := phase == corev1.PodSucceeded || phase == corev1.PodFailed
	allRunning := !terminal
	var initStatuses, statuses []corev1.ContainerStatus
	for _, c := range r.containers {
		cs := corev1.ContainerStatus{
			Name:    c.spec.Name,
			Image:   c.spec.Image,
			ImageID: "standin://" + c.binary,
			Started: ptr.To(false),
		}
		switch {
		case !c.finished.IsZero():
			cs.State.Terminated = &corev1.ContainerStateTerminated{
				ExitCode: int32(c.exitCode), Reason: c.reason, StartedAt: c.started, FinishedAt: c.finished,
			}
			if c.reason != "Completed" && c.reason != "Error" {
				cs.State.Terminated.Message = message
			}
		case c.proc != nil:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: c.started}
			cs.Ready, cs.Started = true, ptr.To(true) // no probes: Ready once started
		default:
			w := c.waiting
			if w == nil {
				w = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
			}
			cs.State.Waiting = w
		}
		if c.proc != nil {
			cs.ContainerID = "standin://" + strconv.Itoa(c.proc.PID())
		}
		if c.init {
			initStatuses = append(initStatuses, cs)
			continue
		}
		if cs.State.Running == nil {
			allRunning = false
		}
		statuses = append(statuses, cs)
	}
	cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		c := corev1.PodCondition{Type: t, Status: s, Reason: reason, LastTransitionTime: now}
		if prev, ok := r.conds[t]; ok && prev.Status == s {
			c.LastTransitionTime = prev.LastTransitionTime
		}
		if r.conds == nil {
			r.conds = map[corev1.PodConditionType]corev1.PodCondition{}
		}
		r.conds[t] = c
		return c
	}
	readyReason := ""
	switch {
	case terminal:
		readyReason = "PodCompleted"
	case !allRunning:
		readyReason = "ContainersNotReady"
	}
	initReason := ""
	if !r.initialized && !terminal {
		initReason = "ContainersNotInitialized"
	}
	st := corev1.PodStatus{
		Phase:   phase,
		Reason:  reason,
		Message: message,
		HostIP:  podIP, HostIPs: []corev1.HostIP{{IP: podIP}},
		PodIP: podIP, PodIPs: []corev1.PodIP{{IP: podIP}},
		StartTime: &r.startTime,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodReadyToStartContainers, true, ""),
			cond(corev1.PodInitialized, r.initialized || terminal, initReason),
			cond(corev1.ContainersReady, allRunning, readyReason),
			cond(corev1.PodReady, allRunning, readyReason),
		},
		InitContainerStatuses: initStatuses,
		ContainerStatuses:     statuses,
	}
	if len(initStatuses) == 0 {
		st.InitContainerStatuses = nil
	}
	return st
}
