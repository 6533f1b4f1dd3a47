"""Datasets: fetching raw data, loaders returning tensors, and transforms."""
