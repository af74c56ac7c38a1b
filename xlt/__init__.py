"""xlt: an experiment suite for cross-lingual transfer research on multilingual encoders."""

__version__ = "0.1.0"
