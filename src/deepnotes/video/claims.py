"""Claims of the video topic (action recognition); two-stream and untrimmed claims are in claims_two_stream."""

from __future__ import annotations

from deepnotes.video import claims_two_stream  # noqa: F401  (registers its claims under topic "video")
