package config

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
)

// ExitUsage is the exit code of a program given arguments it does not take
// (the operator commands' code for a bad argument).
const ExitUsage = 2

// Program is a long-running program configured by environment variables
// only (jobs, publisher): it takes no arguments but --help.
type Program struct {
	Name    string // as invoked: "jobs", "redis-keda jobs"
	Summary string // what it does, one paragraph
	Config  any    // its configuration struct (a value or pointer): the variables
}

// Usage is the program's help: what it does and every variable it reads,
// with its default, in the order of its configuration struct.
func (p Program) Usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n\nUsage: %s        (no arguments: the environment variables below configure it)\n       %s --help\n\nEnvironment variables (default):\n",
		p.Name, p.Summary, p.Name, p.Name)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, v := range fields(reflect.TypeOf(p.Config)) {
		def := v.def
		if !v.hasDefault {
			def = "(unset)"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", v.name, def)
	}
	_ = tw.Flush()
	b.WriteString("\nREADME.md, section Configuration, says what each means. A variable set\nbut empty is refused; an invalid value stops the program with exit 1.\n")
	return b.String()
}

// Args handles a program's command-line arguments before anything else
// runs (no configuration read, no connection made): --help, -h or help
// prints Usage to stdout (exit 0); any other argument is refused on stderr
// (exit ExitUsage). exit is false when there are no arguments: run the
// program.
func (p Program) Args(args []string, stdout, stderr io.Writer) (code int, exit bool) {
	if len(args) == 0 {
		return 0, false
	}
	if len(args) == 1 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
		fmt.Fprint(stdout, p.Usage())
		return 0, true
	}
	fmt.Fprintf(stderr, "%s: unknown argument %q: %s takes no arguments, only environment variables; run '%s --help' for the list\n",
		p.Name, args[0], p.Name, p.Name)
	return ExitUsage, true
}
