package realnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalPVs is how many local PersistentVolumes the node offers (1Gi each,
// StorageClass "local", the cluster's default).
const LocalPVs = 4

func (n *Node) deployAddons(ctx context.Context) error {
	if err := n.deployStorage(ctx); err != nil {
		return err
	}
	if err := n.deployCoreDNS(ctx); err != nil {
		return err
	}
	if !n.opts.WithoutKEDA {
		if err := n.deployKEDA(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) apply(ctx context.Context, name, yaml string) error {
	path := filepath.Join(n.dir, "manifests", name+".yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		return fmt.Errorf("realnode: write %s: %w", path, err)
	}
	if _, err := n.opts.Cluster.Kubectl(ctx, "apply", "-f", path); err != nil {
		return fmt.Errorf("realnode: apply %s: %w", name, err)
	}
	return nil
}

// deployStorage: a default StorageClass without a provisioner and LocalPVs
// local PVs (directories under the work dir, pinned to this node), bound
// by the PV controller when a pod using the claim is scheduled.
func (n *Node) deployStorage(ctx context.Context) error {
	var b strings.Builder
	b.WriteString(`apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
`)
	for i := range LocalPVs {
		dir := filepath.Join(n.dir, "pv", fmt.Sprintf("pv%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("realnode: pv dir: %w", err)
		}
		// Writable by any pod user; fsGroup still applies to the files.
		if err := os.Chmod(dir, 0o1777); err != nil {
			return fmt.Errorf("realnode: pv dir: %w", err)
		}
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: local-pv%d
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  volumeMode: Filesystem
  local:
    path: %s
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [%s]}
`, i, dir, NodeName)
	}
	return n.apply(ctx, "storage", b.String())
}

func (n *Node) deployCoreDNS(ctx context.Context) error {
	yaml := fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
  - {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # Cluster names only: no forward plugin, nothing leaves the node.
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 5
        }
        cache 5
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: coredns
          image: %s
          imagePullPolicy: Never
          args: ["-conf", "/etc/coredns/Corefile"]
          ports:
            - {name: dns, containerPort: 1053, protocol: UDP}
            - {name: dns-tcp, containerPort: 1053, protocol: TCP}
          readinessProbe:
            httpGet: {path: /ready, port: 8181}
            periodSeconds: 2
          livenessProbe:
            httpGet: {path: /health, port: 8080}
            periodSeconds: 10
          resources:
            requests: {cpu: 10m, memory: 32Mi}
            limits: {memory: 128Mi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          volumeMounts:
            - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
        - name: config
          configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: %s
  ports:
    - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
    - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
`, n.images["COREDNS_IMAGE"], ClusterDNS)
	if err := n.apply(ctx, "coredns", yaml); err != nil {
		return err
	}
	return n.waitDeployment(ctx, "kube-system", "coredns", 120*time.Second)
}

// deployKEDA applies KEDA's own install manifests (config/general, rbac,
// manager, service_account of the pinned module) through a kustomization
// that only swaps the image for the local one, never pulls it, turns off
// what needs KEDA's other components (cert rotation, webhook and APIService
// patching: no admission webhooks or metrics server are deployed) and
// shortens the readiness delay; plus the Secret kedaorg-certs it mounts.
func (n *Node) deployKEDA(ctx context.Context) error {
	dir := filepath.Join(n.dir, "manifests", "keda")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("realnode: %w", err)
	}
	if out, err := exec.CommandContext(ctx, "cp", "-r", filepath.Join(n.opts.NodeDir, "keda-config"), filepath.Join(dir, "upstream")).CombinedOutput(); err != nil {
		return fmt.Errorf("realnode: copy KEDA manifests: %w: %s", err, out)
	}
	certs := n.opts.Cluster.KEDACertDir()
	for _, f := range []string{"ca.crt", "tls.crt", "tls.key"} {
		b, err := os.ReadFile(filepath.Join(certs, f))
		if err != nil {
			return fmt.Errorf("realnode: KEDA certs: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			return fmt.Errorf("realnode: KEDA certs: %w", err)
		}
	}
	name, tag, _ := strings.Cut(n.images["KEDA_IMAGE"], ":")
	kust := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - upstream/general
  - upstream/rbac
  - upstream/manager
  - upstream/service_account
images:
  - {name: ghcr.io/kedacore/keda, newName: %s, newTag: %s}
secretGenerator:
  - name: kedaorg-certs
    namespace: keda
    files: [ca.crt, tls.crt, tls.key]
    options: {disableNameSuffixHash: true}
patches:
  - target: {kind: Deployment, name: keda-operator}
    patch: |-
      - {op: replace, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
      - op: replace
        path: /spec/template/spec/containers/0/args
        value:
          - --leader-elect
          - --zap-log-level=info
          - --zap-encoder=console
          - --zap-time-encoding=rfc3339
          - --enable-cert-rotation=false
          - --enable-webhook-patching=false
          - --enable-apiservice-patching=false
      - {op: replace, path: /spec/template/spec/containers/0/readinessProbe/initialDelaySeconds, value: 1}
      - {op: add, path: /spec/template/spec/containers/0/readinessProbe/periodSeconds, value: 2}
`, name, tag)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		return fmt.Errorf("realnode: KEDA kustomization: %w", err)
	}
	if _, err := n.opts.Cluster.Kubectl(ctx, "apply", "-k", dir); err != nil {
		return fmt.Errorf("realnode: deploy KEDA: %w", err)
	}
	return n.waitDeployment(ctx, "keda", "keda-operator", 180*time.Second)
}

// waitDeployment waits until the Deployment has an available replica.
func (n *Node) waitDeployment(ctx context.Context, ns, name string, timeout time.Duration) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "not found"
	for {
		d, err := n.kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			if d.Status.AvailableReplicas >= 1 {
				n.logf("deployment %s/%s available in %s", ns, name, time.Since(start).Round(time.Millisecond))
				return nil
			}
			last = fmt.Sprintf("available %d/%d", d.Status.AvailableReplicas, d.Status.Replicas)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			pods, _ := n.opts.Cluster.Kubectl(context.Background(), "get", "pods", "-n", ns, "-o", "wide")
			return fmt.Errorf("realnode: deployment %s/%s not available within %s (%s); pods:\n%s; see %s", ns, name, timeout, last, pods, n.LogDir())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
