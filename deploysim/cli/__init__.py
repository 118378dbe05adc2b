"""Command-line commands that need no Dagster (ingest, redact, replay, grade)."""
