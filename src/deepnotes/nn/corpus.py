"""A text corpus that ships with every Python: the docstrings of the standard library, gathered by parsing.

Files are parsed with ``ast`` (never imported: importing ``antigravity`` opens a browser, ``this`` prints),
in sorted order, so the corpus is a deterministic function of the Python version. Whole files go to either
the training or the validation split (by a CRC of the module name), so no docstring leaks across.
Text is encoded as UTF-8 bytes: a 256-symbol vocabulary with no tokenizer to train.
"""

from __future__ import annotations

import ast
import inspect
import sysconfig
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass
class Corpus:
    train: torch.Tensor  # (n_train,) uint8 byte ids
    val: torch.Tensor  # (n_val,) uint8
    files: int  # files that contributed docstrings
    skipped: list[str]  # files that could not be read or parsed (named, not silently dropped)


def file_docstrings(path: Path) -> list[str]:
    """Docstrings of a module, its classes and functions, in source order, cleaned of indentation."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docs = []
    for node in ast.walk(tree):
        if isinstance(node, _DOC_NODES):
            doc = ast.get_docstring(node, clean=False)
            if doc and len(doc.strip()) > 1:
                docs.append(inspect.cleandoc(doc))
    return docs


def stdlib_docstrings(max_bytes: int | None = None, val_every: int = 10,
                      stdlib_dir: Path | None = None) -> Corpus:
    """Gather the corpus from the top-level ``*.py`` modules of the standard library.

    A module goes to validation when ``crc32(name) % val_every == 0`` (about 1 in ``val_every``).
    ``max_bytes`` caps each split (training at ``max_bytes``, validation at a ``1/val_every`` share).
    """
    root = Path(stdlib_dir or sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in root.glob("*.py") if not p.name.startswith("_"))
    if not paths:
        raise FileNotFoundError(f"no standard-library modules found in {root}")
    parts: dict[str, list[bytes]] = {"train": [], "val": []}
    sizes = {"train": 0, "val": 0}
    caps = {"train": max_bytes, "val": max_bytes // val_every if max_bytes else None}
    skipped, used = [], 0
    for path in paths:
        split = "val" if zlib.crc32(path.stem.encode()) % val_every == 0 else "train"
        if caps[split] is not None and sizes[split] >= caps[split]:
            continue
        try:
            docs = file_docstrings(path)
        except (SyntaxError, UnicodeDecodeError, OSError) as exc:
            skipped.append(f"{path.name}: {type(exc).__name__}")
            continue
        if not docs:
            continue
        blob = ("\n\n".join(docs) + "\n\n").encode("utf-8")
        parts[split].append(blob)
        sizes[split] += len(blob)
        used += 1
    data = {k: b"".join(v) for k, v in parts.items()}
    for k in data:
        if caps[k] is not None:
            data[k] = data[k][: caps[k]]
        if len(data[k]) < 1024:
            raise ValueError(f"stdlib docstring corpus: the {k} split has only {len(data[k])} bytes from "
                             f"{root}")
    as_tensor = {k: torch.frombuffer(bytearray(v), dtype=torch.uint8).clone() for k, v in data.items()}
    return Corpus(as_tensor["train"], as_tensor["val"], used, skipped)
