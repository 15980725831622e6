"""Local PyTorch models: definitions, training, walk-forward evaluation, export."""
