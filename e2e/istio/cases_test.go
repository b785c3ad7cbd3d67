// Package istio checks the hooks' Istio objects with Istio's own code: its validating webhook, and the
// Envoy configuration pilot generates from them for the calling workloads and for ml-pipeline.
//
// The cases (objects and expectations) come from `python -m e2e.istio.cases`, which calls the hooks'
// HTTP app; this file runs it once for the whole test binary.
package istio

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// header is an identity header a workload's request must carry.
type header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// workload is a Pod calling a Kubeflow service, and the header Envoy must set (nil: none).
type workload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
	Service   string            `json:"service"`
	Port      uint32            `json:"port"`
	Header    *header           `json:"header"`
}

// call is a request reaching ml-pipeline's sidecar; Principal nil means plaintext.
type call struct {
	Name      string            `json:"name"`
	Principal *string           `json:"principal"`
	Headers   map[string]string `json:"headers"`
	Port      uint32            `json:"port"`
	Allowed   bool              `json:"allowed"`
}

type service struct {
	Name  string            `json:"name"`
	Ports map[string]uint32 `json:"ports"`
}

type testCase struct {
	Name              string            `json:"name"`
	Translate         bool              `json:"translate"`
	UnknownKinds      []string          `json:"unknownKinds"`
	KubeflowNamespace string            `json:"kubeflowNamespace"`
	Services          []service         `json:"services"`
	Objects           []json.RawMessage `json:"objects"`
	Workloads         []workload        `json:"workloads"`
	Calls             []call            `json:"calls"`
}

var cases []testCase

// repoRoot is two levels up from this module.
func repoRoot() (string, error) {
	return filepath.Abs(filepath.Join("..", ".."))
}

// generateCases runs the Python case writer (CASES_PYTHON, default the repository's .venv) into dir.
func generateCases(dir string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	python := os.Getenv("CASES_PYTHON")
	if python == "" {
		python = filepath.Join(root, ".venv", "bin", "python")
	}
	cmd := exec.Command(python, "-m", "e2e.istio.cases", dir)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s -m e2e.istio.cases: %w", python, err)
	}
	return nil
}

func loadCases(dir string) ([]testCase, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var loaded []testCase
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var c testCase
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(c.Objects) == 0 {
			return nil, fmt.Errorf("%s: the hooks answered no object", file)
		}
		loaded = append(loaded, c)
	}
	if len(loaded) == 0 {
		return nil, fmt.Errorf("no case in %s", dir)
	}
	return loaded, nil
}

func TestMain(m *testing.M) {
	quietIstioLogs()
	dir, err := os.MkdirTemp("", "kfext-istio-cases-")
	if err == nil {
		err = generateCases(dir)
	}
	if err == nil {
		cases, err = loadCases(dir)
	}
	_ = os.RemoveAll(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cases:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
