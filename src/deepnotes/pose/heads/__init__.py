"""Pose heads: heatmap (deconvolution + Gaussian targets), direct L1 regression, and RLE.

Every head maps backbone features (N, C, h, w) to a dict of outputs and offers ``loss(out, keypoints,
weight)`` (a dict of named terms plus ``loss``) and ``decode(out)`` -> ``(coords (N, K, 2) in crop pixels,
scores (N, K))``. Coordinates for regression heads are normalised by :func:`normalise`.

A head is one module that registers a builder with ``@HEADS.register("name")`` (see ``rle.py``), plus its
name in the import line below.
"""

from deepnotes.pose.heads import heatmap, regression, rle  # noqa: F401  (each registers its head)
from deepnotes.pose.heads.common import HEADS, FeatureVector, denormalise, normalise, weighted_mean

__all__ = ["HEADS", "FeatureVector", "denormalise", "normalise", "weighted_mean"]
