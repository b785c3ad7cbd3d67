// Package istiocases holds the cases `python -m e2e.istio.cases` writes (the hooks' Istio objects and
// what a mesh must make of them), and runs and reads that writer, for the Go modules that check the cases
// with an Istio version's own code (e2e/istio, e2e/istio-legacy). It uses no Istio or Envoy code, so each
// of those modules keeps its own pins.
package istiocases

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Header is an identity header a workload's request must carry.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Workload is a Pod calling a Kubeflow service on a port, and the header Envoy must set (nil: none).
type Workload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
	Service   string            `json:"service"`
	Port      uint32            `json:"port"`
	Header    *Header           `json:"header"`
}

// Call is a request reaching ml-pipeline's sidecar; Principal (a SPIFFE id) nil means plaintext.
type Call struct {
	Name      string            `json:"name"`
	Principal *string           `json:"principal"`
	Headers   map[string]string `json:"headers"`
	Port      uint32            `json:"port"`
	Allowed   bool              `json:"allowed"`
}

// Service is a Kubeflow Service the expectations name, with its ports by name.
type Service struct {
	Name  string            `json:"name"`
	Ports map[string]uint32 `json:"ports"`
}

// Case is one <case>.json: the hooks' objects for a scenario and the expectations on them.
type Case struct {
	Name              string            `json:"name"`
	Translate         bool              `json:"translate"`
	UnknownKinds      []string          `json:"unknownKinds"`
	KubeflowNamespace string            `json:"kubeflowNamespace"`
	Services          []Service         `json:"services"`
	Objects           []json.RawMessage `json:"objects"`
	Workloads         []Workload        `json:"workloads"`
	Calls             []Call            `json:"calls"`
}

// Generate runs the case writer, `python -m e2e.istio.cases [args...] dir`, in the repository root: two
// levels above the working directory, which `go test` sets to the testing module's folder. The Python is
// CASES_PYTHON, by default the repository's .venv; the writer's output goes to stderr.
func Generate(dir string, args ...string) error {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return err
	}
	python := os.Getenv("CASES_PYTHON")
	if python == "" {
		python = filepath.Join(root, ".venv", "bin", "python")
	}
	argv := append([]string{"-m", "e2e.istio.cases"}, args...)
	cmd := exec.Command(python, append(argv, dir)...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", python, strings.Join(argv, " "), err)
	}
	return nil
}

// Load reads every <case>.json in dir, in name order. check (nil: none) vets each case; its error comes
// back prefixed with the file. No case at all is an error.
func Load(dir string, check func(Case) error) ([]Case, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var loaded []Case
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var c Case
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if check != nil {
			if err := check(c); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
		}
		loaded = append(loaded, c)
	}
	if len(loaded) == 0 {
		return nil, fmt.Errorf("no case in %s", dir)
	}
	return loaded, nil
}

// FromPython generates the cases (Generate with args) into a new temporary directory named by pattern
// (as os.MkdirTemp), loads them with check (as Load) and removes the directory.
func FromPython(pattern string, check func(Case) error, args ...string) ([]Case, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := Generate(dir, args...); err != nil {
		return nil, err
	}
	return Load(dir, check)
}

// ObjectID is a Kubernetes object's kind, namespace and name (empty where its JSON has none).
func ObjectID(raw json.RawMessage) (kind, namespace, name string) {
	var head struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(raw, &head)
	return head.Kind, head.Metadata.Namespace, head.Metadata.Name
}
