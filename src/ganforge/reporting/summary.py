"""Final and best value of every metric per run, and mean ± std across the seeds of a group.

Grouping: runs whose overrides are equal once the keys in :data:`NOT_HYPERPARAMETERS` are
dropped (seed, paths, loggers, ...), whose resolved configs are equal once the seed and
paths are dropped (a run launched by hand, or an experiment file edited between runs), AND
whose metric protocol id is equal form one group. Runs measured under different protocols
are never averaged together (their FIDs are on different scales: other feature extractor,
sample count or resize).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ganforge.reporting.runs import Run

# Override keys that do not change what a run learns; dropped from the group key.
NOT_HYPERPARAMETERS = (
    "seed",
    "ckpt_path",
    "tags",
    "name",
    "logger",
    "logger.",
    "paths.",
    "hydra.",
    "callbacks.progress_bar",
    "callbacks.run_stats",
    "callbacks.run_stats.",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
)
# Tokens of a metric name (split on "/" and "_") saying which direction is better: the one place this rule lives.
LOWER_IS_BETTER = set("fid kid loss lpips mse mae l1 error err distance nll penalty".split())
HIGHER_IS_BETTER = set("is inception precision recall acc accuracy psnr ssim density coverage modes".split())
NEUTRAL = {"std", "protocol"}  # a spread or an id has no better direction


def metric_goal(name: str) -> str | None:
    """``"min"`` for FID/KID/loss-like names, ``"max"`` for IS/precision/recall/accuracy-like names, else ``None``.

    Examples: ``val/fid`` -> min, ``val/kid_mean`` -> min, ``val/is_mean`` -> max,
    ``train/d_acc_real`` -> max, ``val/kid_std`` -> None, ``train/d_real`` -> None.
    """
    tokens = set(re.split(r"[/_\-.]", name.lower())[1:] if "/" in name else re.split(r"[_\-.]", name.lower()))
    if tokens & NEUTRAL:
        return None
    if tokens & LOWER_IS_BETTER:
        return "min"
    if tokens & HIGHER_IS_BETTER:
        return "max"
    return None


@dataclass
class MetricSummary:
    """One metric of one run: its last value and its best value with the iteration it was reached."""

    final: float
    best: float
    best_step: float


def summarize(values: np.ndarray, steps: np.ndarray, goal: str | None) -> MetricSummary:
    """Final = last logged value (NaN if the run ended diverged); best = min/max over finite values."""
    final = float(values[-1]) if len(values) else math.nan
    finite = np.isfinite(values)
    if goal is None or not finite.any():
        return MetricSummary(final, math.nan, math.nan)
    masked = np.where(finite, values, np.inf if goal == "min" else -np.inf)
    index = int(np.argmin(masked) if goal == "min" else np.argmax(masked))
    return MetricSummary(final, float(values[index]), float(steps[index]))


def run_summary(run: Run) -> dict[str, MetricSummary]:
    """:func:`summarize` for every metric of a run."""
    return {name: summarize(s.values, s.steps, metric_goal(name)) for name, s in run.metrics.items()}


def split_override(override: str) -> tuple[str, str]:
    """``"+trainer.limit_train_batches=2"`` -> ``("trainer.limit_train_batches", "2")``; ``~key`` -> deleted."""
    key, _, value = override.partition("=")
    if key.startswith("~"):
        return key.lstrip("~"), "(deleted)"
    return key.lstrip("+"), value


def is_hyperparameter(key: str) -> bool:
    """Whether an override key can change what a run learns (see :data:`NOT_HYPERPARAMETERS`)."""
    return not any(key == k or (k.endswith(".") and key.startswith(k)) for k in NOT_HYPERPARAMETERS)


def hyperparameters(run: Run) -> dict[str, str]:
    """The run's overrides that matter for grouping, as ``{key: value}``."""
    pairs = (split_override(o) for o in run.overrides)
    return {k: v for k, v in pairs if is_hyperparameter(k)}


@dataclass
class Group:
    """Runs that differ only in seed (and in keys that do not matter), under one metric protocol."""

    params: dict[str, str]
    protocol_id: str | None
    config_digest: str = ""
    runs: list[Run] = field(default_factory=list)
    label: str = ""
    flagged: bool = False  # measured under a protocol other than the most common one

    def stats(self, metric: str, stat: str = "final") -> tuple[float, float, int]:
        """``(mean, std, n)`` of a run statistic over the group's runs with a finite value.

        ``std`` is the sample standard deviation (ddof=1), NaN for a single run.
        """
        values = []
        for run in self.runs:
            if metric in run.metrics:
                value = getattr(run_summary(run)[metric], stat)
                if math.isfinite(value):
                    values.append(value)
        if not values:
            return math.nan, math.nan, 0
        std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        return float(np.mean(values)), std, len(values)


def varying_keys(runs: list[Run]) -> list[str]:
    """Hyperparameter keys whose value is not the same in every run (absent counts as a value)."""
    params = [hyperparameters(r) for r in runs]
    keys = sorted({k for p in params for k in p})
    return [k for k in keys if len({p.get(k) for p in params}) > 1]


def common_overrides(runs: list[Run]) -> list[str]:
    """Overrides every run shares (printed once above the table)."""
    if not runs:
        return []
    shared = set(runs[0].overrides)
    for run in runs[1:]:
        shared &= set(run.overrides)
    return [o for o in runs[0].overrides if o in shared and not o.partition("=")[0].lstrip("+~") == "seed"]


def group_runs(runs: list[Run]) -> list[Group]:
    """Groups of runs with equal hyperparameters, config and protocol id, in order of first appearance.

    Labels name the varying overrides; groups that the overrides do not tell apart get the
    config digest (``[config 1a2b3c4d]``) or the protocol id (``[protocol ...]``) added.
    """
    keys = varying_keys(runs)
    protocols = Counter(r.protocol_id for r in runs if r.protocol_id is not None)
    main_protocol = protocols.most_common(1)[0][0] if protocols else None
    groups: dict[tuple, Group] = {}
    for run in runs:
        params = hyperparameters(run)
        key = (tuple(sorted(params.items())), run.config_digest, run.protocol_id)
        if key not in groups:
            label = " ".join(f"{k}={params[k]}" for k in keys if k in params)
            flagged = len(protocols) > 1 and run.protocol_id != main_protocol
            groups[key] = Group(params, run.protocol_id, run.config_digest, label=label, flagged=flagged)
        groups[key].runs.append(run)
    by_label = Counter(g.label for g in groups.values())
    configs_per_label = {lb: {g.config_digest for g in groups.values() if g.label == lb} for lb in by_label}
    for g in groups.values():
        suffix = []
        if by_label[g.label] > 1 and len(configs_per_label[g.label]) > 1:
            suffix.append(f"[config {g.config_digest}]")
        if len(protocols) > 1 and g.protocol_id is not None:
            suffix.append(f"[protocol {g.protocol_id}]")
        g.label = " ".join([g.label or ("defaults" if keys else "all runs"), *suffix])
    return list(groups.values())
