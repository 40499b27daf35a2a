"""A digest of a folder's image files, for cache keys that notice replaced or added images.

It hashes each file's name relative to the folder, its size and its modification time: cheap
(one ``stat`` per file, nothing decoded) and different whenever a file is added, removed,
renamed or rewritten. Copying a folder without keeping times (``cp -r`` rather than ``cp -a``)
changes it too, so the copy's statistics are recomputed once: a cache miss, never a stale hit.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


def folder_digest(root: str | Path, files: Iterable[str | Path]) -> str:
    """16 hex digits of SHA-256 over ``(relative name, size, mtime in ns)`` of every file, sorted.

    Args:
        root: the folder the names are taken relative to.
        files: the files (below ``root``) that the data consists of.
    """
    root = Path(root).expanduser()
    entries = []
    for path in files:
        stat = Path(path).expanduser().stat()  # follows links: a rewritten target counts
        name = Path(os.path.relpath(Path(path).expanduser(), root)).as_posix()
        entries.append(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n")
    return hashlib.sha256("".join(sorted(entries)).encode()).hexdigest()[:16]
