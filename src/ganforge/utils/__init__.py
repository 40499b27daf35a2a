"""Shared helpers: images, checkpoints, run folders."""
