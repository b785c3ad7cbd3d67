"""The Istio translation test's Python side: the cases it checks (see cases.py)."""
