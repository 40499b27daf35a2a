"""LightningModules: one per training scheme, with manual optimization."""
