"""Data room: dataset generation, corpus indexing, metadata, datasets and datamodules."""
