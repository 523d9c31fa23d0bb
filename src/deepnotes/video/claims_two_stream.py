"""Claims of the video topic about optical flow, two-stream fusion and untrimmed-video localisation."""

from __future__ import annotations
