// Command flag-check parses arguments with Go's flag package against a declared flag set: the flags of
// a Katib collector version whose module the Go module proxy no longer serves, declared in a test
// fixture. It reads {"flags": {"name": "string|bool|duration|list"}, "args": [...]} on stdin and prints
// {"values": {...}, "parse_bool": {...}} (parse_bool: strconv.ParseBool of each value, null on error,
// as Katib's collectors read -w), or {"error": "..."} with exit code 2, as flag.ExitOnError would.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// list is a repeatable flag, like Katib's -stop-rule.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type input struct {
	Flags map[string]string `json:"flags"`
	Args  []string          `json:"args"`
}

type output struct {
	Values    map[string]string `json:"values,omitempty"`
	ParseBool map[string]*bool  `json:"parse_bool,omitempty"`
	Error     string            `json:"error,omitempty"`
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "flag-check: bad input:", err)
		os.Exit(1)
	}
	set := flag.NewFlagSet("collector", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for name, kind := range in.Flags {
		switch kind {
		case "string":
			set.String(name, "", "")
		case "bool":
			set.Bool(name, false, "")
		case "duration":
			set.Duration(name, 0, "")
		case "list":
			set.Var(&list{}, name, "")
		default:
			fmt.Fprintf(os.Stderr, "flag-check: unknown kind %q of flag %q\n", kind, name)
			os.Exit(1)
		}
	}
	out := output{}
	code := 0
	if err := set.Parse(in.Args); err != nil {
		out.Error, code = err.Error(), 2
	} else {
		out.Values, out.ParseBool = map[string]string{}, map[string]*bool{}
		set.Visit(func(f *flag.Flag) {
			value := f.Value.String()
			out.Values[f.Name] = value
			if parsed, err := strconv.ParseBool(value); err == nil {
				out.ParseBool[f.Name] = &parsed
			} else {
				out.ParseBool[f.Name] = nil
			}
		})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
	os.Exit(code)
}
