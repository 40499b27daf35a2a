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
        entries.append((name, stat.st_size, stat.st_mtime_ns))
    return listing_digest(entries)


def listing_digest(entries: Iterable[tuple[str, int, int]]) -> str:
    """The digest of :func:`folder_digest` from an existing listing of ``(relative name, size,
    mtime in ns)``, for callers that already stat the files (:mod:`ganforge.data.index`)."""
    lines = (f"{name}\0{size}\0{mtime_ns}\n" for name, size, mtime_ns in entries)
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()[:16]
