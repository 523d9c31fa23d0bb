"""deepnotes.pose: top-down 2D pose estimation with heatmap, L1 regression and RLE heads.

``data`` reads COCO keypoints and renders synthetic figures; ``heads`` holds the three heads; ``flow`` the
RealNVP used by RLE's loss; ``model`` joins the shared ResNet and a head; ``train``/``evaluate`` run and
score them; ``cli`` exposes ``deepnotes pose synth|train|eval|predict``.
"""
