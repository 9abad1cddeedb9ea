"""edgecv: fine-tune a vision model and build validated, optimized artifacts for edge targets."""

__version__ = "0.4.0"
