// Command coredns is CoreDNS v1.15 with only the plugins the e2e real node's
// cluster DNS uses (the way CoreDNS documents building a custom server:
// set dnsserver.Directives, import the plugins, call coremain.Run).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives in CoreDNS's own order (plugin.cfg), restricted to the imports.
var directives = []string{"log", "health", "ready", "errors", "cache", "loadbalance", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
