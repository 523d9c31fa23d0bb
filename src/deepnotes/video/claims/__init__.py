"""Claims of the video topic (``deepnotes reproduce --only video``); importing this package registers them.

One module per subject, imported below in the order the report lists them:

* :mod:`.recognition`: frame order needs temporal modelling (TSN vs temporal 2D and 3D models); cost of
  2D temporal modules against 3D networks;
* :mod:`.families`: 3D networks against 2D temporal modules on scene-based and on order-sensitive data;
* :mod:`.consensus`: TSN's average against max consensus;
* :mod:`.protocol`: the cost of I3D and TSM at each one's published protocol (32 against 8 frames);
* :mod:`.kernels`: 3D temporal kernels are smooth, TAM's adaptive ones are not;
* :mod:`.motion_cost`: optical flow against motion from feature differences;
* :mod:`.feature_motion`: feature-level motion (TEA, STM) against a flow stream, in accuracy;
* :mod:`.two_stream`: late fusion of an RGB and a flow stream;
* :mod:`.untrimmed`: action localisation in untrimmed video.

The model lists come from the model registry (:data:`deepnotes.video.models.MODELS`, by family), so a newly
registered temporal 2D or 3D model is trained and costed by the first two claims; :mod:`.common` holds
what the claims share (experiment size, the folder of runs trained once per report, one training call).
"""

# isort: off
from deepnotes.video.claims import recognition, families, consensus, protocol, kernels, motion_cost
from deepnotes.video.claims import feature_motion, two_stream, untrimmed
# isort: on

__all__ = ["consensus", "families", "feature_motion", "kernels", "motion_cost", "protocol", "recognition",
           "two_stream", "untrimmed"]
