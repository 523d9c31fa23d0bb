"""The twelve study notes the claims come from, and what a claim records about its source.

The notes are the project's seed text (``study-notes.txt``, kept beside the repository in
``../shared/notes/``): short Chinese excerpts, one per note. They carry no titles, so each note gets an
English title here and the opening words it starts with (verbatim), by which a reader finds it there.

A claim names its note (:class:`Source`), quotes the note's sentence verbatim where the note says what the
claim tests, and says where the claim comes from (:data:`ORIGINS`): ``note`` (the notes say it), ``paper``
(a paper the note cites, or that the claim's method comes from, says it) or ``library`` (our own thesis,
built while implementing the note). ``paper`` and ``library`` claims still name the note they belong to and
may quote the sentence they extend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ORIGINS = ("note", "paper", "library")


@dataclass(frozen=True)
class Note:
    """One note of the seed text: ``key`` (what claims name), English ``title``, its verbatim ``opening``."""

    key: str
    title: str
    opening: str


# in the order of the seed text
NOTES: dict[str, Note] = {n.key: n for n in (
    Note("motion", "Motion features (STM, TEA) instead of optical flow; long-term modelling",
         "Motivation Motion feature 学习过程中存在的问题"),
    Note("3d", "3D networks: cost, smooth temporal kernels, scene- vs order-sensitive data",
         "研究动机 目前 3Dbased 的方法"),
    Note("two_stream", "Action classification and detection; two-stream networks",
         "Classification,Detection Classification"),
    Note("calib", "Multi-camera calibration pipeline (cornerSubPix, calibrateCamera, stereo, rig)",
         "整体流程: [代码] 0. 数据预处理"),
    Note("prefix", "Prefix-tuning (Li & Liang 2021)", "PrefixTuning Paper: 2021.1"),
    Note("peft_adapter", "Why parameter-efficient fine-tuning; adapter tuning",
         "背景 随着预训练语言模型进入LLM时代"),
    Note("activations", "Activation functions, from the perceptron's threshold to SwiGLU",
         "最近,似乎现在每个大型语言模型(LLM)"),
    Note("stochastic_approx", "Stochastic approximation: incremental mean, Robbins-Monro",
         "引言与背景 随机逼近(Stochastic Approximation)"),
    Note("upsampling", "Upsampling: interpolation, transposed convolution, PixelShuffle",
         "通过卷积和池化等技术可以将图像进行降维"),
    Note("peft_lora", "Why parameter-efficient fine-tuning; LoRA", "背景 随着预训练语言模型进入LLM时代"),
    Note("adamw", "Adam against AdamW: where the weight decay goes", "AdamW目前是大语言模型训练的默认优化器"),
    Note("rle", "Pose estimation: heatmaps against regression, RLE (Li et al. 2021)",
         "论文地址: 🔖 https://arxiv.org/pdf/2107.11291"),
)}


@dataclass(frozen=True)
class Source:
    """Where a claim comes from: its note (a key of :data:`NOTES`), the note's own sentence quoted verbatim
    (None when the excerpt does not contain the statement: a ``paper`` or ``library`` claim) and its English
    translation (or, without a quote, what the claim adds to the note)."""

    note_key: str
    note: str | None
    translation: str

    def as_json(self) -> dict[str, str | None]:
        return {"note": self.note, "translation": self.translation, "note_title": NOTES[self.note_key].title,
                "note_key": self.note_key}


@dataclass(frozen=True)
class Paper:
    """The paper a claim's statement comes from or that the note cites: reference, the figure or table with
    its number (what stands beside ours in the report) and the setting it was measured in."""

    ref: str
    figure: str
    setting: str

    def as_json(self) -> dict[str, str]:
        return {"ref": self.ref, "figure": self.figure, "setting": self.setting}


def notes_file() -> Path | None:
    """The seed text: ``$DEEPNOTES_NOTES`` if set, else ``../shared/notes/study-notes.txt`` beside the
    repository; None when neither exists (an installed package has no seed text)."""
    env = os.environ.get("DEEPNOTES_NOTES")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[4] / "shared" / "notes" / "study-notes.txt")
    return next((p for p in candidates if p.is_file()), None)
