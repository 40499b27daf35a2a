"""A cached index of a folder of images: what the folder datasets know before training starts.

Building an index lists the folder recursively (``os.scandir``, one ``stat`` per file) and,
optionally, reads every image's header in a thread pool: PIL's ``Image.open`` parses the size and
mode without decoding pixels, and a file that is not an image at all is found here, cheaply. No
pixel is decoded; a file whose pixels are corrupt is met (and named) when training reads it.

The index is cached on disk as ``index-<key>.json``, the key hashing the folder's path and the
digest of its listing (relative names, sizes, modification times: :mod:`ganforge.data.digest`),
so a changed, added or removed file gives a new key, never a stale hit. Files are written
through a temporary file and a rename; an unreadable one is rebuilt with a warning. Processes
that need the same missing index at once (the DDP ranks of a node) take turns under a file
lock, so the header pass runs once per node and the others read its result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ganforge.data.digest import listing_digest
from ganforge.data.transforms import IMAGE_EXTENSIONS

try:  # POSIX; elsewhere concurrent builders each build (the rename keeps the cache whole)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

INDEX_VERSION = 1
Entry = tuple[str, int, int]  # (name relative to the root, size in bytes, mtime in ns)


@dataclass
class FolderIndex:
    """The image files below ``root`` and what is known about them without decoding.

    Attributes:
        root: the folder.
        names: file names relative to ``root`` (POSIX separators), in path order.
        sizes: file sizes in bytes.
        mtimes: modification times in ns.
        digest: :func:`ganforge.data.digest.listing_digest` of the listing.
        headers: ``[width, height, mode]`` per file, ``None`` where unreadable; ``None`` when the
            headers were not read.
        errors: why each unreadable file's header could not be read, by name.
    """

    root: Path
    names: list[str]
    sizes: list[int]
    mtimes: list[int]
    digest: str
    headers: list[list | None] | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        return [self.root / name for name in self.names]

    def class_labels(self) -> tuple[list[str], list[int]]:
        """The first-level subfolders as classes (sorted) and each file's class index.

        Raises:
            ValueError: a file lies directly in ``root``, outside every class subfolder.
        """
        loose = [name for name in self.names if "/" not in name]
        if loose:
            raise ValueError(
                f"class_subfolders=true but {self.root / loose[0]} is not inside a class subfolder of {self.root}"
            )
        folders = [name.split("/", 1)[0] for name in self.names]
        classes = sorted(set(folders))
        lookup = {name: i for i, name in enumerate(classes)}
        return classes, [lookup[f] for f in folders]


def list_images(root: str | Path) -> list[Entry]:
    """``(relative name, size, mtime_ns)`` of every image file below ``root``, in path order.

    Image files are recognised by extension (case-insensitive); symlinked files are followed,
    symlinked folders are not descended (as ``Path.rglob`` does).

    Raises:
        FileNotFoundError: ``root`` does not exist or is not a folder.
        ValueError: ``root`` holds no image files.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder does not exist: {root}; give the path of a folder that holds the images"
        )
    entries: list[Entry] = []
    pending = [""]
    while pending:
        prefix = pending.pop()
        with os.scandir(root / prefix) as listing:
            for entry in listing:
                name = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append(name + "/")
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                    stat = entry.stat()  # follows links: a rewritten target counts
                    entries.append((name, stat.st_size, stat.st_mtime_ns))
    if not entries:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    entries.sort(key=lambda entry: entry[0].split("/"))  # the order of sorted(Path) objects
    return entries


def find_images(root: str | Path) -> list[Path]:
    """All image files below ``root``, sorted, by extension (case-insensitive).

    Raises:
        FileNotFoundError: ``root`` does not exist or is not a folder.
        ValueError: ``root`` holds no image files.
    """
    root = Path(root).expanduser()
    return [root / name for name, _, _ in list_images(root)]


def read_header(path: Path) -> list | str:
    """``[width, height, mode]`` from an image file's header, or why it cannot be read."""
    try:
        with Image.open(path) as img:
            return [img.width, img.height, img.mode]
    except (OSError, SyntaxError, ValueError) as err:  # UnidentifiedImageError is an OSError
        return str(err) or type(err).__name__


def build_index(
    root: Path, entries: list[Entry], read_headers: bool = True, workers: int | None = None
) -> FolderIndex:
    """The index of a listing; with ``read_headers``, every header read in ``workers`` threads."""
    names, sizes, mtimes = (list(column) for column in zip(*entries, strict=True))
    index = FolderIndex(root, names, sizes, mtimes, listing_digest(entries))
    if read_headers:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(read_header, index.files))
        index.headers = [r if isinstance(r, list) else None for r in results]
        index.errors = {n: r for n, r in zip(names, results, strict=True) if isinstance(r, str)}
    return index


def cache_path(cache_dir: str | Path, root: Path, digest: str) -> Path:
    """Where the index of ``root`` with this listing digest is cached."""
    key = hashlib.sha256(f"{INDEX_VERSION}\0{root.resolve()}\0{digest}".encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / f"index-{key}.json"


def read_cached(path: Path, fresh: FolderIndex, warn: bool = True) -> FolderIndex | None:
    """The cached headers of ``fresh``'s listing, or ``None`` if absent or unreadable (warned).

    The cached listing must equal the fresh one, so a cache file can never describe other files.
    """
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        listing = (data["names"], data["sizes"], data["mtimes"])
        if data["version"] != INDEX_VERSION or listing != (fresh.names, fresh.sizes, fresh.mtimes):
            raise ValueError("it describes other files")
        if len(data["headers"]) != len(fresh.names):
            raise ValueError("its headers do not match its files")
        return FolderIndex(**{**fresh.__dict__, "headers": data["headers"], "errors": data["errors"]})
    except (OSError, ValueError, KeyError, TypeError) as err:
        if warn:
            warnings.warn(f"rebuilding the unreadable folder index {path}: {err}", stacklevel=3)
        return None


def write_cached(path: Path, index: FolderIndex) -> None:
    """Write ``index`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    data = {key: getattr(index, key) for key in ("names", "sizes", "mtimes", "headers", "errors")}
    data.update(version=INDEX_VERSION, root=str(index.root), digest=index.digest)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` + ``.lock`` (blocking), where the platform and the
    folder allow one; otherwise go on unlocked (concurrent builders then each build)."""
    with contextlib.ExitStack() as stack:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = stack.enter_context(open(path.with_suffix(".lock"), "a"))
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        except OSError:
            pass
        yield


def folder_index(
    root: str | Path,
    cache_dir: str | Path | None = None,
    read_headers: bool = True,
    workers: int | None = None,
) -> FolderIndex:
    """The index of ``root``: read from ``cache_dir`` when its listing is unchanged, else built
    (and cached). Without ``read_headers`` the index is the listing itself and is not cached.

    Args:
        root: the image folder.
        cache_dir: folder of cached indexes; ``None`` builds without caching.
        read_headers: read every file's header (size, mode) in parallel; finds non-images early.
        workers: threads of the header pass (``None``: Python's default for I/O).
    """
    root = Path(root).expanduser()
    entries = list_images(root)
    listing = build_index(root, entries, read_headers=False)
    if not read_headers:
        return listing
    if cache_dir is None:
        return build_index(root, entries, True, workers)
    path = cache_path(cache_dir, root, listing.digest)
    cached = read_cached(path, listing)
    if cached is not None:
        return cached
    with exclusive(path):
        cached = read_cached(path, listing, warn=False)  # built by another process meanwhile?
        if cached is not None:
            return cached
        index = build_index(root, entries, True, workers)
        try:
            write_cached(path, index)
        except OSError as err:
            warnings.warn(f"cannot cache the folder index in {path.parent}: {err}", stacklevel=2)
        return index
