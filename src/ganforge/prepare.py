"""``ganforge-prepare``: resize a folder of images once into LitData shards for ``data=stream``.

Usage:
    ganforge-prepare input=~/data/faces out=~/shards/faces64 img_size=64
    ganforge-prepare input=~/data/horse2zebra out=s3://my-bucket/horse2zebra128 img_size=128 workers=8
    ganforge-prepare input=... out=s3://bucket/prefix endpoint_url=http://minio.cluster:9000

Two layouts are recognised:

* a folder of images (found recursively by extension). With ``class_subfolders=auto`` (the
  default) the first-level subfolders are classes when every image sits in one and there are at
  least two; ``true`` insists, ``false`` ignores them. A ``val`` split of ``val_fraction`` is cut off
  with a fixed seed (``split_seed``), as ``data=image_folder`` does. Written: ``train/``, ``val/``.
* CycleGAN's unpaired layout, ``trainA/ trainB/`` (and ``testA/ testB/``, else ``val_fraction`` of
  each training domain is held out). Written: ``trainA/ trainB/ testA/ testB/``.

Each image is decoded and converted to ``channels`` as ganforge's folder data are
(:func:`ganforge.data.transforms.load_image`), its short side resized to ``img_size`` with
antialiasing and centre-cropped (the geometry of :func:`ganforge.data.transforms.image_transform`),
then stored as PNG (lossless, the default), JPEG (smaller, lossy) or raw uint8 (no decoding when
read, largest). ``litdata.optimize`` writes the chunks with ``workers`` processes and a progress
bar. ``manifest.json`` is written last, so its presence means the shards are complete; it holds the
kind, size, channels, classes, the count of each split and a digest of the chunk indexes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms import v2

from ganforge.data.base import split_indices
from ganforge.data.index import find_images
from ganforge.data.stream import (
    FORMAT_VERSION,
    MANIFEST,
    allow_plain_http,
    is_remote,
    join,
    read_text,
    shards_digest,
    write_text,
)
from ganforge.data.transforms import image_transform, load_image
from ganforge.utils.cli import parse_key_values, print_error

FORMATS = ("png", "jpeg", "uint8")
USAGE = (
    "usage: ganforge-prepare input=<folder | folder with trainA/ trainB/> out=<folder | s3://bucket/prefix> "
    "[img_size=64] [channels=3] [format=png|jpeg|uint8] [workers=N] [val_fraction=0.1] [split_seed=0] "
    "[class_subfolders=auto|true|false] [chunk_bytes=64MB] [endpoint_url=<S3-compatible endpoint>]"
)
DEFAULTS: dict[str, Any] = {
    "input": None,
    "out": None,
    "img_size": 64,
    "channels": 3,
    "format": "png",
    "workers": None,
    "val_fraction": 0.1,
    "split_seed": 0,
    "class_subfolders": "auto",
    "chunk_bytes": "64MB",
    "endpoint_url": None,
}
JPEG_QUALITY = 95  # visually lossless for photos; pick format=png where exact pixels matter


class EncodeImage:
    """``(path, label)`` to a stored item: decoded, converted, resized, cropped, encoded.

    Runs in ``litdata.optimize``'s worker processes, so it holds only picklable settings.
    """

    def __init__(self, img_size: int, channels: int, fmt: str, storage_options: dict | None = None):
        self.img_size, self.channels, self.format = img_size, channels, fmt
        self.storage_options = storage_options
        self.geometry = geometry_transform(img_size)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        allow_plain_http(self.storage_options)  # a spawned worker uploads chunks itself

    def __call__(self, item: tuple[str, int]) -> dict[str, Any]:
        path, label = item
        pixels = self.geometry(load_image(path, self.channels))  # uint8 (C, H, W)
        if self.format == "uint8":
            return {"image": pixels.contiguous(), "label": int(label)}
        buffer = io.BytesIO()
        image = v2.functional.to_pil_image(pixels)
        image.save(
            buffer, format=self.format.upper(), **({"quality": JPEG_QUALITY} if self.format == "jpeg" else {})
        )
        return {"image": buffer.getvalue(), "label": int(label)}


def geometry_transform(img_size: int) -> v2.Compose:
    """The resize and crop of :func:`image_transform` on uint8 pixels (its scaling is left to the reader)."""
    steps = image_transform(img_size).transforms
    return v2.Compose([t for t in steps if not isinstance(t, (v2.ToDtype, v2.Normalize))])


def class_labels(root: Path, files: list[Path], mode: str | bool) -> tuple[list[int], list[str]]:
    """Labels from first-level subfolders (``mode`` true, false or ``"auto"``) and the class names."""
    parts = [f.relative_to(root).parts for f in files]
    nested = all(len(p) >= 2 for p in parts)
    classes = sorted({p[0] for p in parts}) if nested else []
    if mode is True and not nested:
        loose = next(f for f, p in zip(files, parts, strict=True) if len(p) < 2)
        raise ValueError(f"class_subfolders=true but {loose} is not inside a class subfolder of {root}")
    if mode is False or (mode == "auto" and len(classes) < 2):
        return [0] * len(files), []
    return [classes.index(p[0]) for p in parts], classes


def plan_splits(
    root: Path, val_fraction: float, split_seed: int, class_subfolders: str | bool
) -> tuple[str, dict[str, list[tuple[str, int]]], list[str]]:
    """The kind of layout, the ``(path, label)`` items of each split, and the class names.

    Training items are stored in a random order (seeded by ``split_seed``): LitData shuffles the
    order of chunks and of windows inside a chunk, not items across chunks, so chunks written in
    folder order would give batches of one class or one folder.
    """
    if (root / "trainA").is_dir() and (root / "trainB").is_dir():
        splits = {}
        for domain in ("A", "B"):
            train = [(str(f), -1) for f in find_images(root / f"train{domain}")]
            held_out_dir = root / f"test{domain}"
            keep, cut = split_indices(len(train), 0.0 if held_out_dir.is_dir() else val_fraction, split_seed)
            train, held_out = [train[i] for i in keep], [train[i] for i in sorted(cut)]
            if held_out_dir.is_dir():
                held_out = [(str(f), -1) for f in find_images(held_out_dir)]
            if not held_out:
                raise ValueError(
                    f"{root} has no test{domain}/ folder and val_fraction={val_fraction} holds out nothing; "
                    "the metrics and panels need held-out images"
                )
            splits[f"train{domain}"], splits[f"test{domain}"] = train, held_out
        return "unpaired", splits, []
    files = find_images(root)
    labels, classes = class_labels(root, files, class_subfolders)
    items = [(str(f), label) for f, label in zip(files, labels, strict=True)]
    keep, cut = split_indices(len(items), val_fraction, split_seed)
    splits = {"train": [items[i] for i in keep]}
    if len(cut):
        splits["val"] = [items[i] for i in sorted(cut)]
    return "images", splits, classes


@contextlib.contextmanager
def private_chunk_cache():
    """A folder of this call's own for the chunks LitData stages before uploading them to a remote
    output (its default, ``$TMPDIR/chunks``, is shared by every ``optimize`` on the machine, so two
    at once delete each other's chunks); kept when ``DATA_OPTIMIZER_CACHE_FOLDER`` names one."""
    if os.environ.get("DATA_OPTIMIZER_CACHE_FOLDER"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="ganforge-prepare-") as folder:
        os.environ["DATA_OPTIMIZER_CACHE_FOLDER"] = folder
        try:
            yield
        finally:
            del os.environ["DATA_OPTIMIZER_CACHE_FOLDER"]


def prepare(
    input: str | Path,
    out: str,
    img_size: int = 64,
    channels: int = 3,
    format: str = "png",
    workers: int | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    class_subfolders: str | bool = "auto",
    chunk_bytes: str | int = "64MB",
    storage_options: dict | None = None,
    progress: bool = True,
    start_method: str | None = None,
) -> dict[str, Any]:
    """Write LitData shards of ``input`` into ``out`` and return the manifest written there.

    Args:
        input: a folder of images (optionally class subfolders), or one with ``trainA/ trainB/``.
        out: a folder or ``s3://bucket/prefix``; it must not hold shards already.
        img_size: side of the stored square images (short side resized, centre crop).
        channels: 1 (grey) or 3 (RGB); every image mode is converted.
        format: ``png``, ``jpeg`` or ``uint8``.
        workers: ``litdata.optimize`` processes; ``None`` = the CPU count (at most 8).
        val_fraction: share held out as ``val`` (or per domain where testA/testB are missing).
        split_seed: seed of that split.
        class_subfolders: ``"auto"``, ``True`` or ``False`` (folders of images only).
        chunk_bytes: target chunk size; LitData streams whole chunks.
        storage_options: for ``s3://`` outputs: ``endpoint_url``, keys, region (boto3's names).
        progress: show LitData's progress bar.
        start_method: of the worker processes; ``None`` = ``"fork"`` on Linux (a spawned worker
            re-imports torch: seconds per split on a busy machine), else LitData's choice.

    Raises:
        FileNotFoundError: ``input`` is not a folder.
        ValueError: a setting out of range, or a layout without images.
    """
    if format not in FORMATS:
        raise ValueError(f"format={format} is not one of {', '.join(FORMATS)}")
    if channels not in (1, 3) or int(img_size) < 4 or not 0 <= float(val_fraction) < 1:
        raise ValueError(
            f"need channels 1 or 3, img_size >= 4 and val_fraction in [0, 1); got {channels}, {img_size}, "
            f"{val_fraction}"
        )
    from litdata import optimize

    root = Path(input).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"input folder does not exist: {root}")
    out = str(out) if is_remote(str(out)) else str(Path(out).expanduser().resolve())
    storage_options = dict(storage_options or {})
    allow_plain_http(storage_options)
    kind, splits, classes = plan_splits(root, float(val_fraction), int(split_seed), class_subfolders)
    encode = EncodeImage(int(img_size), int(channels), format, storage_options)
    workers = workers or min(os.cpu_count() or 1, 8)
    start_method = start_method or ("fork" if sys.platform == "linux" else None)
    with private_chunk_cache():
        for split, items in splits.items():
            optimize(
                encode,
                items,
                output_dir=join(out, split),
                chunk_bytes=chunk_bytes,
                num_workers=max(1, min(int(workers), len(items))),
                reorder_files=False,  # keep the seeded order: the same folder gives the same chunks
                keep_data_ordered=True,
                storage_options=storage_options,
                verbose=progress,
                start_method=start_method,
            )
            check_written(join(out, split), len(items), storage_options)
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "img_size": int(img_size),
        "channels": int(channels),
        "format": format,
        "classes": classes,
        "splits": {split: split_summary(items, classes) for split, items in splits.items()},
        "source": str(root.resolve()),
        "digest": shards_digest(out, list(splits), storage_options),
    }
    write_text(join(out, MANIFEST), json.dumps(manifest, indent=2) + "\n", storage_options)
    return manifest


def check_written(split_dir: str, expected: int, storage_options: dict) -> None:
    """Refuse a split whose index lacks items: LitData can return after a worker died."""
    try:
        index = json.loads(read_text(join(split_dir, "index.json"), storage_options))
        written = sum(chunk["chunk_size"] for chunk in index["chunks"])
    except FileNotFoundError:
        written = 0
    if written != expected:
        raise RuntimeError(
            f"litdata.optimize wrote {written} of {expected} items to {split_dir}; see the worker errors above"
        )


def split_summary(items: list[tuple[str, int]], classes: list[str]) -> dict[str, Any]:
    """The item count of a split and, with classes, the count of each."""
    summary: dict[str, Any] = {"count": len(items)}
    if classes:
        counts = torch.bincount(torch.tensor([label for _, label in items]), minlength=len(classes))
        summary["per_class"] = dict(zip(classes, counts.tolist(), strict=True))
    return summary


def describe(manifest: dict[str, Any], out: str) -> str:
    """What was written, and the command that trains from it."""
    counts = ", ".join(f"{split} {info['count']}" for split, info in manifest["splits"].items())
    option = "stream_unpaired" if manifest["kind"] == "unpaired" else "stream"
    classes = f", {len(manifest['classes'])} classes" if manifest["classes"] else ""
    return (
        f"wrote {manifest['kind']} shards ({counts}; {manifest['img_size']} px, {manifest['channels']} channels, "
        f"{manifest['format']}{classes}) to {out} [digest {manifest['digest']}]\n"
        f"train from them: ganforge-train data={option} data.input_dir={out} data.img_size={manifest['img_size']} "
        f"data.channels={manifest['channels']}"
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_key_values(argv, DEFAULTS)
        for key in ("input", "out"):
            if not args[key]:
                raise ValueError(f"{key}=... is required")
            args[key] = str(args[key])
        endpoint = args.pop("endpoint_url")
        manifest = prepare(**args, storage_options={"endpoint_url": endpoint} if endpoint else None)
    except (ValueError, FileNotFoundError) as err:
        print_error("ganforge-prepare", err, USAGE)
        sys.exit(2)
    print(describe(manifest, str(args["out"])))


if __name__ == "__main__":
    main()
