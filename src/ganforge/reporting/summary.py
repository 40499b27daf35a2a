"""Final and best value of every metric per run, and mean ± std across the seeds of a group.

*Final* is the last logged value; *best* the minimum or maximum over the run's evaluations, with
the iteration and epoch it was reached at. Which way is better is decided in one place,
:func:`metric_goal` (a rule on the tokens of the name, overridable per report with ``goals``).
Names ending in :data:`BASELINE_SUFFIXES` are baselines of the metric without the suffix.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch

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
    "sweep.",
    "callbacks.progress_bar",
    "callbacks.run_stats",
    "callbacks.run_stats.",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
)
# THE DIRECTION RULE: the one place that says which way a metric is better. Tokens of a metric
# name (split on "/" and "_") decide; a report's ``goals`` (glob pattern -> "min" | "max" | None)
# override it, e.g. ``ganforge-report <sweep> goals=val/cycle_*:min,val/d_real:none``.
LOWER_IS_BETTER = set("fid kid loss lpips mse mae l1 l2 error err distance nll penalty cycle nce".split())
HIGHER_IS_BETTER = set("is inception precision recall acc accuracy psnr ssim density coverage modes".split())
NEUTRAL = {"std", "protocol"}  # a spread or an id has no better direction
GOAL_WORDS = {"min": "min", "max": "max", "none": None}
# A metric logged with one of these suffixes is a baseline of the metric without it (val/psnr_identity:
# the untranslated input scored like the translation; val/psnr_mean_target: the mean target image).
BASELINE_SUFFIXES = ("_identity", "_mean_target")


def metric_goal(name: str, goals: Mapping[str, str | None] | None = None) -> str | None:
    """``"min"`` for FID/KID/loss-like names, ``"max"`` for IS/precision/recall/accuracy-like names, else ``None``.

    Examples: ``val/fid`` -> min, ``val/kid_mean`` -> min, ``val/is_mean`` -> max,
    ``val/psnr`` -> max, ``val/label_acc`` -> max, ``val/l1`` -> min,
    ``train/d_acc_real`` -> max, ``val/kid_std`` -> None, ``train/d_real`` -> None.

    Args:
        name: a logged metric name.
        goals: overrides, glob pattern -> ``"min"``, ``"max"`` or ``None``; the first matching
            pattern wins over the token rule.
    """
    for pattern, goal in (goals or {}).items():
        if fnmatch(name, pattern):
            return goal
    tokens = set(re.split(r"[/_\-.]", name.lower())[1:] if "/" in name else re.split(r"[_\-.]", name.lower()))
    if tokens & NEUTRAL:
        return None
    if tokens & LOWER_IS_BETTER:
        return "min"
    if tokens & HIGHER_IS_BETTER:
        return "max"
    return None


def parse_goals(text: str) -> dict[str, str | None]:
    """``"val/cycle_*:min,val/d_real:none"`` -> ``{"val/cycle_*": "min", "val/d_real": None}``.

    Raises:
        ValueError: an item without ``:`` or a direction other than min, max, none.
    """
    goals: dict[str, str | None] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        pattern, sep, word = item.rpartition(":")
        if not sep or not pattern or word.lower() not in GOAL_WORDS:
            raise ValueError(f"goals: '{item}' is not <metric pattern>:min|max|none")
        goals[pattern] = GOAL_WORDS[word.lower()]
    return goals


def baseline_of(name: str) -> str | None:
    """``val/psnr_identity`` -> ``val/psnr``; ``None`` for other names and for training values
    (``train/nce_identity`` is a loss term, not a baseline)."""
    if not name.startswith(("val/", "test/")):
        return None
    for suffix in BASELINE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


@dataclass
class MetricSummary:
    """One metric of one run: its last value and its best value with the iteration (and epoch) it was reached."""

    final: float
    best: float
    best_step: float
    best_epoch: float = math.nan
    selected: float = math.nan  # the value at the evaluation where the selection metric was best


def summarize(
    values: np.ndarray, steps: np.ndarray, goal: str | None, epochs: np.ndarray | None = None
) -> MetricSummary:
    """Final = last logged value (NaN if the run ended diverged); best = min/max over finite values."""
    final = float(values[-1]) if len(values) else math.nan
    finite = np.isfinite(values)
    if goal is None or not finite.any():
        return MetricSummary(final, math.nan, math.nan)
    masked = np.where(finite, values, np.inf if goal == "min" else -np.inf)
    index = int(np.argmin(masked) if goal == "min" else np.argmax(masked))
    epoch = float(epochs[index]) if epochs is not None else math.nan
    return MetricSummary(final, float(values[index]), float(steps[index]), epoch)


def run_summary(
    run: Run, goals: Mapping[str, str | None] | None = None, select: str | None = None
) -> dict[str, MetricSummary]:
    """:func:`summarize` for every metric of a run, under :func:`metric_goal` with ``goals``.

    With ``select`` (a metric with a better direction), each summary's ``selected`` is the
    metric's value at the iteration where ``select`` was best: model selection on one split
    (e.g. ``val/label_acc_select``), scores read on another (``val/label_acc``).
    """
    summaries = {
        name: summarize(s.values, s.steps, metric_goal(name, goals), s.epochs)
        for name, s in run.metrics.items()
    }
    chosen = summaries.get(select) if select else None
    if chosen is not None and math.isfinite(chosen.best_step):
        for name, summary in summaries.items():
            at = np.flatnonzero(run.metrics[name].steps == chosen.best_step)
            if len(at):
                summary.selected = float(run.metrics[name].values[at[-1]])
    return summaries


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
    goals: Mapping[str, str | None] = field(default_factory=dict)  # overrides of metric_goal
    select: str | None = None  # the metric whose best evaluation gives the "selected" values
    _summaries: dict[int, dict[str, MetricSummary]] = field(default_factory=dict, repr=False)

    def summary(self, run: Run) -> dict[str, MetricSummary]:
        """:func:`run_summary` of one of the group's runs under the group's ``goals`` (computed once)."""
        if id(run) not in self._summaries:
            self._summaries[id(run)] = run_summary(run, self.goals, self.select)
        return self._summaries[id(run)]

    def stats(self, metric: str, stat: str = "final") -> tuple[float, float, int]:
        """``(mean, std, n)`` of a run statistic (``final``, ``best``, ``best_step``, ``best_epoch``, ``selected``)
        over the group's runs with a finite value.

        ``std`` is the sample standard deviation (ddof=1), NaN for a single run.
        """
        values = []
        for run in self.runs:
            if metric in run.metrics:
                value = getattr(self.summary(run)[metric], stat)
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


# Override keys named first in a group label: what a method comparison varies.
LABEL_FIRST = ("experiment", "model", "loss", "data")


def label_keys(runs: list[Run]) -> list[str]:
    """The varying keys that name a group, :data:`LABEL_FIRST` first.

    A key is left out when in every run its value is that of one key already named
    (``model=cut loss=cut`` reads ``model=cut``): the label stays unique, only shorter.
    """
    params = [hyperparameters(r) for r in runs]
    order = {k: i for i, k in enumerate(LABEL_FIRST)}
    kept: list[str] = []
    for key in sorted(varying_keys(runs), key=lambda k: (order.get(k, len(order)), k)):
        if any(all(p.get(key) == p.get(k) for p in params) for k in kept):
            continue
        kept.append(key)
    return kept


def group_runs(
    runs: list[Run], goals: Mapping[str, str | None] | None = None, select: str | None = None
) -> list[Group]:
    """Groups of runs with equal hyperparameters, config and protocol id, in order of first appearance.

    Labels name the varying overrides (:func:`label_keys`); groups that the overrides do not tell
    apart get the config digest (``[config 1a2b3c4d]``) or the protocol id (``[protocol ...]``) added.

    Args:
        runs: the runs, from :func:`~ganforge.reporting.runs.find_runs`.
        goals: overrides of :func:`metric_goal` (glob pattern -> ``"min"``, ``"max"`` or ``None``).
        select: a metric whose best evaluation selects each run's checkpoint (see :func:`run_summary`).
    """
    keys = label_keys(runs)
    protocols = Counter(r.protocol_id for r in runs if r.protocol_id is not None)
    main_protocol = protocols.most_common(1)[0][0] if protocols else None
    groups: dict[tuple, Group] = {}
    for run in runs:
        params = hyperparameters(run)
        key = (tuple(sorted(params.items())), run.config_digest, run.protocol_id)
        if key not in groups:
            label = " ".join(f"{k}={params[k]}" for k in keys if k in params)
            flagged = len(protocols) > 1 and run.protocol_id != main_protocol
            groups[key] = Group(
                params,
                run.protocol_id,
                run.config_digest,
                label=label,
                flagged=flagged,
                goals=dict(goals or {}),
                select=select,
            )
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
