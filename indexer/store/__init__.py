"""What a library keeps on disk: the SQLite catalog, the library directory, the vector
indexes and their files, and the copy-detection descriptors."""
