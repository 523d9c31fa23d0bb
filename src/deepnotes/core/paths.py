"""Two policies for paths taken from files: what the user listed is read as listed; what we write, and paths
inside files we generate, stay inside the folder they belong to.

* :func:`resolve_listed` — a path the user wrote in a list or config (``videos/a.mp4``, ``/data/k400/a.mp4``):
  an absolute one is read as it is, a relative one is joined onto the folder it is relative to. This is what
  mmaction2 does (it joins its ``data_prefix`` with the line, and an absolute line stays absolute). Reading a
  file the user named is the user's call.
* :func:`resolve_inside` — a path we are about to write (``--out``), or one found in a file this project wrote
  (a run folder's metadata): it must stay inside ``base``; ``..`` or an absolute path is refused.
"""

from __future__ import annotations

import os
from pathlib import Path


def resolve_listed(base: str | Path, entry: str | Path) -> Path:
    """The file a user-listed ``entry`` names: itself when absolute, else ``base / entry`` (``base`` made
    absolute). Nothing is refused and nothing is normalised: ``a/../b`` is left to the file system, which
    follows a link ``a`` the way the user's shell would.
    """
    entry = Path(entry)  # no ``~`` expansion: a list is data, not a shell line (mmaction2 does not either)
    if entry.is_absolute():
        return entry
    return Path(base).resolve() / entry


def resolve_inside(base: str | Path, relative: str | Path) -> Path:
    """Join ``relative`` onto ``base``, refusing results that escape ``base`` (``..``, absolute paths).

    For every path we write (under the ``--out`` the user named) and for paths read from files this project
    generated; paths the user listed are read with :func:`resolve_listed`. The check is on the joined path
    itself: links inside ``base`` are followed when the file is opened (a ``videos/`` link to another disk
    is the user's own set-up; a data file cannot create one).
    """
    base_path = Path(base).resolve()
    target = Path(os.path.normpath(base_path / relative))
    if target != base_path and base_path not in target.parents:
        raise ValueError(f"path {str(relative)!r} points outside {str(base_path)!r}; refusing to read or "
                         "write it")
    return target
