"""Deterministic synthetic data: the embedded default benchmark."""
