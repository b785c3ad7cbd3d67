"""``kubeflow-extension doctor``: what is wrong with a live cluster, as findings with stable codes.

The checks are pure functions of a ``Snapshot`` (the objects read), so each can be tested on a snapshot
broken in exactly one way; ``doctor.read`` is the only module that talks to the API server.
"""
