// Package legacy checks the hooks' answers for the legacy-istio overlay (Kubeflow 1.1/1.2 on Istio 1.3-1.5)
// with Istio 1.5.10's own code: its validation, and the Envoy configuration pilot 1.5 generates from them,
// next to what a Kubeflow 1.1/1.2 cluster already has (kubeflow_test.go).
//
// The objects and expectations come from `python -m e2e.istio.cases --legacy`, which calls the hooks'
// HTTP app with the shipped legacy DecoratorController; this file runs it once for the whole test binary.
package legacy

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"istio.io/pkg/log"

	istiocases "kubeflow-extension.local/e2e/istio-cases"
)

var cases []istiocases.Case

// complete refuses a case without objects, workloads or calls: every legacy check needs all three.
func complete(c istiocases.Case) error {
	if len(c.Objects) == 0 || len(c.Workloads) == 0 || len(c.Calls) == 0 {
		return errors.New("no objects, workloads or calls")
	}
	return nil
}

func TestMain(m *testing.M) {
	// Pilot's informational logging would drown the test output.
	for _, scope := range log.Scopes() {
		scope.SetOutputLevel(log.WarnLevel)
	}
	var err error
	cases, err = istiocases.FromPython("kfext-istio-legacy-cases-", complete, "--legacy")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cases:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
