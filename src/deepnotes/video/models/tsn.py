"""TSN (Wang et al., 2016): a 2D network on sparsely sampled frames, scores averaged over segments.

No temporal module: averaging is blind to frame order, the baseline every temporal module is measured
against.
"""

from __future__ import annotations

from deepnotes.video.models.base import ModelConfig, Recognizer2D, resnet
from deepnotes.video.models.registry import MODELS


@MODELS.register("tsn", family="2d", temporal=False)
def build(cfg: ModelConfig) -> Recognizer2D:
    return Recognizer2D(resnet(cfg), cfg)
