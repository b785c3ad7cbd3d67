"""Benchmarks: the webhook against a bare ceiling, the hooks, pod creation through kube-apiserver, memory.

``python -m bench`` runs them all (``--quick`` for a short run) and writes ``bench/RESULTS.md``.
Every load generator talks to 127.0.0.1 only, with bounded request counts and durations.
"""
