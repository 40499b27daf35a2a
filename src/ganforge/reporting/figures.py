"""The report's pictures: each metric against training iterations, and a mosaic of sample grids.

Curves: one thin line per run, coloured by group, plus the group mean as a thick line when
the group's runs logged the metric at the same iterations. Mosaic: one row per group, one
column per run, each cell the run's ``samples/last.png``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display (servers, CI)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from ganforge.reporting.summary import Group  # noqa: E402


def metric_filename(metric: str) -> str:
    """``val/fid`` -> ``val_fid.png``."""
    return metric.replace("/", "_") + ".png"


def plot_metric(groups: list[Group], metric: str, path: Path) -> Path | None:
    """Write ``path`` with ``metric`` against iterations for every run; ``None`` if no run logged it."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for index, group in enumerate(groups):
        colour = colours[index % len(colours)]
        series = [r.metrics[metric] for r in group.runs if metric in r.metrics]
        if not series:
            continue
        drawn = True
        many = len(series) > 1
        for i, s in enumerate(series):
            label = None if many or i else group.label
            marker = "o" if len(s.steps) <= 20 else None  # a metric computed a few times: its points show
            ax.plot(
                s.steps,
                s.values,
                color=colour,
                alpha=0.35 if many else 1.0,
                lw=1,
                marker=marker,
                ms=3,
                label=label,
            )
        same_steps = all(
            len(s.steps) == len(series[0].steps) and np.all(s.steps == series[0].steps) for s in series
        )
        if many and same_steps:
            mean = np.nanmean(np.stack([s.values for s in series]), axis=0)
            marker = "o" if len(mean) <= 20 else None
            label = f"{group.label} (mean of {len(series)})"
            ax.plot(series[0].steps, mean, color=colour, lw=2, marker=marker, ms=4, label=label)
        elif many:
            ax.plot([], [], color=colour, label=f"{group.label} ({len(series)} runs)")
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("iteration")
    ax.set_ylabel(metric)
    ax.set_title(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def samples_mosaic(groups: list[Group], path: Path, cell_inches: float = 1.8, dpi: int = 100) -> Path | None:
    """Write each run's last sample grid in a labelled mosaic; ``None`` if no run has one."""
    rows = [[r for r in g.runs if r.samples is not None] for g in groups]
    labelled = [(g, row) for g, row in zip(groups, rows, strict=True) if row]
    if not labelled:
        return None
    n_cols = max(len(row) for _, row in labelled)
    fig, axes = plt.subplots(
        len(labelled),
        n_cols,
        figsize=(cell_inches * n_cols, (cell_inches + 0.25) * len(labelled)),
        squeeze=False,
        layout="constrained",  # leaves room for every title, unlike tight_layout with images
    )
    for (group, row), ax_row in zip(labelled, axes, strict=True):
        for ax, run in zip(ax_row, row + [None] * (n_cols - len(row)), strict=True):
            ax.set_axis_off()
            if run is None:
                continue
            image = np.asarray(Image.open(run.samples).convert("RGB"))
            ax.imshow(image, interpolation="nearest")
            ax.set_title(run.name or f"{group.label}, seed={run.seed}", fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
