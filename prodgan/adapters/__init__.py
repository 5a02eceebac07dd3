"""Adapters: one module per outside system (MLflow, DVC, GX, auth, serving).

None imports `prodgan.ops`: the use cases call the adapters, never the other way round.
"""
