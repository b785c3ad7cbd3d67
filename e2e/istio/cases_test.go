// Package istio checks the hooks' Istio objects with Istio's own code: its validating webhook, and the
// Envoy configuration pilot generates from them for the calling workloads and for ml-pipeline.
//
// The cases (objects and expectations) come from `python -m e2e.istio.cases`, which calls the hooks'
// HTTP app; this file runs it once for the whole test binary.
package istio

import (
	"errors"
	"fmt"
	"os"
	"testing"

	istiocases "kubeflow-extension.local/e2e/istio-cases"
)

var cases []istiocases.Case

// hasObjects refuses a case the hooks answered nothing for.
func hasObjects(c istiocases.Case) error {
	if len(c.Objects) == 0 {
		return errors.New("the hooks answered no object")
	}
	return nil
}

func TestMain(m *testing.M) {
	quietIstioLogs()
	var err error
	cases, err = istiocases.FromPython("kfext-istio-cases-", hasObjects)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cases:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
