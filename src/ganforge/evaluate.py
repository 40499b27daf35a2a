"""``ganforge-eval``: FID, KID, IS and precision/recall of a checkpoint or of two image folders.

Usage:
    ganforge-eval ckpt=outputs/dcgan_mnist5k/<run>/checkpoints/best.ckpt [metrics=domain] [n_fake=1000] [split=val]
    ganforge-eval real=<folder> fake=<folder> [extractor=domain|inception] [out=eval.json]
    ganforge-eval ckpt=<stylegan2 run>/checkpoints/last.ckpt truncation_psi=0.7 out=eval_psi0.7.json

A checkpoint is scored against its own dataset, rebuilt from the config stored in it, by its EMA
generator; two folders are scored like ``python -m pytorch_fid a b``. Prints a table and writes
JSON with the values and their protocol. Real statistics are cached as during training; a real
folder's cache key holds a digest of its files' names, sizes and times, so replacing or adding
images recomputes them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ganforge.data.digest import folder_digest
from ganforge.data.index import find_images
from ganforge.data.transforms import ImageLoadError, image_transform, load_image
from ganforge.metrics.evaluator import MetricEvaluator
from ganforge.metrics.features import EXTRACTORS
from ganforge.metrics.protocol import protocol_record, with_truncation, write_json_atomic
from ganforge.metrics.registry import check_names
from ganforge.utils.checkpoint import CheckpointError, checkpoint_config, load_checkpoint
from ganforge.utils.cli import parse_key_values, print_error
from ganforge.validation import check_truncation

USAGE = (
    "usage: ganforge-eval ckpt=<path> [metrics=domain|inception] [n_fake=1000] [split=val] [out=eval.json] "
    "[truncation_psi=1.0]\n"
    "       ganforge-eval real=<folder> fake=<folder> [extractor=domain|inception] [out=eval.json]"
)
DEFAULTS: dict[str, Any] = {
    "ckpt": None,
    "real": None,
    "fake": None,
    "metrics": None,  # alias of extractor, as in the training config group
    "extractor": "domain",
    "weights_path": None,
    "names": "fid,kid,is,pr",
    "n_fake": 1000,
    "n_real": None,
    "split": "val",
    "batch_size": 250,
    "seed": 0,
    "cache_dir": "outputs/.cache/metrics",
    "out": "eval.json",
    "truncation_psi": 1.0,  # checkpoints with a mapping network (StyleGAN2): samples truncated toward the average w
}


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``key=value`` arguments over :data:`DEFAULTS`; unknown keys raise with the valid ones."""
    args = parse_key_values(argv, DEFAULTS)
    if args["metrics"]:
        args["extractor"] = args["metrics"]
    if args["extractor"] not in EXTRACTORS:
        raise ValueError(f"extractor must be one of {', '.join(EXTRACTORS)}; got {args['extractor']!r}")
    if bool(args["ckpt"]) == bool(args["real"] or args["fake"]):
        raise ValueError("give either ckpt=<path> or both real=<folder> and fake=<folder>")
    if not args["ckpt"] and not (args["real"] and args["fake"]):
        raise ValueError("folder mode needs both real=<folder> and fake=<folder>")
    args["truncation_psi"] = float(args["truncation_psi"])
    if args["truncation_psi"] != 1 and not args["ckpt"]:
        raise ValueError("truncation_psi= applies to a checkpoint's generator, not to image folders")
    names = args["names"]
    args["names"] = check_names(n.strip() for n in (names.split(",") if isinstance(names, str) else names))
    return args


def folder_format(folder: str | Path) -> tuple[int, int]:
    """``(size, channels)`` of a folder's first image (its short side; grey modes give 1 channel)."""
    from PIL import Image

    with Image.open(find_images(folder)[0]) as img:
        return min(img.size), 1 if img.mode in ("1", "L", "I", "I;16", "F") else 3


def folder_batches(folder: str | Path, batch_size: int, size: int, channels: int):
    """A folder's images (sorted) as float batches in [-1, 1] of ``channels`` x ``size`` x ``size``."""
    transform = image_transform(size)
    files = find_images(folder)
    for start in range(0, len(files), batch_size):
        yield torch.stack([transform(load_image(f, channels)) for f in files[start : start + batch_size]])


def evaluator_for(args: dict[str, Any], real_split: str, n_fake: int) -> MetricEvaluator:
    return MetricEvaluator(
        names=args["names"],
        extractor=args["extractor"],
        weights_path=args["weights_path"],
        n_fake=n_fake,
        n_real=args["n_real"],
        real_split=real_split,
        batch_size=int(args["batch_size"]),
        cache_dir=args["cache_dir"],
        seed=int(args["seed"]),
    )


def evaluate_checkpoint(args: dict[str, Any]) -> dict[str, Any]:
    """Score a checkpoint's EMA generator against the real images of its own dataset."""
    from ganforge.train import build_module

    ckpt = load_checkpoint(args["ckpt"])
    config = OmegaConf.create(checkpoint_config(ckpt))
    datamodule = instantiate(config.data)
    module = build_module(config, None)
    module.load_state_dict(ckpt["state_dict"], strict=False)
    module.eval()
    psi = args["truncation_psi"]
    if psi != 1:  # the metric samples are drawn truncated; the protocol records psi
        if not hasattr(module, "metric_truncation_psi"):
            raise ValueError(f"truncation_psi={psi} applies to GAN checkpoints; {args['ckpt']} is not one")
        check_truncation(module.generator_ema, psi)
        module.metric_truncation_psi = psi
    evaluator = evaluator_for(args, args["split"], int(args["n_fake"]))
    real = evaluator.real_statistics(evaluator.reals(datamodule, args["split"]), datamodule.dataset_id)
    results = evaluator.evaluate(evaluator.fakes(module, datamodule=datamodule), real)
    source = {"ckpt": str(args["ckpt"]), "iteration": ckpt["ganforge"].get("iteration")}
    record = protocol_record(with_truncation(evaluator.protocol(real), psi))
    return {"source": source, "results": results, **evaluator.details, **record}


def evaluate_folders(args: dict[str, Any]) -> dict[str, Any]:
    """Score the images of ``fake`` against those of ``real`` (both resized to the real size)."""
    real_folder, fake_folder = Path(args["real"]).expanduser(), Path(args["fake"]).expanduser()
    n_fake = len(find_images(fake_folder))
    size, channels = folder_format(real_folder)
    evaluator = evaluator_for(args, "val", max(2, n_fake))
    files = find_images(real_folder)
    digest = folder_digest(real_folder, files)  # replaced or added images miss the cache
    dataset_id = f"folder|root={real_folder.resolve()}|n{len(files)}|img{size}|c{channels}|files={digest}"
    real = evaluator.real_statistics(
        folder_batches(real_folder, evaluator.batch_size, size, channels), dataset_id
    )
    results = evaluator.evaluate(folder_batches(fake_folder, evaluator.batch_size, size, channels), real)
    source = {"real": str(real_folder), "fake": str(fake_folder)}
    return {"source": source, "results": results, **evaluator.record(real)}


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    protocol = report["protocol"]
    title = f"protocol {report['protocol_id']}: {protocol['extractor']}, {protocol['n_real']} real / {protocol['n_fake']} fake"
    table = Table("metric", "value", title=title)
    for key, value in report["results"].items():
        table.add_row(key.removeprefix("val/"), f"{value:.6g}")
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    try:
        args = parse_args(argv)
        report = evaluate_checkpoint(args) if args["ckpt"] else evaluate_folders(args)
    except (ValueError, CheckpointError, FileNotFoundError, ImageLoadError) as err:
        print_error("ganforge-eval", err, USAGE)
        return 2 if isinstance(err, ValueError) and not isinstance(err, CheckpointError) else 1
    print_table(report)
    write_json_atomic(report, args["out"])
    print(f"wrote {args['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
