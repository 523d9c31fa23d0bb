"""The pre-training corpus: docstrings of the Python standard library (ships with every Python).

English prose about programming, a few megabytes, nothing to download. The module list is fixed and
sorted so the corpus is the same on every run of one Python version.
"""

from __future__ import annotations

import importlib
import inspect
import re

MODULES = (
    "argparse", "asyncio", "base64", "bisect", "calendar", "collections", "configparser", "contextlib",
    "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email", "enum", "fractions", "ftplib",
    "functools", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "html", "http.client", "http.server",
    "imaplib", "inspect", "io", "ipaddress", "itertools", "json", "logging", "mailbox", "math", "mimetypes",
    "multiprocessing",
    "numbers", "operator", "optparse", "os", "pathlib", "pickle", "pprint", "queue", "random", "re", "sched",
    "secrets", "selectors", "shelve", "shlex", "shutil", "smtplib", "socket", "socketserver", "sqlite3",
    "statistics", "string", "struct", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit",
    "tokenize", "traceback", "turtle", "typing", "unittest", "urllib.parse", "urllib.request", "uuid",
    "warnings",
    "wave", "weakref", "xml.dom.minidom", "xml.etree.ElementTree", "zipfile", "zoneinfo",
)


def _clean(doc: str) -> list[str]:
    """Split a docstring into paragraphs of prose, dropping code examples and tables."""
    out = []
    for para in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        lines = [ln for ln in para.splitlines() if not ln.lstrip().startswith((">>>", "...", "|", "+-", "$"))]
        text = " ".join(ln.strip() for ln in lines).strip()
        if len(text) >= 40 and sum(c.isalpha() for c in text) > 0.6 * len(text):
            out.append(text)
    return out


def stdlib_docstrings(max_chars: int | None = None) -> list[str]:
    """Paragraphs from the docstrings of :data:`MODULES` and their public classes/functions/methods."""
    paragraphs: list[str] = []
    seen: set[str] = set()
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # e.g. turtle without tkinter
            continue
        objects = [module]
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            obj = getattr(module, attr, None)
            if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj):
                objects.append(obj)
                if inspect.isclass(obj):
                    objects += [getattr(obj, m) for m in sorted(vars(obj)) if not m.startswith("_")
                                and callable(getattr(obj, m, None))]
        for obj in objects:
            doc = getattr(obj, "__doc__", None)
            if not isinstance(doc, str):
                continue
            for para in _clean(doc):
                if para not in seen:
                    seen.add(para)
                    paragraphs.append(para)
                    if max_chars is not None and sum(map(len, paragraphs)) >= max_chars:
                        return paragraphs
    return paragraphs
