"""Deterministic synthetic fine-tuning tasks (seeded, nothing downloaded).

- ``table2text`` (E2E style, the paper's GPT-2 task): a restaurant record such as
  ``name : The Golden Palace | eatType : pub | food : Italian | area : riverside`` to a sentence that states
  every slot (several sentence plans, chosen at random).
- ``summarize`` (the paper's BART task, in miniature): a short news-like article with one key event
  among distracting sentences, to a one-sentence summary of that event.

Users may bring their own data instead: a JSON-lines file with ``source`` and ``target`` per line
(:func:`read_jsonl`).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepnotes.core import seeded_generator

TASKS = ("table2text", "summarize")

NAMES = ["The Golden Palace", "Blue Spice", "The Eagle", "Green Man", "The Mill", "Aromi", "Cotto", "Zizzi",
         "The Punter", "Fitzbillies", "Giraffe", "Alimentum", "Browns Cambridge", "The Wrestlers",
         "Loch Fyne",
         "The Cricketers", "Strada", "Midsummer House", "The Phoenix", "Clowns", "Bibimbap House",
         "Taste of Cambridge"]
EAT_TYPES = ["pub", "restaurant", "coffee shop"]
FOODS = ["Italian", "French", "Chinese", "Indian", "Japanese", "English", "fast food"]
PRICES = ["cheap", "moderately priced", "high priced", "less than 20 pounds", "more than 30 pounds"]
RATINGS = ["low", "average", "high", "1 out of 5", "3 out of 5", "5 out of 5"]
AREAS = ["riverside", "city centre"]
NEAR = ["the Rainbow Vegetarian Cafe", "Burger King", "the Bakers", "Crowne Plaza Hotel",
        "Raja Indian Cuisine", "the Sorrento", "Cafe Rouge", "the Portland Arms", "Yippee Noodle Bar",
        "All Bar One"]


@dataclass(frozen=True)
class Example:
    source: str
    target: str


def _table2text(rng: np.random.Generator) -> Example:
    slots = {"name": NAMES[rng.integers(len(NAMES))], "eatType": EAT_TYPES[rng.integers(len(EAT_TYPES))]}
    optional = {"food": FOODS, "priceRange": PRICES, "customer rating": RATINGS, "area": AREAS,
                "familyFriendly": ["yes", "no"], "near": NEAR}
    for key in optional:
        if rng.random() < 0.55:
            slots[key] = optional[key][rng.integers(len(optional[key]))]
    source = " | ".join(f"{k} : {v}" for k, v in slots.items())
    name, kind = slots["name"], slots["eatType"]
    first = [f"{name} is a {kind}", f"There is a {kind} called {name}", f"{name} is a {kind} you can visit"]
    parts = [first[rng.integers(len(first))]]
    if "food" in slots:
        parts.append(f"serving {slots['food']} food")
    if "priceRange" in slots:
        parts.append(f"with prices {slots['priceRange']}" if "than" in slots["priceRange"]
                     else f"that is {slots['priceRange']}")
    if "area" in slots:
        parts.append(f"in the {slots['area']} area")
    if "near" in slots:
        parts.append(f"near {slots['near']}")
    sentence = " ".join(parts) + "."
    extra = []
    if "customer rating" in slots:
        extra.append(f"It has a {slots['customer rating']} customer rating.")
    if "familyFriendly" in slots:
        friendly = slots["familyFriendly"] == "yes"
        extra.append("It is family friendly." if friendly else "It is not family friendly.")
    if len(extra) == 2 and rng.random() < 0.5:
        extra.reverse()
    return Example(source, " ".join([sentence, *extra]))


CITIES = ["Bristol", "Leeds", "Glasgow", "Norwich", "Oxford", "Cardiff", "York", "Bath", "Derby", "Exeter"]
GROUPS = ["the city council", "the hospital board", "the school trust", "the river authority", "the museum",
          "the football club", "the university", "the transport agency"]
ACTIONS = [("approved", "a new budget of {n} million pounds"), ("opened", "a new wing with {n} beds"),
           ("cancelled", "{n} planned bus routes"), ("hired", "{n} new teachers"),
           ("repaired", "{n} bridges after the floods"), ("sold", "{n} acres of farmland"),
           ("announced", "{n} new jobs"), ("closed", "{n} branch libraries")]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FILLER = ["The weather was mild for the time of year.", "Local shops reported a busy week.",
          "A spokesperson said more details would follow.", "Residents had raised the issue last spring.",
          "The decision followed a long public meeting.", "Critics said the plan came too late.",
          "Traffic on the main road was slow in the morning.",
          "Several volunteers helped with the preparations.",
          "The local newspaper covered the story on its front page.", "Officials thanked the community."]


def _summarize(rng: np.random.Generator) -> Example:
    city = CITIES[rng.integers(len(CITIES))]
    group = GROUPS[rng.integers(len(GROUPS))]
    verb, obj = ACTIONS[rng.integers(len(ACTIONS))]
    obj = obj.format(n=int(rng.integers(2, 90)))
    day = DAYS[rng.integers(len(DAYS))]
    key = f"On {day}, {group} of {city} {verb} {obj}."
    fillers = list(rng.choice(FILLER, size=int(rng.integers(2, 5)), replace=False))
    fillers.insert(int(rng.integers(0, len(fillers) + 1)), key)
    target = f"{group[0].upper()}{group[1:]} of {city} {verb} {obj} on {day}."
    return Example(" ".join(fillers), target)


GENERATORS = {"table2text": _table2text, "summarize": _summarize}
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}
# which tenths of the source space each split may use (by a hash of the source text): at 20000 training
# examples, independent draws put 58 of 500 test sources in the training set; buckets keep them apart
SPLIT_BUCKETS = {"train": range(0, 8), "val": range(8, 9), "test": range(9, 10)}


def split_of(source: str) -> str:
    """The split a source text belongs to (stable across runs and machines: CRC-32, not ``hash``)."""
    bucket = zlib.crc32(source.encode("utf-8")) % 10
    return next(name for name, buckets in SPLIT_BUCKETS.items() if bucket in buckets)


def make_task(task: str, split: str, n: int, seed: int = 0) -> list[Example]:
    """``n`` examples of ``task`` for ``split``; the splits never share a source (:func:`split_of`)."""
    if task not in GENERATORS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLIT_SEEDS)}")
    rng = seeded_generator(seed * 1000 + SPLIT_SEEDS[split] + 17 * TASKS.index(task))
    out: list[Example] = []
    while len(out) < n:
        ex = GENERATORS[task](rng)
        if split_of(ex.source) == split:
            out.append(ex)
    return out


def read_jsonl(path: str | Path) -> tuple[list[Example], list[str]]:
    """Examples from a JSON-lines file with ``source``/``target``; bad lines are skipped and reported."""
    path = Path(path)
    examples, problems = [], []
    need = 'need {"source": text, "target": text}'
    # decoded line by line: one bad byte costs one line
    for i, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8-sig" if i == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{path}:{i}: skipped (not UTF-8: {exc.reason} at byte {exc.start})")
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            source, target = row["source"], row["target"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            problems.append(f"{path}:{i}: skipped ({type(exc).__name__}: {exc}); {need}")
            continue
        bad = [k for k, v in (("source", source), ("target", target)) if not isinstance(v, str)]
        if bad:
            problems.append(f"{path}:{i}: skipped (field {bad[0]!r} is {type(row[bad[0]]).__name__}); {need}")
            continue
        examples.append(Example(source, target))
    return examples, problems
