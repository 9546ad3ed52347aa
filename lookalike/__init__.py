"""Lookalike: image-similarity search, auto-tagging and cluster review for photo libraries."""

__version__ = "0.1.0"
