"""Summarize the loss-zoo sweep: one row per variant, mean +- standard error over seeds.

Usage (from the repository root, after run.sh):
    PYTHONPATH=src .venv/bin/python experiments/loss_zoo_mnist5k/summarize.py [outputs/loss_zoo_mnist5k]

Reads every ``<variant>/seed=<k>/`` run folder: ``metrics.csv`` (D diagnostics averaged over the
last epoch's logged steps) and ``checkpoints/last.ckpt`` (256 samples of the EMA generator for a
pixel-space diversity ratio). Prints a Markdown table and writes ``samples.png`` here: one row
of samples per variant, from seed 0.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import torch

from ganforge.generate import generate
from ganforge.utils.images import image_grid, save_png

HERE = Path(__file__).resolve().parent
COLUMNS = [
    ("train/d_acc_real", "D acc. real"),
    ("train/d_acc_fake", "D acc. fake"),
    ("val/d_acc_real", "D acc. held-out real"),
    ("train/ada_p", "ADA p"),
    ("diversity", "diversity ratio"),
]


def last_epoch_means(metrics_csv: Path) -> dict[str, float]:
    """Mean of each logged value over the final epoch's rows (the last row for val/ keys)."""
    rows = list(csv.DictReader(open(metrics_csv)))
    last_epoch = max(int(r["epoch"]) for r in rows if r.get("epoch"))
    out: dict[str, float] = {}
    for key in {k for r in rows for k in r}:
        values = [
            float(r[key]) for r in rows if r.get(key) and r.get("epoch") and int(r["epoch"]) == last_epoch
        ]
        if values:
            out[key] = values[-1] if key.startswith("val/") else sum(values) / len(values)
    return out


def mean_pairwise_distance(x: torch.Tensor) -> float:
    flat = x.flatten(1).double()
    d = torch.cdist(flat, flat)
    n = flat.shape[0]
    return float(d.sum() / (n * (n - 1)))


def real_diversity(n: int = 256) -> float:
    from ganforge.data.embedded import MNIST5kDataModule

    dm = MNIST5kDataModule(img_size=28, channels=1, batch_size=n, val_fraction=0.1, split_seed=0)
    dm.setup("fit")
    images, _ = next(iter(dm.train_dataloader()))
    return mean_pairwise_distance(images[:n])


def mean_se(values: list[float]) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.3f} ± {sd / math.sqrt(len(values)):.3f}"


def main(root: Path) -> None:
    ref = real_diversity()
    table, rows_png = [], []
    for variant in sorted(
        p for p in root.iterdir() if p.is_dir() and list(p.glob("seed=*/checkpoints/last.ckpt"))
    ):
        runs = sorted(variant.glob("seed=*/checkpoints/last.ckpt"))
        stats: dict[str, list[float]] = {key: [] for key, _ in COLUMNS}
        for ckpt in runs:
            run = ckpt.parents[1]
            logged = last_epoch_means(run / "metrics.csv")
            samples, _ = generate(ckpt, n=256, seed=0)
            logged["diversity"] = mean_pairwise_distance(samples) / ref
            for key, _ in COLUMNS:
                if key in logged:
                    stats[key].append(logged[key])
            if run.name == "seed=0":
                rows_png.append(samples[:12])
        table.append((variant.name, len(runs), [mean_se(stats[key]) for key, _ in COLUMNS]))
    header = "| variant | seeds | " + " | ".join(title for _, title in COLUMNS) + " | FID / KID |"
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 3))
    for name, n, cells in table:
        print(f"| `{name}` | {n} | " + " | ".join(cells) + " | to be filled by ganforge-eval |")
    if rows_png:
        save_png(image_grid(torch.cat(rows_png), nrow=12), HERE / "samples.png")
        print("\nrows of samples.png (seed 0, EMA generator):", ", ".join(name for name, _, _ in table))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("outputs/loss_zoo_mnist5k"))
