"""LightningDataModules that yield ``(images in [-1, 1], labels)`` batches."""
