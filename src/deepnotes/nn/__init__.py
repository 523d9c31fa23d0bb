"""Neural-network building blocks: activations, upsampling layers and the shared ResNet backbone."""

from deepnotes.nn.resnet import ResNet

__all__ = ["ResNet"]
