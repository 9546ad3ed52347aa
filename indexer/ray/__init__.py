"""The distributed engine: indexing on Ray Data (the only package that imports ray)."""
