"""Table of a mode-collapse multirun: mean +- standard error over seeds of the final metrics.

Usage:
    python experiments/mode_collapse_2d/summarize.py outputs/mode_collapse_ring8/multirun_* [...]

Reads every run folder's ``config.yaml`` (dataset, pack, loss, seed) and the ``val/*`` row its
``metrics.csv`` holds for the last iteration (runs still going are skipped); prints one
Markdown row per (data, pack, loss). Also works for Stacked MNIST runs.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

import yaml


def final_metrics(run: Path, max_iters: int) -> dict[str, float] | None:
    """The mode metrics a run logged at its last iteration, or ``None`` if it has not finished."""
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r.get("val/modes")]
    if not rows or int(rows[-1]["step"]) != max_iters - 1:
        return None
    return {k.split("/")[1]: float(v) for k, v in rows[-1].items() if k.startswith("val/") and v}


def mean_se(values: list[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.3g}"
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.3g} ± {sd / math.sqrt(len(values)):.2g}"


def main(folders: list[str]) -> None:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for folder in folders:
        for config in sorted(Path(folder).glob("**/config.yaml")):
            run = config.parent
            if not (run / "metrics.csv").is_file():
                continue
            cfg = yaml.safe_load(config.read_text())
            metrics = final_metrics(run, cfg["model"]["max_iters"])
            if metrics is None:
                continue
            loss = cfg["loss"]["g_loss"]["_target_"].rsplit(".", 1)[-1].removeprefix("g_loss_")
            key = (
                cfg["data"].get("mixture", cfg["data"]["_target_"].rsplit(".", 2)[-2]),
                cfg["model"]["discriminator"]["pack"],
                loss,
            )
            groups[key].append({**metrics, "iters": cfg["model"]["max_iters"]})
    print("| data | pack | loss | seeds | modes | high quality (%) | KL | runs with all modes | iterations |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (data, pack, loss), runs in sorted(groups.items()):
        k = {"ring8": 8, "grid25": 25}.get(data, 1000)
        full = sum(r["modes"] == k for r in runs)
        hq = mean_se([100 * r["high_quality"] for r in runs]) if "high_quality" in runs[0] else "-"
        print(
            f"| {data} | {pack} | {loss} | {len(runs)} | {mean_se([r['modes'] for r in runs])} | {hq} | "
            f"{mean_se([r['kl'] for r in runs])} | {full}/{len(runs)} | {runs[0]['iters']} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
