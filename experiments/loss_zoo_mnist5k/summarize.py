"""Summarize the loss-zoo sweep: one row per variant, mean +- standard error over seeds.

Usage (from the repository root, after run.sh):
    PYTHONPATH=src .venv/bin/python experiments/loss_zoo_mnist5k/summarize.py [outputs/loss_zoo_mnist5k]

Reads every ``<variant>/seed=<k>/`` run folder's ``metrics.csv``: the last FID/KID/IS and
precision/recall (domain network, 1,000 EMA samples against the 500 held-out digits) and D's
diagnostics averaged over the last epoch's logged steps. Prints a Markdown table (mean ± standard
error over seeds) and writes ``samples.png`` here: 12 EMA samples per variant from seed 0.
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
# (metrics.csv key, column title): quality first (domain network, last evaluation), then D's diagnostics.
COLUMNS = [
    ("val/fid", "FID"),
    ("val/kid_mean", "KID"),
    ("val/is_mean", "IS"),
    ("val/precision", "precision"),
    ("val/recall", "recall"),
    ("train/d_acc_real", "D acc. real"),
    ("train/d_acc_fake", "D acc. fake"),
    ("train/ada_p", "ADA p"),
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


def mean_se(values: list[float]) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.3f} ± {sd / math.sqrt(len(values)):.3f}"


def main(root: Path) -> None:
    table, rows_png = [], []
    for variant in sorted(
        p for p in root.iterdir() if p.is_dir() and list(p.glob("seed=*/checkpoints/last.ckpt"))
    ):
        runs = sorted(variant.glob("seed=*/checkpoints/last.ckpt"))
        stats: dict[str, list[float]] = {key: [] for key, _ in COLUMNS}
        for ckpt in runs:
            run = ckpt.parents[1]
            logged = last_epoch_means(run / "metrics.csv")
            for key, _ in COLUMNS:
                if key in logged:
                    stats[key].append(logged[key])
            if run.name == "seed=0":
                rows_png.append(generate(ckpt, n=12, seed=0)[0])
        table.append((variant.name, len(runs), [mean_se(stats[key]) for key, _ in COLUMNS]))
    print("| variant | seeds | " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|" + "---|" * (len(COLUMNS) + 2))
    for name, n, cells in table:
        print(f"| `{name}` | {n} | " + " | ".join(cells) + " |")
    if rows_png:
        save_png(image_grid(torch.cat(rows_png), nrow=12), HERE / "samples.png")
        print("\nrows of samples.png (seed 0, EMA generator):", ", ".join(name for name, _, _ in table))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("outputs/loss_zoo_mnist5k"))
