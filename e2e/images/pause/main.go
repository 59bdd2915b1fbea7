// Command pause is the pod sandbox's process for the e2e real node: it holds
// the pod's namespaces open, reaps orphaned children (it is PID 1 of the pod
// when the pod shares its PID namespace) and exits 0 on SIGINT or SIGTERM,
// as Kubernetes' pause (build/pause/linux/pause.c) does. Built statically
// (CGO_ENABLED=0) into the image redis-keda-e2e/pause by e2e/images/build.sh.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getpid() != 1 {
		os.Stderr.WriteString("pause: warning: not PID 1\n")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
