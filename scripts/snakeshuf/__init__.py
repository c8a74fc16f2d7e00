"""snakeshuf: a global, uniform, reproducible shuffle of the lines of text
corpora larger than memory (see README.md)."""

__version__ = "0.4.0"
