package istio

import (
	"fmt"
	"regexp"
	"strings"

	rbac "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// An evaluator of the Envoy RBAC matchers pilot generates, the way Envoy's RBAC filter applies them
// (envoy/config/rbac/v3/rbac.proto). A matcher it does not know is an error, never a silent match: the
// test must fail if Istio starts generating something this evaluator cannot judge.

// request is what the RBAC filter sees of one request.
type request struct {
	principal     string // the peer certificate's URI SAN; "" for plaintext
	authenticated bool
	headers       map[string]string // lower-case names
	port          uint32
}

// peerPrincipalKey is the filter state Istio's proxies store the peer principal under.
const peerPrincipalKey = "io.istio.peer_principal"

// filterAllows applies one RBAC HTTP filter: ALLOW admits a request that some policy matches, DENY
// refuses one; no rules means no enforcement. Shadow rules only log.
func filterAllows(filter *rbachttp.RBAC, r request) (bool, error) {
	if filter.GetMatcher() != nil {
		return false, fmt.Errorf("RBAC filter uses the matcher API, which this evaluator does not judge")
	}
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
	case rbac.RBAC_LOG:
		return true, nil
	default:
		return false, fmt.Errorf("unknown RBAC action %v", rules.GetAction())
	}
}

// policyMatches: some permission and some principal match (conditions are not supported).
func policyMatches(policy *rbac.Policy, r request) (bool, error) {
	if policy.GetCondition() != nil || policy.GetCheckedCondition() != nil {
		return false, fmt.Errorf("CEL conditions are not supported")
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
	case *rbac.Permission_DestinationPortRange:
		port := int64(r.port)
		return port >= int64(rule.DestinationPortRange.GetStart()) && port < int64(rule.DestinationPortRange.GetEnd()), nil
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
		if !r.authenticated {
			return false, nil
		}
		if id.Authenticated.GetPrincipalName() == nil {
			return true, nil // any authenticated peer
		}
		return stringMatches(id.Authenticated.GetPrincipalName(), r.principal)
	case *rbac.Principal_FilterState:
		if id.FilterState.GetKey() != peerPrincipalKey {
			return false, fmt.Errorf("filter state %q is not supported", id.FilterState.GetKey())
		}
		if !r.authenticated {
			return false, nil
		}
		return stringMatches(id.FilterState.GetStringMatch(), r.principal)
	case *rbac.Principal_Header:
		return headerMatches(id.Header, r.headers)
	default:
		return false, fmt.Errorf("principal %T is not supported", id)
	}
}

func headerMatches(h *route.HeaderMatcher, headers map[string]string) (bool, error) {
	value, present := headers[strings.ToLower(h.GetName())]
	var ok bool
	var err error
	switch spec := h.GetHeaderMatchSpecifier().(type) {
	case *route.HeaderMatcher_PresentMatch:
		ok = present == spec.PresentMatch
	case *route.HeaderMatcher_StringMatch:
		ok = present
		if present {
			ok, err = stringMatches(spec.StringMatch, value)
		}
	case *route.HeaderMatcher_ExactMatch:
		ok = present && value == spec.ExactMatch
	case *route.HeaderMatcher_PrefixMatch:
		ok = present && strings.HasPrefix(value, spec.PrefixMatch)
	case *route.HeaderMatcher_SuffixMatch:
		ok = present && strings.HasSuffix(value, spec.SuffixMatch)
	case *route.HeaderMatcher_ContainsMatch:
		ok = present && strings.Contains(value, spec.ContainsMatch)
	default:
		return false, fmt.Errorf("header matcher %T is not supported", spec)
	}
	if err != nil {
		return false, err
	}
	return ok != h.GetInvertMatch(), nil
}

func stringMatches(m *matcher.StringMatcher, value string) (bool, error) {
	pattern, subject := m, value
	fold := func(s string) string {
		if pattern.GetIgnoreCase() {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := pattern.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		return fold(subject) == fold(p.Exact), nil
	case *matcher.StringMatcher_Prefix:
		return strings.HasPrefix(fold(subject), fold(p.Prefix)), nil
	case *matcher.StringMatcher_Suffix:
		return strings.HasSuffix(fold(subject), fold(p.Suffix)), nil
	case *matcher.StringMatcher_Contains:
		return strings.Contains(fold(subject), fold(p.Contains)), nil
	case *matcher.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return false, err
		}
		return re.MatchString(subject), nil
	default:
		return false, fmt.Errorf("string matcher %T is not supported", p)
	}
}
