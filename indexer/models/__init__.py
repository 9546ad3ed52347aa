"""Embedding models: the model protocol and registry, the default CNN, open_clip, and the
copy-detection model."""
