"""Keep paths inside the directories the user named."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_inside(base: str | Path, relative: str | Path) -> Path:
    """Join ``relative`` onto ``base``, refusing results that escape ``base`` (``..``, absolute paths).

    Used for every path that comes from a data file (annotation lists, COCO ``file_name``, adapter configs).
    The check is on the joined path itself: links inside ``base`` are followed when the file is opened (a
    ``videos/`` link to another disk is the user's own set-up; a data file cannot create one).
    """
    base_path = Path(base).resolve()
    target = Path(os.path.normpath(base_path / relative))
    if target != base_path and base_path not in target.parents:
        raise ValueError(f"path {str(relative)!r} points outside {str(base_path)!r}; refusing to read or "
                         "write it")
    return target
