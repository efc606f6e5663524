"""Prefect flows: thin wrappers around ``pipeline`` (tasks per batch or sample, never per variant)."""
