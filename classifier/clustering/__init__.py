"""Discovering new categories: clustering, proposals in the catalog, and their review."""
