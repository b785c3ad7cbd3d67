"""The parts of the local cluster beside the node: its network, proxy, DNS and metrics."""
