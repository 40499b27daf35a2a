"""Data loading: images per second delivered to the training step, time to the first batch, peak memory.

Three ways of feeding a GAN from a folder of JPEGs, each measured in a fresh process (so imports,
page caches of Python objects and worker pools do not leak from one measurement into the next):

* ``folder``: ganforge's lazy image folder (:class:`ganforge.data.folders.ImageFolderDataModule`,
  ``in_memory=false``, class subfolders, index read from a warm ``index_cache``);
* ``stream-<format>``: LitData shards written by :func:`ganforge.prepare.prepare` and read by
  :class:`ganforge.data.stream.StreamDataModule` (``uint8`` needs no decoding; ``jpeg`` is decoded
  in the loader); its loader yields uint8 batches, scaled to [-1, 1] in the main process by
  :func:`ganforge.data.stream.scale_batch` (what the data module's ``on_after_batch_transfer``
  does before the training step), and that scaling is timed with the loader;
* ``plain``: ``torchvision.datasets.ImageFolder`` (Resize, CenterCrop, ToTensor, Normalize) and a
  ``DataLoader(batch_size=64, shuffle=True)``, the baseline.

The images are generated at benchmark time from photos shipped in scikit-image and scikit-learn
(nine photos, one class subfolder each; random crops, flips and colour gains, saved as JPEG) and
cached under ``outputs/bench_data`` (git-ignored), as are the shards and the folder indexes.

Per loader, size and worker count: ``warmup`` untimed batches, then ``batches`` timed ones, each
brought to what the training step sees (float in [-1, 1]) and touched in the main process
(``images.float().sum()``) as a training step would. Time to the first
batch runs from building the data module to the first batch in hand, imports excluded (reported
separately). Peak memory: the sum of the high-water resident sets (``VmHWM``) of the main process
and its loader workers, read while the workers are alive; also the peak of their summed
proportional set sizes (PSS: pages shared after ``fork`` counted once), sampled every 100 ms. CPU
milliseconds per image (main process and workers, user + system, over the timed batches) do not
depend on how busy a shared machine is, as images per second do. For
ganforge's folder, the first batch is also timed the old way (every file decoded in ``setup``, no
header pass), with a cold index cache (empty folder) and with the warm one.

Usage:
    python benchmarks/bench_data.py                 # 50,000 and 5,000 images at 64 and 128 px
    python benchmarks/bench_data.py --quick         # 384 images at 32 px, a smoke run
    python benchmarks/bench_data.py --sizes 64 --formats uint8
    python benchmarks/bench_data.py --workers 2 --kinds plain stream --repeats 3 --throughput-only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "outputs" / "bench_data"
KINDS = ("plain", "folder", "stream")
_PHOTOS: dict[str, np.ndarray] = {}


# -- the images -------------------------------------------------------------------------------
def load_photos(size: int) -> dict[str, np.ndarray]:
    """The embedded colour photos (class name -> HxWx3 uint8), short side scaled to ``3 * size``."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    names = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
    photos = {name: getattr(skimage.data, name)() for name in (*names, "retina")}
    photos.update(zip(("china", "flower"), load_sample_images().images, strict=True))
    scaled = {}
    for name, array in sorted(photos.items()):
        img = Image.fromarray(array[..., :3])
        factor = 3 * size / min(img.size)
        scaled[name] = np.asarray(img.resize((round(img.width * factor), round(img.height * factor))))
    return scaled


def image_path(root: Path, i: int, names: list[str]) -> Path:
    """Image ``i`` of a generated set: class ``i % len(names)``, in that class's subfolder."""
    return root / names[i % len(names)] / f"{i:06d}.jpg"


def _write_images(job: tuple[Path, int, range]) -> None:
    root, size, indices = job
    names = sorted(_PHOTOS)
    for i in indices:
        rng = np.random.default_rng([0, i])
        photo = _PHOTOS[names[i % len(names)]]
        side = int(rng.integers(size, int(2.5 * size)))
        y, x = (int(rng.integers(0, n - side + 1)) for n in photo.shape[:2])
        crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((size, size), Image.BILINEAR)
        pixels = np.asarray(crop, dtype=np.float32) * rng.uniform(0.75, 1.25, 3) + rng.uniform(-20, 20)
        if rng.random() < 0.5:
            pixels = pixels[:, ::-1]
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(image_path(root, i, names), quality=90)


def generate(root: Path, n: int, size: int, workers: int = 2) -> Path:
    """``n`` JPEGs of ``size`` px under ``root`` (kept between runs; ``.complete`` marks a whole set)."""
    done = root / ".complete"
    if done.is_file() and done.read_text() == f"{n} {size}":
        return root
    shutil.rmtree(root, ignore_errors=True)
    _PHOTOS.update(load_photos(size))
    for name in _PHOTOS:
        (root / name).mkdir(parents=True)
    step = 2_000
    jobs = [(root, size, range(s, min(s + step, n))) for s in range(0, n, step)]
    with get_context("fork").Pool(workers) as pool:  # the photos reach the workers through fork
        pool.map(_write_images, jobs)
    done.write_text(f"{n} {size}")
    return root


def subset(source: Path, root: Path, n: int, size: int) -> Path:
    """The first ``n`` images of a generated set, hard-linked (copied where links fail) under ``root``."""
    done = root / ".complete"
    if done.is_file() and done.read_text() == f"{n} {size}":
        return root
    shutil.rmtree(root, ignore_errors=True)
    names = sorted(p.name for p in source.iterdir() if p.is_dir())
    for i in range(n):
        src, dst = image_path(source, i, names), image_path(root, i, names)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    done.write_text(f"{n} {size}")
    return root


def shards(root: Path, out: Path, size: int, fmt: str) -> tuple[Path, float]:
    """LitData shards of ``root`` in ``fmt`` (kept between runs) and the seconds writing them took."""
    if (out / "manifest.json").is_file():
        return out, float("nan")
    from ganforge.prepare import prepare

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    prepare(root, str(out), img_size=size, format=fmt, workers=2, val_fraction=0.0, progress=False)
    return out, time.perf_counter() - start


# -- one measurement, in its own process -------------------------------------------------------
def _status_kb(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/{'smaps_rollup' if field == 'Pss' else 'status'}").read_text()
    except OSError:
        return 0
    found = re.search(rf"^{field}:\s*(\d+) kB", text, flags=re.MULTILINE)
    return int(found.group(1)) if found else 0


def process_tree(root: int | None = None) -> list[int]:
    """``root`` (default: this process) and every process descended from it, from ``/proc``."""
    root = root or os.getpid()
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        tree += frontier
    return tree


class TreeMemory:
    """Peak summed PSS of this process and its descendants, sampled every ``interval`` s in a thread;
    :meth:`rss_peak_mb` sums their ``VmHWM`` (call it while the workers are alive)."""

    def __init__(self, interval: float = 0.1):
        self.interval, self.pss_peak_kb = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            pss = sum(_status_kb(pid, "Pss") for pid in process_tree())
            self.pss_peak_kb = max(self.pss_peak_kb, pss)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def rss_peak_mb() -> tuple[float, int]:
        """The summed ``VmHWM`` (MiB) of this process and its descendants, and how many there are."""
        tree = process_tree()
        return sum(_status_kb(pid, "VmHWM") for pid in tree) / 1024, len(tree)


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and its descendants alive now."""
    total = 0
    for pid in process_tree():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def make_loader(spec: dict):
    """The training loader ``spec`` names (see :func:`measure`)."""
    size, workers, batch = spec["size"], spec["workers"], spec["batch_size"]
    if spec["kind"] == "plain":
        from torch.utils.data import DataLoader
        from torchvision import datasets, transforms

        steps = [transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()]
        dataset = datasets.ImageFolder(
            spec["root"], transform=transforms.Compose([*steps, transforms.Normalize(0.5, 0.5)])
        )
        return DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    if spec["kind"] == "stream":
        from ganforge.data.stream import StreamDataModule

        dm = StreamDataModule(
            input_dir=spec["root"], img_size=size, channels=3, batch_size=batch, num_workers=workers
        )
        dm.setup("fit")
        if spec.get("per_image"):  # the former path: each image scaled to float in a worker
            dataset = dm.shards.dataset("train", shuffle=True, seed=dm.seed, scale=True)
            return dm.shards.loader(dataset, batch, workers, pin_memory=False)
        return dm.train_dataloader()
    from ganforge.data.folders import ImageFolderDataModule, decode_all
    from ganforge.data.index import find_images

    before = spec.get("first_batch") == "before"
    if before:  # the eager path this module replaced: decode every file in setup
        decode_all(find_images(spec["root"]), 3)
    dm = ImageFolderDataModule(
        root=spec["root"],
        class_subfolders=True,
        index_cache=None if before else spec["index_cache"],
        read_headers=not before,
        img_size=size,
        channels=3,
        batch_size=batch,
        num_workers=workers,
        val_fraction=0.0,
        in_memory=False,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm.train_dataloader()


def process_age() -> float:
    """Seconds since this process started (interpreter start-up and imports, before any loader)."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


def endless(loader, kind: str):
    """The loader's image batches as the training step sees them (float in [-1, 1]), epoch after epoch.

    The stream's uint8 batches are scaled here, by the function its data module's
    ``on_after_batch_transfer`` hook calls, so that per-batch cost is timed as the others' per-image one.
    """
    import torch

    from ganforge.data.stream import scale_batch

    while True:
        for images, _ in loader:
            yield scale_batch(images) if kind == "stream" and images.dtype == torch.uint8 else images


def measure(spec: dict) -> dict:
    """Time and memory of one loader.

    Args:
        spec: ``kind`` (plain, folder, stream), ``root`` (image folder or shard folder), ``size``,
            ``workers``, ``batch_size``, ``warmup`` and ``batches`` (untimed and timed batches),
            ``index_cache`` (folder kind) and ``first_batch`` (``"before"``: the eager path).
    """
    import torch  # noqa: F401  (imports are timed apart from the loader)
    import torchvision  # noqa: F401

    import ganforge.data.folders  # noqa: F401
    import ganforge.data.stream  # noqa: F401

    import_s = process_age()
    with TreeMemory() as memory:
        start = time.perf_counter()
        batches = endless(make_loader(spec), spec["kind"])
        next(batches).float().sum().item()
        first_batch_s = time.perf_counter() - start
        for _ in range(spec["warmup"] - 1):
            next(batches).float().sum().item()
        start, images, cpu = time.perf_counter(), 0, tree_cpu_seconds()
        for _ in range(spec["batches"]):
            batch = next(batches)
            batch.float().sum().item()
            images += len(batch)
        seconds, cpu = time.perf_counter() - start, tree_cpu_seconds() - cpu
        rss_mb, processes = memory.rss_peak_mb()
    return {
        **spec,
        "import_s": import_s,
        "first_batch_s": first_batch_s,
        "images_per_s": images / seconds,
        "cpu_ms_per_image": 1e3 * cpu / images,
        "rss_mb": rss_mb,
        "pss_mb": memory.pss_peak_kb / 1024,
        "processes": processes,
    }


def run_child(spec: dict, timeout: float = 600) -> dict:
    """:func:`measure` in a fresh Python process; returns its result."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode:
        raise RuntimeError(f"{spec['kind']} loader failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the whole benchmark ------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return float(np.median(values))


def ratio(top: float, bottom: float) -> float:
    """``top / bottom``, or NaN when ``bottom`` is zero: CPU time counts in clock ticks (10 ms), so a
    run too short to measure reads as no ratio, not as a crash or an infinite speed-up."""
    return top / bottom if bottom else float("nan")


def times(value: float) -> str:
    """A ratio as the tables print it."""
    return "n/a (too short to time)" if math.isnan(value) else f"{value:.2f}x"


def loader_name(spec: dict) -> str:
    if spec["kind"] != "stream":
        return spec["kind"]
    return f"stream-{spec['format']}" + (" per-image" if spec.get("per_image") else "")


def runs_of(results: list[dict], size: int, name: str, workers: int, images: int) -> list[dict]:
    """The throughput runs (not the first-batch ones) of one loader, size, worker count and set size."""
    key = (size, name, workers, images)
    return [
        r
        for r in results
        if (r["size"], loader_name(r), r["workers"], r["images"]) == key and not r.get("first_batch")
    ]


def goal_row(size: int, measure: str, value: str, goal: str = "-", met: bool | None = None) -> dict[str, str]:
    return {
        "size": f"{size} px",
        "measure": measure,
        "value": value,
        "goal": goal,
        "met": "-" if met is None else "yes" if met else "no",
    }


def summarize(results: list[dict], n: int, small: int, workers: int) -> list[dict[str, str]]:
    """The goals, measured side by side: streaming / plain images/s at ``workers`` workers, the first
    batch with a warm index, peak memory with ``n`` over ``small`` images (medians over repeats)."""

    def med(runs: list[dict], key: str) -> float:
        return median([r[key] for r in runs]) if runs else float("nan")

    rows = []
    for size in sorted({r["size"] for r in results}):
        plain = med(runs_of(results, size, "plain", workers, n), "images_per_s")
        for name in sorted({loader_name(r) for r in results if r["kind"] != "plain"}):
            speed = ratio(med(runs_of(results, size, name, workers, n), "images_per_s"), plain)
            stream = name.startswith("stream") and not name.endswith("per-image")
            measure = f"{name} / plain images/s, {workers} workers"
            rows.append(goal_row(size, measure, times(speed), *((">= 1.5x", speed >= 1.5) if stream else ())))
            cost = ratio(
                med(runs_of(results, size, "plain", workers, n), "cpu_ms_per_image"),
                med(runs_of(results, size, name, workers, n), "cpu_ms_per_image"),
            )
            rows.append(goal_row(size, f"plain / {name} CPU ms per image, {workers} workers", times(cost)))
        for mode in ("before", "cold", "warm"):
            found = [r for r in results if r["size"] == size and r.get("first_batch") == mode]
            if not found:
                continue
            seconds, warm = med(found, "first_batch_s"), mode == "warm"
            measure = f"folder first batch, {mode} ({workers} workers)"
            rows.append(
                goal_row(size, measure, f"{seconds:.2f} s", *(("< 5 s", seconds < 5) if warm else ()))
            )
        for name in sorted({loader_name(r) for r in results if r["images"] == small}):
            big, little = (runs_of(results, size, name, workers, count) for count in (n, small))
            if not big or not little:
                continue
            rss = ratio(med(big, "rss_mb"), med(little, "rss_mb"))
            pss = ratio(med(big, "pss_mb"), med(little, "pss_mb"))
            measure = f"{name} peak RSS {n} / {small} images (PSS), {workers} workers"
            goal = ("<= 1.10", rss <= 1.10) if name != "plain" else ()
            rows.append(goal_row(size, measure, f"{rss:.3f} ({pss:.3f})", *goal))
    return rows


def table(results: list[dict]) -> list[dict[str, str]]:
    """One row per measurement."""
    rows = []
    for r in results:
        what = loader_name(r) + (f", first batch {r['first_batch']}" if r.get("first_batch") else "")
        rows.append(
            {
                "size": f"{r['size']} px",
                "loader": what,
                "images": str(r["images"]),
                "workers": str(r["workers"]),
                "images/s": f"{r['images_per_s']:.0f}",
                "CPU ms/image": f"{r.get('cpu_ms_per_image', float('nan')):.2f}",
                "first batch (s)": f"{r['first_batch_s']:.2f}",
                "import (s)": f"{r['import_s']:.2f}",
                "peak RSS sum (MB)": f"{r['rss_mb']:.0f}",
                "peak PSS (MB)": f"{r['pss_mb']:.0f}",
                "processes": str(r["processes"]),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, str]]:
    """Command line (see the module docstring); prints the goals and returns one row per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="384 images at 32 px, 3 timed batches")
    parser.add_argument("--images", type=int, default=None, help="images in the large set (default 50000)")
    parser.add_argument("--small", type=int, default=None, help="images in the small set (default 5000)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="pixels (default 64 128)")
    parser.add_argument("--formats", nargs="+", default=None, help="shard formats (default uint8 jpeg)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--warmup", type=int, default=None, help="untimed batches (default 8)")
    parser.add_argument("--batches", type=int, default=None, help="timed batches (default 60)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the throughput runs")
    parser.add_argument(
        "--per-image",
        action="store_true",
        help="also time the stream's former path (each image scaled to float in a worker)",
    )
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS, help="loaders to time")
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="only the large set's throughput rounds (no first-batch or small-set runs)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="cache of images, shards and indexes")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return []
    quick = args.quick
    n = args.images or (384 if quick else 50_000)
    small = args.small or (192 if quick else 5_000)
    sizes = args.sizes or ([32] if quick else [64, 128])
    formats = args.formats or (["uint8"] if quick else ["uint8", "jpeg"])
    warmup, batches = args.warmup or (1 if quick else 8), args.batches or (3 if quick else 60)
    out = args.out / ("quick" if quick else "")
    most = max(args.workers)
    base = {"batch_size": 64, "warmup": warmup, "batches": batches}
    prepared, runs = [], []
    ways = [(fmt, per_image) for fmt in formats for per_image in (False, True)[: 1 + args.per_image]]
    for size in sizes:
        start = time.perf_counter()
        big = generate(out / f"jpeg{size}-{n}", n, size)
        little = subset(big, out / f"jpeg{size}-{small}", small, size)
        prepared.append(f"{size} px images ready in {time.perf_counter() - start:.0f} s")
        folders = {n: big, small: little}
        stream_roots = {}
        for fmt in formats if "stream" in args.kinds else []:
            for count in (n, small) if fmt == formats[0] and not args.throughput_only else (n,):
                root, seconds = shards(folders[count], out / f"shards-{fmt}{size}-{count}", size, fmt)
                stream_roots[fmt, count] = root
                if seconds == seconds:
                    prepared.append(f"{fmt} shards of {count} images at {size} px written in {seconds:.0f} s")
        cache = out / f"index-{size}"  # emptied for the cold run; warm from then on
        if not args.throughput_only:
            shutil.rmtree(cache, ignore_errors=True)
        for mode in ("before", "cold", "warm") if "folder" in args.kinds and not args.throughput_only else ():
            runs.append(
                {
                    **base,
                    "kind": "folder",
                    "root": str(big),
                    "size": size,
                    "workers": most,
                    "images": n,
                    "first_batch": mode,
                    "index_cache": str(cache),
                }
            )
        for _ in range(args.repeats):
            for workers in args.workers:
                for kind in args.kinds:
                    stream = kind == "stream"
                    for fmt, per_image in ways if stream else [(None, False)]:
                        runs.append(
                            {
                                **base,
                                "kind": kind,
                                "root": str(stream_roots[fmt, n] if stream else big),
                                "size": size,
                                "format": fmt,
                                "per_image": per_image,
                                "workers": workers,
                                "images": n,
                                "index_cache": str(cache),
                            }
                        )
        for kind in args.kinds if not args.throughput_only else ():
            root = stream_roots[formats[0], small] if kind == "stream" else little
            fmt = formats[0] if kind == "stream" else None
            runs.append(
                {
                    **base,
                    "kind": kind,
                    "root": str(root),
                    "size": size,
                    "format": fmt,
                    "workers": most,
                    "images": small,
                    "index_cache": str(cache),
                }
            )
    for line in prepared:
        print(line, flush=True)
    results = []
    for spec in runs:
        results.append(run_child(spec))
        r = results[-1]
        print(
            f"  {spec['size']} px {loader_name(spec)} x{spec['images']} w{spec['workers']} "
            f"{spec.get('first_batch') or ''}: {r['images_per_s']:.0f} images/s, first batch "
            f"{r['first_batch_s']:.2f} s, RSS {r['rss_mb']:.0f} MB",
            flush=True,
        )
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    goals = summarize(results, n, small, most)
    sys.path.insert(0, str(HERE))
    from bench_train import print_table

    print_table("Data loading goals, measured side by side in this run", goals)
    return table(results)


if __name__ == "__main__":
    rows = main(sys.argv[1:])
    if rows:
        from bench_train import print_table

        print_table("Data loading: images/s, first batch, peak memory", rows)
