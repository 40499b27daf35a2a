"""Adversarial losses and regularizers as pure functions returning a scalar tensor."""
