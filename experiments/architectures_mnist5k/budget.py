"""What each run of the architecture comparison reached in its wall-clock budget.

Usage (from the repository root, after run.sh's training runs):
    .venv/bin/python experiments/architectures_mnist5k/budget.py [outputs/architectures_mnist5k] [outputs/architectures_stacked_mnist]

With one folder given, no Stacked MNIST folder is read unless it is given too.

One line per run: experiment, seed, iterations (training batches), images seen by D, seconds per
iteration (``perf/sec_per_iter``) and the final FID, recall and coverage; then the Stacked MNIST
runs' mode count and KL from their ``metrics.csv``. Reads the run folders only.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import yaml


def last_values(path: Path) -> tuple[int, dict[str, str]]:
    """The number of iterations (largest logged step + 1) and the last non-empty value of each column."""
    values: dict[str, str] = {}
    steps = 0
    with path.open() as f:
        for row in csv.DictReader(f):
            steps = max(steps, int(row["step"]) + 1)
            values.update({k: v for k, v in row.items() if v not in ("", None)})
    return steps, values


def runs(root: Path) -> list[tuple[str, int, int, int, dict[str, str]]]:
    """(experiment, seed, iterations, batch size, last values) of every run folder below ``root``."""
    found = []
    for config_file in sorted(root.glob("*/*/config.yaml")):
        cfg = yaml.safe_load(config_file.read_text())
        steps, values = last_values(config_file.parent / "metrics.csv")
        found.append((cfg["name"], int(cfg["seed"]), steps, int(cfg["data"]["batch_size"]), values))
    return sorted(found, key=lambda r: (r[0], r[1]))


def fmt(values: dict[str, str], key: str, digits: int = 3) -> str:
    return f"{float(values[key]):.{digits}f}" if key in values else "-"


def main(argv: list[str]) -> None:
    if not argv:  # run.sh's own folders
        argv = ["outputs/architectures_mnist5k", "outputs/architectures_stacked_mnist"]
    root = Path(argv[0])
    stacked = Path(argv[1]) if len(argv) > 1 else None
    print("| experiment | seed | iterations | batch | images seen | s/iteration | FID | recall | coverage |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, seed, steps, batch, v in runs(root):
        print(
            f"| {name} | {seed} | {steps:,} | {batch} | {steps * batch:,} | {fmt(v, 'perf/sec_per_iter')} "
            f"| {fmt(v, 'val/fid', 2)} | {fmt(v, 'val/recall')} | {fmt(v, 'val/coverage')} |"
        )
    if stacked is not None and stacked.is_dir():
        print("\n| experiment | seed | iterations | images seen | modes (of 1,000) | KL |")
        print("|---|---|---|---|---|---|")
        for name, seed, steps, batch, v in runs(stacked):
            print(
                f"| {name} | {seed} | {steps:,} | {steps * batch:,} | {fmt(v, 'val/modes', 0)} | {fmt(v, 'val/kl')} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
