"""``python -m kubeflow_extension``: the same command as the ``kubeflow-extension`` console script."""

import sys

from kubeflow_extension.cli import main

sys.exit(main())
