"""sdperf: a pytest-based performance regression suite for Stable Diffusion inference."""

__version__ = "0.1.0"
