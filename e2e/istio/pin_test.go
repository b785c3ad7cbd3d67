package istio

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// pinnedVersion is the value of NAME=... in a shell file, or of a module's line in a go.mod.
func pinnedVersion(t *testing.T, path string, pattern *regexp.Regexp) string {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	match := pattern.FindSubmatch(text)
	if match == nil {
		t.Fatalf("%s has no line matching %s", path, pattern)
	}
	return string(match[1])
}

// TestIstioIsThePinnedVersion: the Istio this module builds is the one e2e/versions.env records.
func TestIstioIsThePinnedVersion(t *testing.T) {
	recorded := pinnedVersion(t, filepath.Join("..", "versions.env"), regexp.MustCompile(`(?m)^ISTIO_GO_MODULE_VERSION=(\S+)$`))
	required := pinnedVersion(t, "go.mod", regexp.MustCompile(`(?m)^\s*istio\.io/istio (\S+)$`))
	if recorded != required {
		t.Fatalf("go.mod requires istio.io/istio %s, e2e/versions.env records %s", required, recorded)
	}
}
