"""Two-stream recognition: optical flow extraction and storage (:mod:`.flow`), flow-aware loading and
transforms (:mod:`.dataset`), the synthetic appearance+motion set (:mod:`.synth`). The network itself is a
model like the others: :mod:`deepnotes.video.models.two_stream` (``build_model("two_stream", ...)``)."""

from deepnotes.video.models.two_stream import LateFusion, StreamView, TwoStream, TwoStreamConfig, parse_fusion

__all__ = ["LateFusion", "StreamView", "TwoStream", "TwoStreamConfig", "parse_fusion"]
