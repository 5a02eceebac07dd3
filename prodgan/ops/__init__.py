"""Use cases, one module each: the only entry points the CLI and the Prefect flows call."""
