package istiocases

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadReadsTheCasesInNameOrder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b.json"), `{"name": "b", "objects": [{"kind": "X"}],
		"workloads": [{"name": "w", "port": 8888, "header": {"name": "h", "value": "v"}}],
		"calls": [{"name": "c", "principal": "p", "allowed": true}]}`)
	writeFile(t, filepath.Join(dir, "a.json"), `{"name": "a", "translate": true, "objects": []}`)
	writeFile(t, filepath.Join(dir, "notes.txt"), `not a case`)
	loaded, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 2 || loaded[0].Name != "a" || loaded[1].Name != "b" || !loaded[0].Translate {
		t.Fatalf("loaded %+v", loaded)
	}
	b := loaded[1]
	if b.Workloads[0].Header == nil || *b.Workloads[0].Header != (Header{Name: "h", Value: "v"}) {
		t.Fatalf("workload %+v", b.Workloads[0])
	}
	if b.Calls[0].Principal == nil || *b.Calls[0].Principal != "p" || !b.Calls[0].Allowed {
		t.Fatalf("call %+v", b.Calls[0])
	}
}

func TestLoadRefusesWhatCheckRefuses(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.json"), `{"name": "a"}`)
	_, err := Load(dir, func(c Case) error {
		if len(c.Objects) == 0 {
			return errors.New("no object")
		}
		return nil
	})
	if err == nil || err.Error() != filepath.Join(dir, "a.json")+": no object" {
		t.Fatalf("got %v", err)
	}
}

func TestLoadRefusesAnEmptyDirectoryAndBadJSON(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir, nil); err == nil || !strings.HasPrefix(err.Error(), "no case in ") {
		t.Fatalf("got %v", err)
	}
	writeFile(t, filepath.Join(dir, "a.json"), `{`)
	if _, err := Load(dir, nil); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, "a.json")+": ") {
		t.Fatalf("got %v", err)
	}
}

// TestFromPythonRunsTheWriterInTheRepositoryRoot with a stand-in for Python that records its arguments
// and working directory and writes one case.
func TestFromPythonRunsTheWriterInTheRepositoryRoot(t *testing.T) {
	record := filepath.Join(t.TempDir(), "record")
	python := filepath.Join(t.TempDir(), "python")
	writeFile(t, python, "#!/bin/sh\n"+
		"{ pwd; for a in \"$@\"; do echo \"$a\"; done; } > '"+record+"'\n"+
		"for last; do :; done\n"+
		"echo '{\"name\": \"only\"}' > \"$last/only.json\"\n")
	if err := os.Chmod(python, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CASES_PYTHON", python)
	loaded, err := FromPython("istiocases-test-", nil, "--legacy")
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].Name != "only" {
		t.Fatalf("loaded %+v", loaded)
	}
	text, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	if len(lines) != 5 || lines[0] != root || !reflect.DeepEqual(lines[1:4], []string{"-m", "e2e.istio.cases", "--legacy"}) {
		t.Fatalf("the writer ran as %q", lines)
	}
	if _, err := os.Stat(lines[4]); !os.IsNotExist(err) {
		t.Fatalf("the temporary directory %s is still there (%v)", lines[4], err)
	}
}

func TestGenerateNamesTheCommandThatFailed(t *testing.T) {
	t.Setenv("CASES_PYTHON", "/bin/false")
	err := Generate(t.TempDir(), "--legacy")
	if err == nil || !strings.HasPrefix(err.Error(), "/bin/false -m e2e.istio.cases --legacy: ") {
		t.Fatalf("got %v", err)
	}
}

func TestObjectID(t *testing.T) {
	kind, namespace, name := ObjectID(json.RawMessage(`{"kind": "EnvoyFilter", "metadata": {"name": "n", "namespace": "ns"}}`))
	if kind != "EnvoyFilter" || namespace != "ns" || name != "n" {
		t.Fatalf("got %q %q %q", kind, namespace, name)
	}
	if kind, namespace, name := ObjectID(json.RawMessage(`[`)); kind+namespace+name != "" {
		t.Fatalf("got %q %q %q", kind, namespace, name)
	}
}
