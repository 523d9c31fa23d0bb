"""The claim registry.

A claim is a statement from the notes plus a function that measures it. At registration (:func:`claim`) it
declares its tests (:class:`~deepnotes.core.verdict.Test`: the quantity, its bound and the side the claim puts
it on; fixed before anything is measured), where it comes from (``origin``, :class:`Source`, :class:`Paper`).
The function receives a :class:`ClaimContext` (quick or full, seed, device, where to put plots) and returns an
:class:`Outcome`: the ``n`` measurements of each test (``samples``), the figures it measured, tables and
notes; the report turns the samples into estimates, 95% intervals and a verdict (held, refuted,
inconclusive). Each topic's ``claims.py`` (or ``claims/`` package) registers its claims with the decorator;
``deepnotes reproduce`` imports the modules that :data:`CLAIM_TOPICS` names and runs them.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deepnotes.core.checkpoint import atomic_write_json
from deepnotes.core.notes import NOTES, ORIGINS, Paper, Source
from deepnotes.core.registry import Registry
from deepnotes.core.verdict import Test

# topic id (what users type after --only) -> module whose import registers that topic's claims. One
# registry: `deepnotes topics`, `reproduce --only` and :func:`claim` all read it. A new topic is one line
# here (its claims module must be importable without running anything).
CLAIM_TOPICS: Registry[str] = Registry("claim topic")
for _topic, _module in (
    ("optim", "deepnotes.optim.claims"),
    ("stochastic_approx", "deepnotes.optim.claims"),
    ("activations", "deepnotes.nn.claims"),
    ("upsampling", "deepnotes.nn.claims"),
    ("calib", "deepnotes.calib.claims"),
    ("video", "deepnotes.video.claims"),
    ("peft", "deepnotes.peft.claims"),
    ("pose", "deepnotes.pose.claims"),
):
    CLAIM_TOPICS.register(_topic, _module)
TOPIC_MODULES = CLAIM_TOPICS  # the old name (a read-only mapping topic -> module, as before)


@dataclass
class Outcome:
    """What a claim function returns.

    ``figures``: named numbers (they go to results.json); ``samples``: test name -> its n measurements (one
    number for an exact test; a bare list or number when the claim has one test); ``floor``: test name ->
    why every arm sits at the metric's floor or ceiling (the test is then inconclusive, see
    :func:`~deepnotes.core.verdict.floor_reason`); ``condition``: the test applied, in words with its
    numbers (overrides the registered text when given); ``tables``: name -> list of row dicts, shown in the
    report; ``notes``: free text for the reader.
    """

    figures: dict[str, float]
    samples: dict[str, Any] | list[float] | float = field(default_factory=dict)
    condition: str | None = None
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: str = ""
    floor: dict[str, str] | str = field(default_factory=dict)


@dataclass
class ClaimContext:
    """What a claim function may use: size of the run, seed, device, and a folder for its plots."""

    quick: bool
    seed: int
    device: torch.device
    out_dir: Path
    claim_id: str = ""
    plots: list[Path] = field(default_factory=list)
    tests: tuple[Test, ...] = ()

    def pick(self, quick: Any, full: Any) -> Any:
        """``quick`` under --quick, else ``full``: the one place a claim sizes its experiment."""
        return quick if self.quick else full

    def seeds(self, n: int) -> list[int]:
        """``n`` seeds for the repeats of a measurement: ``1000 * seed + i``. Reports at different ``--seed``
        draw disjoint seeds (independent repeats); seed 0 keeps 0, 1, 2, ..."""
        return [1000 * self.seed + i for i in range(n)]

    @contextlib.contextmanager
    def one_thread(self, when: bool = True) -> Iterator[None]:
        """Run torch on one intra-op thread inside the block (when ``when``): small ops on a shared CPU spend
        more time waiting for each other's threads than they gain (20-30x slower steps measured under
        load)."""
        before = torch.get_num_threads()
        if when:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def collector(self) -> dict[str, list[float]]:
        """An empty list per test of the claim, to append each repeat's measurements to."""
        return {t.name: [] for t in self.tests}

    def save_plot(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as PNG under ``out_dir/plots`` and attach it to this claim's report."""
        import matplotlib.pyplot as plt

        plot_dir = self.out_dir / "plots"
        plot_dir.mkdir(parents=True, exist_ok=True)
        path = plot_dir / f"{self.claim_id}-{name}.png".replace("/", "_")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.plots.append(path)
        return path

    def scratch(self, name: str) -> Path:
        """A folder for this claim's intermediate files (synthetic data, runs)."""
        path = self.out_dir / "work" / self.claim_id / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cached(self, name: str, key: dict[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``compute()``'s JSON result, kept in the work folder and reused while ``key`` is unchanged.

        For the long pieces of a claim (a training of half an hour): a report killed in its third hour
        and run again with the same ``--out`` redoes only the piece it was in.
        """
        path = self.scratch("cached") / f"{name}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("key") == key:
                return saved["result"]
        result = compute()
        atomic_write_json(path, {"key": key, "result": result})
        return json.loads(path.read_text())["result"]  # the same value either way (tuples become lists)


@dataclass
class Claim:
    id: str
    topic: str
    statement: str
    condition: str
    fn: Callable[[ClaimContext], Outcome]
    tests: tuple[Test, ...] = ()
    origin: str = "library"
    source: Source | None = None
    paper: Paper | None = None


_REGISTRY: dict[str, Claim] = {}


def _check_metadata(id: str, tests: tuple[Test, ...], origin: str, source: Source) -> None:
    if not tests or not any(t.decides for t in tests):
        raise ValueError(f"claim {id!r}: at least one deciding test is needed")
    if len({t.name for t in tests}) != len(tests):
        raise ValueError(f"claim {id!r}: test names repeat")
    if origin not in ORIGINS:
        raise ValueError(f"claim {id!r}: origin {origin!r}; valid: {', '.join(ORIGINS)}")
    if source.note_key not in NOTES:
        raise ValueError(f"claim {id!r}: unknown note {source.note_key!r}; valid: {', '.join(NOTES)}")
    if origin == "note" and not source.note:
        raise ValueError(f"claim {id!r}: a note claim quotes the note's sentence")


def claim(id: str, topic: str, statement: str, condition: str = "", *, tests: Test | tuple[Test, ...],
          origin: str, source: Source, paper: Paper | None = None) -> Callable:
    """Register ``fn(ctx) -> Outcome`` as a claim. ``id`` is unique, e.g. ``optim.adam_l2_decay_scaled``.

    ``tests``: what the claim measures, its bound and side (one or several; see
    :mod:`deepnotes.core.verdict`); ``condition``: the tests in words (by default their descriptions);
    ``origin``: ``note``, ``paper`` or ``library``; ``source``: its note and the quoted sentence;
    ``paper``: the paper's reference, figure and setting where one applies.
    """
    CLAIM_TOPICS.entry(topic)  # an unknown topic: ValueError listing the valid ones
    tests = (tests,) if isinstance(tests, Test) else tuple(tests)
    _check_metadata(id, tests, origin, source)
    condition = condition or "; ".join(t.describe() for t in tests if t.decides)

    def register(fn: Callable[[ClaimContext], Outcome]) -> Callable[[ClaimContext], Outcome]:
        if id in _REGISTRY and _REGISTRY[id].fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"claim id {id!r} registered twice")
        _REGISTRY[id] = Claim(id=id, topic=topic, statement=statement, condition=condition, fn=fn,
                              tests=tests, origin=origin, source=source, paper=paper)
        return fn

    return register


def load_topics(topics: list[str] | None = None) -> list[str]:
    """Import the claim modules of ``topics`` (all when None); returns the topic ids asked for.

    A module that does not exist yet (a topic not built) is skipped when all topics are asked for and an
    error when named explicitly.
    """
    names = list(CLAIM_TOPICS) if not topics else topics
    unknown = [t for t in names if t not in CLAIM_TOPICS]
    if unknown:
        raise ValueError(f"unknown topic(s) {', '.join(unknown)}; valid: {', '.join(CLAIM_TOPICS)}")
    for topic in names:
        module = CLAIM_TOPICS[topic]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module or topics:
                raise
    return names


def registered_claims(topics: list[str] | None = None) -> list[Claim]:
    """Claims of ``topics`` (all when None), in registration order.

    An entry may also be one claim's id (``video.cost_2d_vs_3d``): that claim is selected alone, so a long
    ``--full`` experiment can be rerun without the rest of its topic.
    """
    topics = topics or []
    ids = [t for t in topics if t not in CLAIM_TOPICS]
    # nothing ties an id's prefix to its topic, so with ids every topic's claims are imported
    loaded = load_topics(None if ids or not topics else topics)
    unknown = [i for i in ids if i not in _REGISTRY]
    if unknown:
        raise ValueError(f"unknown topic(s) or claim id(s) {', '.join(unknown)}; valid: "
                         f"{', '.join(CLAIM_TOPICS)} (topics, `deepnotes topics`) or a claim id as the "
                         "report names it")
    names = [t for t in topics if t in CLAIM_TOPICS] if topics else loaded
    return [c for c in _REGISTRY.values() if c.topic in names or c.id in ids]
