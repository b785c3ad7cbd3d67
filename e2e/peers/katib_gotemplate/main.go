// Renders a Katib v1alpha3 trial goTemplate the way Katib's experiment controller does: Go's
// text/template, template name "Trial", executed with the experiment, trial, namespace and the trial's
// parameter assignments. Reads the template on stdin and the parameters as JSON in the first argument:
// {"Experiment": "...", "Trial": "...", "NameSpace": "...", "HyperParameters": [{"Name": "...", "Value": "..."}]}
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/template"
)

type parameterAssignment struct {
	Name  string
	Value string
}

type trialTemplateParams struct {
	Experiment      string
	Trial           string
	NameSpace       string
	HyperParameters []parameterAssignment
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: katib-gotemplate PARAMS_JSON < TEMPLATE")
		os.Exit(2)
	}
	var params trialTemplateParams
	if err := json.Unmarshal([]byte(os.Args[1]), &params); err != nil {
		fmt.Fprintln(os.Stderr, "parameters:", err)
		os.Exit(2)
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "template:", err)
		os.Exit(2)
	}
	tpl, err := template.New("Trial").Parse(string(raw))
	if err != nil {
		fmt.Fprintln(os.Stderr, "parse:", err)
		os.Exit(1)
	}
	if err := tpl.Execute(os.Stdout, params); err != nil {
		fmt.Fprintln(os.Stderr, "execute:", err)
		os.Exit(1)
	}
}
