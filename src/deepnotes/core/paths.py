"""Keep paths inside the directories the user named."""

from __future__ import annotations

from pathlib import Path


def resolve_inside(base: str | Path, relative: str | Path) -> Path:
    """Join ``relative`` onto ``base`` and refuse results that escape ``base`` (``..``, absolute paths, links).

    Used for every path that comes from a data file (annotation lists, COCO ``file_name``, adapter configs).
    """
    base_path = Path(base).resolve()
    target = (base_path / relative).resolve()
    if target != base_path and base_path not in target.parents:
        raise ValueError(f"path {str(relative)!r} points outside {str(base_path)!r}; refusing to read or write it")
    return target
