"""Training loops with atomic, resumable checkpoints."""
