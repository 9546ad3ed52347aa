"""Indexing: scanning folders, loading images, embedding them, and the library they go into."""
