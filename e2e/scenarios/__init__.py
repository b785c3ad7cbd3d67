"""Disruptions under load on the local cluster (``just e2e-cluster``): the product deployed as users deploy
it, rolled, killed, drained and scaled while admissions keep coming."""
