"""Security tests reuse the registry tests' migrated sqlite store
(a fresh store costs 10-20 s of migrations).
"""

from tests.registry.conftest import migrated_store, store  # noqa: F401  (fixtures, re-exported)
