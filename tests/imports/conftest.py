"""The registry tests' migrated MLflow store, shared with the import tests."""

from tests.registry.conftest import migrated_store  # noqa: F401 (a fixture, used by name)
