"""Mutating admission webhook: makes notebooks, Katib trials and Kale trials work behind Istio."""
