"""Adapters: one module per outside system (MLflow, DVC, GX, auth, serving); none imports `prodgan.ops`."""
