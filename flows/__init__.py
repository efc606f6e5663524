"""Prefect flows: thin wrappers around ``pipeline``.

Tasks per batch or sample, never per variant.
"""
