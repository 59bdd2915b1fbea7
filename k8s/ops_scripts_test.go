package k8s_test

// The operator's tasks (task stats, redrive, cli, pause, resume), run as
// written against a kubectl stand-in that logs its calls: which namespace,
// which command, and that the operator command's exit code comes back.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// opsKubectl answers exec with $STUB_EXEC_RC, renders kustomize through the
// test binary, and logs every call.
const opsKubectl = `#!/bin/sh
echo "kubectl $*" >>"$STUB_LOG"
case "$1" in
kustomize) K8S_TEST_RENDER_DIR="$2" exec "$STUB_TEST_BINARY" ;;
esac
case " $* " in
*" exec "*) echo "redis-keda output"; exit "${STUB_EXEC_RC:-0}" ;;
esac
exit 0
`

func newOpsRepo(t *testing.T) *scriptsRepo {
	t.Helper()
	r := newScriptsRepo(t, "kubectl")
	stubs := t.TempDir()
	if err := os.WriteFile(filepath.Join(stubs, "kubectl"), []byte(opsKubectl), 0o755); err != nil {
		t.Fatal(err)
	}
	r.path = stubs + ":" + r.path
	return r
}

func TestOperatorScripts(t *testing.T) {
	r := newOpsRepo(t)
	exec := func(ns string, args ...string) string {
		return "kubectl -n " + ns + " exec deploy/redis-keda-publisher -c publisher -- /redis-keda " + strings.Join(args, " ")
	}
	for _, tc := range []struct {
		script string
		args   []string
		env    []string
		code   int
		call   string // the kubectl call that must be made
		out    string // in the output
	}{
		{"cli.sh", []string{"redrive", "--all", "--dry-run"}, nil, 0, exec("redis-demo", "redrive", "--all", "--dry-run"), "redis-keda output"},
		{"cli.sh", []string{"inspect", "evt-42"}, []string{"OVERLAY=prod", "STUB_EXEC_RC=3"}, 3, exec("redis-keda", "inspect", "evt-42"), ""},
		{"cli.sh", []string{"purge", "dead"}, []string{"NS=elsewhere", "STUB_EXEC_RC=2"}, 2, exec("elsewhere", "purge", "dead"), ""},
		{"cli.sh", nil, nil, 2, "", "usage: cli.sh stats|peek|inspect|redrive|purge"},
		{"stats.sh", nil, nil, 0, exec("redis-demo", "stats"), "== queue (redis-keda stats, in the publisher pod)\nredis-keda output"},
		{"pause.sh", []string{"pause"}, nil, 0, "kubectl -n redis-demo annotate scaledjob redis-keda-jobs autoscaling.keda.sh/paused=true --overwrite",
			"paused: KEDA creates no Jobs for redis-demo/redis-keda-jobs; events wait in the queue; 'task resume' restarts it"},
		{"pause.sh", []string{"resume"}, []string{"OVERLAY=prod"}, 0, "kubectl -n redis-keda annotate scaledjob redis-keda-jobs autoscaling.keda.sh/paused-",
			"resumed: KEDA creates Jobs for redis-keda/redis-keda-jobs again from its next poll"},
		{"pause.sh", []string{"stop"}, nil, 2, "", "usage: pause.sh pause|resume"},
	} {
		out, calls, code := r.runArgs(tc.script, tc.args, tc.env...)
		if code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("%s %q %v: exit %d, output:\n%s", tc.script, tc.args, tc.env, code, out)
		}
		var made []string
		for _, c := range calls {
			if !strings.HasPrefix(c, "kubectl kustomize") {
				made = append(made, c)
			}
		}
		switch {
		case tc.call == "" && slices.ContainsFunc(made, func(c string) bool { return strings.Contains(c, " exec ") || strings.Contains(c, " annotate ") }):
			t.Errorf("%s %q: a bad argument still called %q", tc.script, tc.args, made)
		case tc.call != "" && !slices.Contains(made, tc.call):
			t.Errorf("%s %q: calls %q, want %q", tc.script, tc.args, made, tc.call)
		}
	}
}

// runArgs is run with arguments for the script.
func (r *scriptsRepo) runArgs(script string, args []string, env ...string) (string, []string, int) {
	r.t.Helper()
	if len(args) == 0 {
		return r.run(script, env...)
	}
	// run executes `bash <script>`; pass the arguments through a wrapper.
	wrapper := filepath.Join(r.root, "k8s", "scripts", "zz-args-"+strings.TrimSuffix(script, ".sh")+".sh")
	var quoted []string
	for _, a := range args {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	body := "#!/usr/bin/env bash\nexec bash \"$(dirname \"${BASH_SOURCE[0]}\")/" + script + "\" " + strings.Join(quoted, " ") + "\n"
	if err := os.WriteFile(wrapper, []byte(body), 0o755); err != nil {
		r.t.Fatal(err)
	}
	defer os.Remove(wrapper)
	return r.run(filepath.Base(wrapper), env...)
}
