"""Pose data: COCO keypoint reading with top-down crops, and the synthetic figure renderer."""
