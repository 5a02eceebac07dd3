"""Prefect flows: thin orchestration over `prodgan.pipeline`; each step runs as a task.

Entry points for deployments (see `prefect.yaml`): `flows/retrain.py:retrain`,
`flows/validate_data.py:validate_data`, `flows/train.py:train`, `flows/evaluate.py:evaluate`,
`flows/promote.py:promote`.
"""

import os

# Prefect reads its settings once, at import: this must come first. A loaded 2-core machine
# needs far longer than the default 20 s to start the embedded API.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
