"""ASAPNet reproduction library: models, datasets, metrics and training loops.

Notebooks in ``notebooks/`` drive this package; it never runs anything on import.
"""
