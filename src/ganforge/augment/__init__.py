"""Differentiable augmentations shown to D for both real and generated images (DiffAugment, ADA)."""
