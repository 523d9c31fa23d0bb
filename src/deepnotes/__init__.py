"""deepnotes: deep-learning study notes, implemented, tested and reproduced with measured numbers."""

__version__ = "0.1.0"
