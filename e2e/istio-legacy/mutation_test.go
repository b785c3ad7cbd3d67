package legacy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	istiocases "kubeflow-extension.local/e2e/istio-cases"
)

// The checks above must reject objects that are wrong in the ways that matter. Each mutation changes the
// hooks' answer in Go, and the check it names must then fail, for the reason given.

// check runs one of the checks above over all of a case's workloads or calls; each problem is one error.
type check func(c istiocases.Case, objects []json.RawMessage) []error

func validationCheck(_ istiocases.Case, objects []json.RawMessage) []error {
	return validationProblems(objects)
}

func headerCheck(c istiocases.Case, objects []json.RawMessage) []error {
	m, err := newMesh(c, objects)
	if err != nil {
		return []error{err}
	}
	defer m.Close()
	var problems []error
	for _, w := range c.Workloads {
		if err := m.headerProblem(c, w); err != nil {
			problems = append(problems, fmt.Errorf("%s/%s to %s:%d: %w", w.Namespace, w.Name, w.Service, w.Port, err))
		}
	}
	return problems
}

func rbacCheck(c istiocases.Case, objects []json.RawMessage) []error {
	m, err := newMesh(c, objects)
	if err != nil {
		return []error{err}
	}
	defer m.Close()
	var problems []error
	for _, cl := range c.Calls {
		if !judged(cl) {
			continue
		}
		if err := m.callProblem(c, cl); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", cl.Name, err))
		}
	}
	return problems
}

// field is the map at path (map keys and list indexes) in a decoded JSON object.
func field(object any, path ...any) (map[string]any, error) {
	for _, step := range path {
		switch key := step.(type) {
		case string:
			m, ok := object.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("no object at %q", key)
			}
			object = m[key]
		case int:
			list, ok := object.([]any)
			if !ok || key >= len(list) {
				return nil, fmt.Errorf("no item %d", key)
			}
			object = list[key]
		}
	}
	m, ok := object.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%v is not an object", path)
	}
	return m, nil
}

// mutated is objects with every object of kind changed by edit (on its decoded spec).
func mutated(objects []json.RawMessage, kind string, edit func(spec map[string]any) error) ([]json.RawMessage, error) {
	var out []json.RawMessage
	changed := false
	for _, raw := range objects {
		var object map[string]any
		if err := json.Unmarshal(raw, &object); err != nil {
			return nil, err
		}
		if object["kind"] == kind {
			spec, err := field(object, "spec")
			if err == nil {
				err = edit(spec)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", identify(raw), err)
			}
			changed = true
			if raw, err = json.Marshal(object); err != nil {
				return nil, err
			}
		}
		out = append(out, raw)
	}
	if !changed {
		return nil, fmt.Errorf("no %s to change", kind)
	}
	return out, nil
}

// headerOption is the EnvoyFilter's one header option, and bindingProperties the ServiceRoleBinding's
// one subject's properties.
func headerOption(spec map[string]any) (map[string]any, error) {
	return field(spec, "configPatches", 0, "patch", "value", "request_headers_to_add", 0)
}

func bindingProperties(spec map[string]any) (map[string]any, error) {
	return field(spec, "subjects", 0, "properties")
}

// userHeaderProperty is the property of the binding that names the identity header.
func userHeaderProperty(properties map[string]any) (string, error) {
	for key := range properties {
		if strings.HasPrefix(key, "request.headers[") {
			return key, nil
		}
	}
	return "", fmt.Errorf("no request.headers property in %v", properties)
}

const someoneElse = "someone-else@example.com"

var mutations = []struct {
	name    string
	kind    string
	edit    func(spec map[string]any) error
	check   check
	because string // part of the failing check's message
}{
	{
		name: "the EnvoyFilter sets another owner's value",
		kind: "EnvoyFilter",
		edit: func(spec map[string]any) error {
			option, err := headerOption(spec)
			if err == nil {
				var h map[string]any
				if h, err = field(option, "header"); err == nil {
					h["value"] = someoneElse
				}
			}
			return err
		},
		check:   headerCheck,
		because: "sets the wrong value",
	},
	{
		name: "the ServiceRoleBinding wants another owner's header value",
		kind: "ServiceRoleBinding",
		edit: func(spec map[string]any) error {
			properties, err := bindingProperties(spec)
			if err != nil {
				return err
			}
			key, err := userHeaderProperty(properties)
			properties[key] = someoneElse
			return err
		},
		check:   rbacCheck,
		because: "allowed=false, expected true",
	},
	{
		name: "the EnvoyFilter matches the gRPC port's virtual host",
		kind: "EnvoyFilter",
		edit: func(spec map[string]any) error {
			vhost, err := field(spec, "configPatches", 0, "match", "routeConfiguration", "vhost")
			if err != nil {
				return err
			}
			name, _ := vhost["name"].(string)
			vhost["name"] = strings.TrimSuffix(name, fmt.Sprint(":", mlPipeline.ports["http"])) + fmt.Sprint(":", mlPipeline.ports["grpc"])
			return nil
		},
		check:   headerCheck,
		because: "expected one identity header",
	},
	{
		name: "the EnvoyFilter uses append_action, which Istio 1.5's Envoy API does not know",
		kind: "EnvoyFilter",
		edit: func(spec map[string]any) error {
			option, err := headerOption(spec)
			if err == nil {
				delete(option, "append")
				option["append_action"] = "OVERWRITE_IF_EXISTS_OR_ADD"
			}
			return err
		},
		check:   validationCheck,
		because: `unknown field "append_action"`,
	},
	{
		name: "the EnvoyFilter appends the header",
		kind: "EnvoyFilter",
		edit: func(spec map[string]any) error {
			option, err := headerOption(spec)
			if err == nil {
				option["append"] = true
			}
			return err
		},
		check:   headerCheck,
		because: "the header is appended",
	},
	{
		name: "the ServiceRoleBinding's source.principal has the spiffe:// prefix",
		kind: "ServiceRoleBinding",
		edit: func(spec map[string]any) error {
			properties, err := bindingProperties(spec)
			if err == nil {
				properties["source.principal"] = fmt.Sprint("spiffe://", properties["source.principal"])
			}
			return err
		},
		check:   rbacCheck,
		because: "allowed=false, expected true",
	},
}

// TestEachMutationIsCaught: every mutation above makes its check fail, for its reason.
func TestEachMutationIsCaught(t *testing.T) {
	for _, c := range cases {
		for _, mutation := range mutations {
			t.Run(c.Name+"/"+mutation.name, func(t *testing.T) {
				objects, err := mutated(c.Objects, mutation.kind, mutation.edit)
				if err != nil {
					t.Fatal(err)
				}
				problems := mutation.check(c, objects)
				if len(problems) == 0 {
					t.Fatalf("the check accepts the mutated objects:\n%s", objectsYAML(objects))
				}
				message := errors.Join(problems...).Error()
				if !strings.Contains(message, mutation.because) {
					t.Fatalf("the check fails, but not because %q:\n%s", mutation.because, message)
				}
				t.Logf("rejected: %s", strings.SplitN(message, "\n", 2)[0])
			})
		}
	}
}
