// Command sleeper is a tiny test workload for the node stand-in: it prints
// one JSON line with its arguments and selected environment, sleeps, prints
// a second JSON line and exits with the requested code. On SIGTERM it prints
// {"msg":"sigterm"} and exits 143.
//
//	sleeper [-sleep 1s] [-exit 0] [-env NAME,NAME...]
package main

import (
	"encoding/json"
	"flag"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	sleep := flag.Duration("sleep", time.Second, "how long to sleep")
	code := flag.Int("exit", 0, "exit code")
	names := flag.String("env", "", "comma-separated env var names to print")
	flag.Parse()

	enc := json.NewEncoder(os.Stdout)
	env := map[string]string{}
	for _, n := range strings.Split(*names, ",") {
		if v, ok := os.LookupEnv(n); ok && n != "" {
			env[n] = v
		}
	}
	_ = enc.Encode(map[string]any{"msg": "start", "args": os.Args[1:], "env": env, "pid": os.Getpid()})

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	select {
	case <-time.After(*sleep):
		_ = enc.Encode(map[string]any{"msg": "done", "exit": *code})
		os.Exit(*code)
	case <-sig:
		_ = enc.Encode(map[string]any{"msg": "sigterm"})
		os.Exit(143)
	}
}
