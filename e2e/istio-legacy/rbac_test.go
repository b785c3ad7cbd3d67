package legacy

import (
	"fmt"
	"regexp"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/api/v2/route"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/config/filter/http/rbac/v2"
	rbac "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v2"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher"
)

// An evaluator of the Envoy v2 RBAC matchers pilot 1.5 generates, the way Envoy's RBAC filter applies
// them (envoy/config/rbac/v2/rbac.proto). Pilot 1.5 matches a peer's identity as dynamic metadata that the
// istio_authn filter, earlier in the chain, sets (see request.metadata). A matcher this evaluator does not
// know is an error, never a silent match.

// request is what the filters of an inbound HTTP chain see of one request.
type request struct {
	headers  map[string]string            // lower-case names
	port     uint32                       // destination port
	peer     string                       // the peer certificate's URI SAN (spiffe://...); "" without mutual TLS
	metadata map[string]map[string]string // dynamic metadata by filter name, set by earlier filters
}

// filterAllows applies one RBAC HTTP filter: ALLOW admits a request that some policy matches, DENY refuses
// one; a filter without rules enforces nothing. Shadow rules only log.
func filterAllows(filter *rbachttp.RBAC, r request) (bool, error) {
	rules := filter.GetRules()
	if rules == nil {
		return true, nil
	}
	matched := false
	for name, policy := range rules.GetPolicies() {
		ok, err := policyMatches(policy, r)
		if err != nil {
			return false, fmt.Errorf("policy %s: %w", name, err)
		}
		matched = matched || ok
	}
	switch rules.GetAction() {
	case rbac.RBAC_ALLOW:
		return matched, nil
	case rbac.RBAC_DENY:
		return !matched, nil
	default:
		return false, fmt.Errorf("unknown RBAC action %v", rules.GetAction())
	}
}

// policyMatches: some permission and some principal match (conditions are not supported).
func policyMatches(policy *rbac.Policy, r request) (bool, error) {
	if policy.GetCondition() != nil {
		return false, fmt.Errorf("conditions are not supported")
	}
	permission, err := anyOf(policy.GetPermissions(), func(p *rbac.Permission) (bool, error) { return permissionMatches(p, r) })
	if err != nil || !permission {
		return false, err
	}
	return anyOf(policy.GetPrincipals(), func(p *rbac.Principal) (bool, error) { return principalMatches(p, r) })
}

func anyOf[T any](items []T, match func(T) (bool, error)) (bool, error) {
	for _, item := range items {
		ok, err := match(item)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func allOf[T any](items []T, match func(T) (bool, error)) (bool, error) {
	for _, item := range items {
		ok, err := match(item)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func permissionMatches(p *rbac.Permission, r request) (bool, error) {
	recurse := func(q *rbac.Permission) (bool, error) { return permissionMatches(q, r) }
	switch rule := p.GetRule().(type) {
	case *rbac.Permission_Any:
		return rule.Any, nil
	case *rbac.Permission_AndRules:
		return allOf(rule.AndRules.GetRules(), recurse)
	case *rbac.Permission_OrRules:
		return anyOf(rule.OrRules.GetRules(), recurse)
	case *rbac.Permission_NotRule:
		ok, err := recurse(rule.NotRule)
		return !ok, err
	case *rbac.Permission_DestinationPort:
		return rule.DestinationPort == r.port, nil
	case *rbac.Permission_Header:
		return headerMatches(rule.Header, r.headers)
	default:
		return false, fmt.Errorf("permission %T is not supported", rule)
	}
}

func principalMatches(p *rbac.Principal, r request) (bool, error) {
	recurse := func(q *rbac.Principal) (bool, error) { return principalMatches(q, r) }
	switch id := p.GetIdentifier().(type) {
	case *rbac.Principal_Any:
		return id.Any, nil
	case *rbac.Principal_AndIds:
		return allOf(id.AndIds.GetIds(), recurse)
	case *rbac.Principal_OrIds:
		return anyOf(id.OrIds.GetIds(), recurse)
	case *rbac.Principal_NotId:
		ok, err := recurse(id.NotId)
		return !ok, err
	case *rbac.Principal_Authenticated_:
		if r.peer == "" {
			return false, nil
		}
		if id.Authenticated.GetPrincipalName() == nil {
			return true, nil // any peer with a certificate
		}
		return stringMatches(id.Authenticated.GetPrincipalName(), r.peer)
	case *rbac.Principal_Metadata:
		return metadataMatches(id.Metadata, r.metadata)
	case *rbac.Principal_Header:
		return headerMatches(id.Header, r.headers)
	default:
		return false, fmt.Errorf("principal %T is not supported", id)
	}
}

// metadataMatches: a string value at a one-key path of a filter's dynamic metadata; absent never matches.
func metadataMatches(m *matcher.MetadataMatcher, metadata map[string]map[string]string) (bool, error) {
	if len(m.GetPath()) != 1 || m.GetPath()[0].GetKey() == "" {
		return false, fmt.Errorf("metadata path %v is not supported", m.GetPath())
	}
	want := m.GetValue().GetStringMatch()
	if want == nil {
		return false, fmt.Errorf("metadata value matcher %T is not supported", m.GetValue().GetMatchPattern())
	}
	value, present := metadata[m.GetFilter()][m.GetPath()[0].GetKey()]
	if !present {
		return false, nil
	}
	return stringMatches(want, value)
}

func headerMatches(h *route.HeaderMatcher, headers map[string]string) (bool, error) {
	value, present := headers[strings.ToLower(h.GetName())]
	var ok bool
	switch spec := h.GetHeaderMatchSpecifier().(type) {
	case *route.HeaderMatcher_PresentMatch:
		ok = present == spec.PresentMatch
	case *route.HeaderMatcher_ExactMatch:
		ok = present && value == spec.ExactMatch
	case *route.HeaderMatcher_PrefixMatch:
		ok = present && strings.HasPrefix(value, spec.PrefixMatch)
	case *route.HeaderMatcher_SuffixMatch:
		ok = present && strings.HasSuffix(value, spec.SuffixMatch)
	default:
		return false, fmt.Errorf("header matcher %T is not supported", spec)
	}
	return ok != h.GetInvertMatch(), nil
}

func stringMatches(m *matcher.StringMatcher, value string) (bool, error) {
	if m.GetIgnoreCase() {
		return false, fmt.Errorf("ignore_case is not supported")
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		return value == p.Exact, nil
	case *matcher.StringMatcher_Prefix:
		return strings.HasPrefix(value, p.Prefix), nil
	case *matcher.StringMatcher_Suffix:
		return strings.HasSuffix(value, p.Suffix), nil
	case *matcher.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return false, err
		}
		return re.MatchString(value), nil
	default:
		return false, fmt.Errorf("string matcher %T is not supported", p)
	}
}
