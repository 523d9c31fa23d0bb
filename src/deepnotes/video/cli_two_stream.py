"""`deepnotes video flow|detect ...`: optical flow extraction and untrimmed-video detection verbs."""

from __future__ import annotations

from deepnotes.video.cli import app  # noqa: F401  (verbs register on the video group)
