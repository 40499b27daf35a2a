"""ganforge: config-driven GAN research framework."""

__version__ = "0.1.0"
