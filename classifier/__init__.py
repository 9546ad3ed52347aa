"""Classification: human labels, tagging by nearest neighbours, and cluster discovery."""
