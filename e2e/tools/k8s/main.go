// Command kube is ONE multi-call binary for the six Kubernetes commands the
// e2e test bed and the real node run (the way hyperkube was, until
// Kubernetes 1.17): kube-apiserver, kube-controller-manager, kube-scheduler,
// kubectl, kubelet and kube-proxy of k8s.io/kubernetes at the pin of go.mod.
//
// Why: six separate binaries are six links of ~100 MB each on a 2-core
// machine; one binary is one link, and the packages they share are compiled
// once. e2e/build.sh puts links named after each command next to it, so
// every caller still runs <bin>/kube-apiserver, <bin>/kubectl, ...
//
// It dispatches on the name it was started as (argv[0]'s base name), or on
// its first argument when started as "kube" (`kube kubectl version`). Each
// entry is the body of the command's own main.go of k8s.io/kubernetes/cmd
// (same blank imports, same cli.Run), so flags, logs and exit codes are the
// upstream ones.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	_ "time/tzdata" // CronJob time zones (kube-apiserver, kube-controller-manager)

	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubectl's auth plugins
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// commands maps each command name to its upstream main body; each returns
// the process exit code.
var commands = map[string]func(args []string) int{
	"kube-apiserver":          func([]string) int { return cli.Run(apiserver.NewAPIServerCommand()) },
	"kube-controller-manager": func([]string) int { return cli.Run(controllermanager.NewControllerManagerCommand()) },
	"kube-scheduler":          func([]string) int { return cli.Run(scheduler.NewSchedulerCommand()) },
	"kubelet":                 func([]string) int { return cli.Run(kubelet.NewKubeletCommand(context.Background())) },
	"kube-proxy":              func([]string) int { return cli.Run(proxy.NewProxyCommand()) },
	"kubectl": func(args []string) int {
		logs.GlogSetter(kubectlcmd.GetLogVerbosity(args)) //nolint:errcheck // as upstream's main
		if err := cli.RunNoErrOutput(kubectlcmd.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err) // prints the error and exits 1, as upstream's main
		}
		return 0
	},
}

func main() {
	name := filepath.Base(os.Args[0])
	if name == "kube" && len(os.Args) > 1 {
		// `kube kubectl get pods`: drop "kube" so cobra sees the command's own argv.
		name, os.Args = os.Args[1], os.Args[1:]
	}
	run, ok := commands[name]
	if !ok {
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "kube: unknown command %q: start this binary as (or with a first argument) one of: %s\n",
			name, strings.Join(names, ", "))
		os.Exit(2)
	}
	os.Exit(run(os.Args))
}
