"""The code base's own rules: short functions, no import cycles, every topic the same shape."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "deepnotes"
TOPICS = ("calib", "nn", "optim", "peft", "pose", "video")
TRAINS = ("peft", "pose", "video")  # topics with a train verb
CONFIGURED = ("calib", *TRAINS)  # topics whose runs are set by a config file
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def test_no_function_is_longer_than_sixty_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 60 lines: " + "; ".join(long)


def imported(name: str, path: Path, is_package: bool, known: set[str]) -> set[str]:
    """The deepnotes modules ``name`` imports anywhere in its file (in functions too: a cycle hidden in a
    function is still a cycle)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target in known:
                out.add(target)
                out |= {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known}
    out.discard(name)  # a package importing its own submodules (``from pkg import mod`` in pkg/__init__)
    return out


def test_no_import_cycles():
    mods = modules()
    graph = {m: imported(m, path, pkg, set(mods)) for m, (path, pkg) in mods.items()}
    cycles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(" -> ".join([*stack[stack.index(n):], n]))
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_no_import_at_the_bottom_of_a_module():
    late = []
    for path in PACKAGE.rglob("*.py"):
        body = ast.parse(path.read_text()).body
        seen_code = False
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                if seen_code:
                    late.append(f"{path.relative_to(SRC)}:{node.lineno}")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                seen_code = True  # imports after a definition are placed there to dodge a cycle
    assert not late, "imports after definitions: " + ", ".join(late)


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_has_the_same_shape_and_exports_its_api(topic):
    root = PACKAGE / topic
    assert (root / "cli.py").is_file(), f"{topic} has no cli.py"
    if topic in CONFIGURED:
        assert (root / "config.py").is_file(), f"{topic} has no config.py"
    assert (root / "claims.py").is_file() or (root / "claims" / "__init__.py").is_file(), f"{topic}: claims"
    if topic in TRAINS:  # video's is training.py: deepnotes.video.train is the exported function
        assert (root / "train.py").is_file() or (root / "training.py").is_file(), f"{topic} has no train.py"
    module = importlib.import_module(f"deepnotes.{topic}")
    assert getattr(module, "__all__", None), f"deepnotes.{topic} exports nothing (__all__)"
    for name in module.__all__:
        assert hasattr(module, name), f"deepnotes.{topic}.__all__ names {name!r}, which it does not define"
