"""PyTorch side: classifier, importance maps, deep JSCC, channels, losses, training."""
