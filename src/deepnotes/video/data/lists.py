"""Annotation lists in the formats mmaction2 writes.

* video list: ``path label`` per line (``path`` may contain spaces; the label is the last field);
* raw-frame list: ``frame_dir total_frames label`` per line (frames named by a template inside ``frame_dir``).

Paths are read as mmaction2 reads them: an absolute path as it is, a relative one joined onto ``root``
(default: the list's own folder) — :func:`deepnotes.core.paths.resolve_listed`. A list is the user's, so
reading what it names is the user's call; only writing is confined (to ``--out``). Every error names the list
file and line, so a user can fix the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deepnotes.core.paths import resolve_listed

LIST_FORMATS = ("auto", "video", "rawframes")  # auto: detect_format decides per list


class ListError(ValueError):
    """A malformed annotation list: the message names ``file:line`` and what to do."""


@dataclass(frozen=True)
class VideoRecord:
    """One annotated sample.

    ``path``: video file, or frames folder when ``total_frames`` is given (raw-frame lists);
    ``source``: ``list_file:line`` for messages; ``entry``: the path as the line wrote it (names derived
    from it, such as a flow folder's, follow the list rather than where ``--root`` pointed).
    """

    path: Path
    label: int
    total_frames: int | None = None
    source: str = ""
    entry: str = ""

    @property
    def is_frames(self) -> bool:
        return self.total_frames is not None


def _int(text: str, what: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ListError(f"{where}: {what} {text!r} is not an integer") from None


VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}


def _read_lines(list_path: Path) -> list[str]:
    """The file's lines as text; a line that is not UTF-8 is an error naming it."""
    lines = []
    # a byte-order mark (lists saved by some Windows editors) must not become part of the first path
    for n, raw in enumerate(list_path.read_bytes().removeprefix(b"\xef\xbb\xbf").splitlines(), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ListError(f"{list_path}:{n}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                            "save the list as UTF-8") from None
    return lines


def detect_format(list_path: str | Path) -> str:
    """``"rawframes"`` when the first data line is ``dir int int`` (and ``dir`` has no video suffix), else
    ``"video"``."""
    for line in _read_lines(Path(list_path)):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if Path(parts[0]).suffix.lower() in VIDEO_SUFFIXES:
            return "video"  # e.g. a multi-label video line 'a.mp4 1 3' is not a frames folder
        return "rawframes" if len(parts) >= 3 and parts[-1].isdigit() and parts[-2].isdigit() else "video"
    return "video"


def _more_numbers_hint(path_text: str) -> str:
    """A hint when the path part of a line ends in an integer: the line has more numeric fields than the
    format."""
    tail = path_text.split()
    if len(tail) > 1 and tail[-1].lstrip("-").isdigit():
        return ("; the line has more integer fields than this format: multi-label lists and raw-frame lists "
                "with a start offset are not supported (one label per line)")
    return ""


def read_list(list_path: str | Path, root: str | Path | None = None, num_classes: int | None = None,
              kind: str = "auto", check_files: bool = True) -> list[VideoRecord]:
    """Parse a video or raw-frame list into records.

    Args:
        kind: ``"video"``, ``"rawframes"`` or ``"auto"`` (:func:`detect_format`).
        num_classes: when given, labels outside ``[0, num_classes)`` are an error.
        check_files: a missing video file or frames folder is an error naming the line.
    Blank lines and lines starting with ``#`` are ignored.
    """
    list_path = Path(list_path)
    if not list_path.is_file():
        raise ListError(f"list file {list_path} does not exist")
    if kind == "auto":
        kind = detect_format(list_path)
    if kind not in LIST_FORMATS[1:]:
        raise ListError(f"unknown list format {kind!r}; valid: {', '.join(LIST_FORMATS)}")
    base = Path(root) if root is not None else list_path.parent
    records = []
    for n, line in enumerate(_read_lines(list_path), start=1):
        where = f"{list_path}:{n}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rsplit(maxsplit=2 if kind == "rawframes" else 1)
        if len(parts) != (3 if kind == "rawframes" else 2):
            want = "frame_dir total_frames label" if kind == "rawframes" else "path label"
            raise ListError(f"{where}: expected '{want}', got {line.strip()!r}")
        label = _int(parts[-1], "label", where)
        total = _int(parts[1], "total_frames", where) if kind == "rawframes" else None
        if total is not None and total <= 0:
            raise ListError(f"{where}: total_frames must be positive, got {total}")
        if label < 0:
            raise ListError(f"{where}: label {label} is negative; labels are class indices 0, 1, ...")
        if num_classes is not None and label >= num_classes:
            raise ListError(f"{where}: label {label} is outside the class range [0, {num_classes})")
        entry = parts[0].strip()
        path = resolve_listed(base, entry)
        if check_files and not (path.is_dir() if total is not None else path.is_file()):
            how = ("an absolute path" if Path(entry).is_absolute()
                   else f"paths are relative to {base}; set --root")
            raise ListError(f"{where}: {'frames folder' if total else 'video'} {path} does not exist "
                            f"({how}){_more_numbers_hint(parts[0])}")
        records.append(VideoRecord(path, label, total, where, entry))
    if not records:
        raise ListError(f"{list_path} has no samples")
    return records


def read_classes(path: str | Path) -> list[str]:
    """Class names, one per line (line ``i`` is label ``i``)."""
    names = [ln.strip() for ln in _read_lines(Path(path)) if ln.strip()]
    if not names:
        raise ListError(f"{path} lists no class names")
    return names


def write_list(path: str | Path, rows: list[tuple[str, int]]) -> None:
    """Write a ``path label`` video list."""
    from deepnotes.core import atomic_write_text

    atomic_write_text(path, "".join(f"{p} {label}\n" for p, label in rows))
