"""Prefect flows: thin orchestration over `prodgan.ops`; each step runs as a task.

Installed with the package, so deployments use module entrypoints (`flows.retrain.retrain`,
`flows.validate_data.validate_data`, `flows.train.train`, `flows.evaluate.evaluate`,
`flows.promote.promote`; see `prefect.yaml`).
"""

from prodgan.settings import configure_environment

# Prefect reads its settings once, at import: the quiet switches and the start-up timeout first.
configure_environment()
