"""Prefect flows: thin orchestration over `prodgan.pipeline`; each step runs as a task.

Entry points for deployments (see `prefect.yaml`): `flows/retrain.py:retrain`,
`flows/validate_data.py:validate_data`, `flows/train.py:train`, `flows/evaluate.py:evaluate`,
`flows/promote.py:promote`.
"""
