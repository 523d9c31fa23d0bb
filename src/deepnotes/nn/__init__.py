"""Neural-network building blocks: activations, upsampling layers and the shared ResNet backbone."""

from deepnotes.nn.activations import ACTIVATIONS, get_activation
from deepnotes.nn.dropout import dropout, keep_mask
from deepnotes.nn.glu import (
    FEED_FORWARDS,
    GEGLU,
    GLU,
    FeedForward,
    GatedFeedForward,
    ReGLU,
    SwiGLU,
    get_feed_forward,
)
from deepnotes.nn.pretrained import IMAGENET_MEAN, IMAGENET_STD, LoadReport, load_resnet
from deepnotes.nn.resnet import ResNet
from deepnotes.nn.upsampling import MaxPool, Upsample

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LoadReport",
    "load_resnet",
    "ACTIVATIONS",
    "FEED_FORWARDS",
    "FeedForward",
    "GEGLU",
    "GLU",
    "GatedFeedForward",
    "MaxPool",
    "ReGLU",
    "ResNet",
    "SwiGLU",
    "Upsample",
    "dropout",
    "get_activation",
    "get_feed_forward",
    "keep_mask",
]
