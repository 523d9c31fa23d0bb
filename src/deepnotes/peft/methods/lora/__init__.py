"""LoRA: the layer wrapper (layer.py) and the function that inserts it into a model (model.py)."""
