"""The ``kubeflow-extension`` command: the composition root above ``hooks/``, ``webhook/`` and ``doctor/``.

It is the one place that knows every part of the product; ``service/`` stays what both services share,
so no import climbs from it back up to the apps.
"""
