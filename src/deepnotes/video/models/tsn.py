"""TSN (Wang et al., 2016): a 2D network on sparsely sampled frames, scores combined over segments.

No temporal module: the consensus (the average of the segments' class scores, or their maximum with
``consensus="max"``, the two functions the TSN paper compares besides a weighted average) is blind to frame
order, the baseline every temporal module is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepnotes.video.models.base import ModelConfig, Recognizer2D, check_consensus, resnet
from deepnotes.video.models.registry import MODELS


@dataclass
class TSNConfig(ModelConfig):
    """ModelConfig plus TSN's segmental consensus: ``"avg"`` (default, every earlier run) or ``"max"``."""

    consensus: str = "avg"

    def __post_init__(self) -> None:
        check_consensus(self.consensus)


# the train config's ``consensus`` field reaches TSNConfig (video train's config file key)
@MODELS.register("tsn", family="2d", temporal=False, config=TSNConfig, options=("consensus",))
def build(cfg: TSNConfig) -> Recognizer2D:
    return Recognizer2D(resnet(cfg), cfg)
