"""Finding finished runs on disk and reading what each one recorded.

A run folder (README, "What a run produces") holds the resolved ``config.yaml``, the
CSVLogger's ``metrics.csv`` (``step`` = training iteration), ``samples/last.png``, Hydra's
``.hydra/overrides.yaml``, ``run_stats.json`` (parameter counts, seconds per iteration, peak
memory) and, when metrics were computed, ``metrics_protocol.json``
(``{"protocol_id": "<8 hex>", "protocol": {...}}``). Nothing here depends on the training
scheme: every numeric ``train/*``, ``val/*``, ``test/*`` and ``perf/*`` column is read.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

METRIC_PREFIXES = ("train/", "val/", "test/", "perf/")
PROTOCOL_COLUMN = "val/protocol_id"  # the protocol id logged as a number; not a metric to average
# Config keys that name, place or display a run without changing what it learns: left out of its digest.
NOT_TRAINING_KEYS = (
    "seed",
    "name",
    "tags",
    "ckpt_path",
    "paths",
    "logger",
    "optimized_metric",
    "hparams_search",
    "sweep",
    "callbacks.progress_bar",
    "callbacks.hparams",
    "callbacks.samples",
    "callbacks.last_checkpoint",
    "callbacks.run_stats",
)
SKIP_DIRS = {".hydra", "checkpoints", "samples", "tensorboard", "wandb", "plots", ".submitit"}


# Written by ganforge.callbacks.run_stats: parameter counts, seconds per iteration, peak memory.
RUN_STATS_FILE = "run_stats.json"
PARAMS_PREFIX = "params/"  # params/<role>: trained parameters of each role
PARAMS_ROLES = ("generator", "discriminator", "other", "total")
RUN_STATS_PERF = {"sec_per_iter": "perf/sec_per_iter", "peak_mem_mb": "perf/peak_mem_mb"}


@dataclass
class Series:
    """One metric of one run: values in logging order with their iteration (and epoch, where logged)."""

    steps: np.ndarray
    values: np.ndarray
    epochs: np.ndarray | None = None


@dataclass
class Run:
    """A finished (or stopped) run folder.

    Args:
        path: the run folder.
        overrides: the command-line overrides Hydra recorded (``key=value`` strings).
        seed: the run seed from ``config.yaml``.
        metrics: metric name -> :class:`Series` (empty when nothing was logged).
        protocol_id: id of the metric protocol, ``None`` when the run computed no protocol-bound metric.
        samples: the last sample grid, when the run wrote one.
        device: where ``run_stats.json`` says the run trained (``cpu``, the GPU's name), if it says.
        config_digest: 8 hex chars naming the resolved config without seed, paths and loggers.
        experiment: the run's ``name`` from ``config.yaml``.
        name: its display name among the runs reported together (:func:`assign_names`).
    """

    path: Path
    overrides: list[str] = field(default_factory=list)
    seed: int | None = None
    metrics: dict[str, Series] = field(default_factory=dict)
    protocol_id: str | None = None
    samples: Path | None = None
    config_digest: str = ""
    device: str | None = None
    experiment: str = ""
    name: str = ""


def config_digest(config: dict) -> str:
    """A short hash of what a run trains: the resolved config without :data:`NOT_TRAINING_KEYS`.

    Paths inside the config (checkpoint and sample folders) are written relative to the run
    folder first, so two runs of one config in two folders get the same digest.
    """
    config = copy.deepcopy(config)
    run_dir = str((config.get("paths") or {}).get("output_dir", "")) or None
    for key in NOT_TRAINING_KEYS:
        parent, _, leaf = key.rpartition(".")
        node = config.get(parent) if parent else config
        if isinstance(node, dict):
            node.pop(leaf, None)
    text = json.dumps(config, sort_keys=True, default=str)
    if run_dir:
        text = text.replace(run_dir, "<run>")
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _is_run_dir(folder: Path) -> bool:
    return (folder / "config.yaml").is_file() and (
        (folder / "metrics.csv").is_file() or (folder / ".hydra").is_dir()
    )


def find_runs(root: str | Path) -> list[Run]:
    """Every run folder under ``root`` (``root`` itself included), sorted by path.

    A run folder holds ``config.yaml`` and ``metrics.csv`` or ``.hydra/``; folders a run
    writes inside itself (``.hydra``, ``wandb``, ``tensorboard``, ...) are not searched.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    found, stack = [], [root]
    while stack:
        folder = stack.pop()
        if _is_run_dir(folder):
            found.append(folder)
        stack.extend(p for p in folder.iterdir() if p.is_dir() and p.name not in SKIP_DIRS)
    return assign_names([load_run(p) for p in sorted(found, key=_natural_key)])


def assign_names(runs: list[Run]) -> list[Run]:
    """Name each run by the overrides that differ between the runs, as the loggers name a sweep's jobs.

    ``loss=hinge seed=1``: the keys whose value is not the same in every run (the swept keys of
    a sweep), in command-line order, without keys that only place or display a run
    (:func:`~ganforge.loggers.naming.is_noise`). Runs that all agree are named by their
    experiment. A name two runs share gets `` #<folder>`` added.
    """
    from ganforge.loggers.naming import is_noise, job_values, name_from

    values = [job_values(r.overrides) for r in runs]
    keys: list[str] = []
    for run_values in values:
        keys += [k for k in run_values if k not in keys and not is_noise(k)]
    keys = [k for k in keys if len({v.get(k) for v in values}) > 1]
    for run in runs:
        run.name = name_from(keys, run.overrides) if keys else run.experiment or run.path.name
    counts = Counter(r.name for r in runs)
    for run in runs:
        if counts[run.name] > 1:
            run.name = f"{run.name} #{run.path.name}".strip()
    return runs


def _natural_key(path: Path) -> list:
    """Sort ``.../2`` before ``.../10`` (Hydra numbers sweep jobs without padding)."""
    return [int(part) if part.isdigit() else part for part in path.parts]


def load_run(path: str | Path) -> Run:
    """Read one run folder: overrides, seed, metrics, protocol and last sample grid."""
    path = Path(path)
    config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = (
        [str(o) for o in (yaml.safe_load(overrides_file.read_text()) or [])]
        if overrides_file.is_file()
        else []
    )
    metrics_file = path / "metrics.csv"
    metrics = read_metrics_csv(metrics_file) if metrics_file.is_file() else {}
    stats_file = path / RUN_STATS_FILE
    run_stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    metrics.update({k: v for k, v in run_stats_series(run_stats, metrics).items() if k not in metrics})
    samples = path / "samples" / "last.png"
    seed = config.get("seed")
    return Run(
        path=path,
        overrides=overrides,
        seed=int(seed) if isinstance(seed, int) else None,
        metrics={k: v for k, v in metrics.items() if k != PROTOCOL_COLUMN},
        protocol_id=read_protocol_id(path, metrics.get(PROTOCOL_COLUMN)),
        samples=samples if samples.is_file() else None,
        config_digest=config_digest(config),
        device=run_stats.get("device"),
        experiment=str(config.get("name") or ""),
    )


def _to_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def read_metrics_csv(path: str | Path) -> dict[str, Series]:
    """Every numeric ``train/*``, ``val/*``, ``test/*`` column of a CSVLogger file, ordered by step.

    Empty cells (a row logs only some keys) are skipped; ``nan``/``inf`` are kept as values.
    """
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, tuple[list[float], list[float], list[float]]] = {}
    for index, row in enumerate(rows):
        step = _to_float(row.get("step") or "")
        epoch = _to_float(row.get("epoch") or "")
        for key, cell in row.items():
            if not key or not key.startswith(METRIC_PREFIXES) or cell in (None, ""):
                continue
            value = _to_float(cell)
            if value is None:
                continue
            steps, values, epochs = columns.setdefault(key, ([], [], []))
            steps.append(step if step is not None else float(index))
            values.append(value)
            epochs.append(epoch if epoch is not None else math.nan)
    series = {}
    for key, (steps, values, epochs) in columns.items():
        order = np.argsort(np.asarray(steps), kind="stable")
        series[key] = Series(
            np.asarray(steps)[order], np.asarray(values, dtype=np.float64)[order], np.asarray(epochs)[order]
        )
    return series


def run_stats_series(stats: dict, metrics: dict[str, Series] | None = None) -> dict[str, Series]:
    """The contents of ``run_stats.json`` as one-value series at the run's last logged iteration.

    ``params/<role>`` (generator, discriminator, other, total: trained parameters) and
    ``perf/sec_per_iter`` / ``perf/peak_mem_mb`` (the run's final figures; ``metrics.csv`` holds
    their per-epoch values where the run logged them).
    """
    logged = [s for s in (metrics or {}).values() if len(s.steps)]
    step = max((float(s.steps[-1]) for s in logged), default=0.0)
    epoch = max((float(s.epochs[-1]) for s in logged if s.epochs is not None), default=math.nan)
    values = {
        f"{PARAMS_PREFIX}{role}": n for role, n in (stats.get("params") or {}).get("by_role", {}).items()
    }
    values.update({name: stats.get(key) for key, name in RUN_STATS_PERF.items()})
    return {
        name: Series(np.array([step]), np.array([float(v)]), np.array([epoch]))
        for name, v in values.items()
        if isinstance(v, (int, float))
    }


def read_protocol_id(run_dir: Path, column: Series | None = None) -> str | None:
    """The run's metric protocol id: ``metrics_protocol.json``, else the ``val/protocol_id`` column.

    A column that holds more than one id (a resumed run whose protocol changed) gives
    ``"mixed:<a>+<b>"``, which matches no other run.
    """
    file = run_dir / "metrics_protocol.json"
    if file.is_file():
        protocol_id = json.loads(file.read_text()).get("protocol_id")
        if protocol_id:
            return str(protocol_id)
    if column is None:
        return None
    ids = sorted({f"{int(v):08x}" for v in column.values if math.isfinite(v)})
    if not ids:
        return None
    return ids[0] if len(ids) == 1 else "mixed:" + "+".join(ids)
