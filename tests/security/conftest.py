"""Security tests reuse the registry tests' `store` fixture (an empty project with a migrated
sqlite MLflow store)."""

from tests.registry.conftest import store  # noqa: F401  (a fixture, re-exported)
