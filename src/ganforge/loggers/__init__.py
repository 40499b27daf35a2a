"""Loggers with ganforge's defaults (offline-safe Weights & Biases)."""
