"""Storage: the engine and its pragmas, the schema and its exact column types, migrations,
the translation of driver errors, and the repositories that make up the async API."""
