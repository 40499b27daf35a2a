"""The report's tables: per-run and per-group CSV files and a Markdown summary.

Markdown cells read ``mean ± std`` over the seeds of a group (``(n=k)`` is added when only
``k`` of its runs have a finite value, e.g. one diverged); a single run shows its value alone.
"""

from __future__ import annotations

import csv
import math
from fnmatch import fnmatch
from pathlib import Path

from ganforge.reporting.runs import Run
from ganforge.reporting.summary import Group, common_overrides, metric_goal, run_summary, varying_keys

# Metrics shown in the Markdown tables unless ``metrics=`` says otherwise; the CSVs hold every metric.
DEFAULT_TABLE_METRICS = ("val/*", "test/*", "train/*loss")


def all_metrics(runs: list[Run]) -> list[str]:
    """Every metric name any run logged, ``val/`` and ``test/`` first."""
    names = {m for run in runs for m in run.metrics}
    return sorted(names, key=lambda m: (not m.startswith(("val/", "test/")), m))


def select_metrics(names: list[str], patterns: tuple[str, ...] | list[str]) -> list[str]:
    """Names matching any of the glob ``patterns`` (``val/*``), in the order of ``patterns``."""
    chosen: list[str] = []
    for pattern in patterns:
        chosen.extend(n for n in names if fnmatch(n, pattern) and n not in chosen)
    return chosen


def fmt(value: float) -> str:
    """Four significant digits; an em dash for a missing value."""
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def cell(group: Group, metric: str, stat: str) -> str:
    mean, std, n = group.stats(metric, stat)
    if n == 0:
        return "—"
    text = fmt(mean) if math.isnan(std) else f"{fmt(mean)} ± {fmt(std)}"
    return text if n == len(group.runs) else f"{text} (n={n})"


def _columns(metrics: list[str]) -> list[tuple[str, str]]:
    """(metric, stat) pairs: best is shown for val/test metrics that have a better direction."""
    cols = []
    for m in metrics:
        cols.append((m, "final"))
        if metric_goal(m) and not m.startswith("train/"):
            cols.append((m, "best"))
    return cols


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def groups_markdown(groups: list[Group], metrics: list[str]) -> str:
    """One row per group: its overrides, number of runs, seeds and mean ± std of each metric."""
    cols = _columns(metrics)
    with_protocol = any(g.protocol_id for g in groups)
    header = ["group", "runs", "seeds", *(["protocol"] if with_protocol else [])]
    header += [f"{m} ({stat})" for m, stat in cols]
    rows = []
    for g in groups:
        seeds = ",".join(str(r.seed) for r in g.runs if r.seed is not None) or "—"
        protocol = [(("⚠ " if g.flagged else "") + (g.protocol_id or "—"))] if with_protocol else []
        rows.append([g.label, str(len(g.runs)), seeds, *protocol, *(cell(g, m, s) for m, s in cols)])
    return markdown_table(header, rows)


def runs_markdown(groups: list[Group], metrics: list[str], root: Path) -> str:
    """One row per run: folder, group, seed and each metric's final (and best) value."""
    cols = _columns(metrics)
    header = ["run", "group", "seed", *[f"{m} ({stat})" for m, stat in cols]]
    rows = []
    for g in groups:
        for run in g.runs:
            summary = run_summary(run)
            values = [fmt(getattr(summary[m], s)) if m in summary else "—" for m, s in cols]
            rows.append([_rel(run.path, root), g.label, "—" if run.seed is None else str(run.seed), *values])
    return markdown_table(header, rows)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def write_runs_csv(groups: list[Group], metrics: list[str], path: Path, root: Path) -> Path:
    """``runs.csv``: per run its folder, group, protocol, config digest, overrides and ``<metric>:final|best|best_step``."""
    header = ["run", "group", "seed", "protocol_id", "config_digest", "overrides"]
    header += [f"{m}:{s}" for m in metrics for s in ("final", "best", "best_step")]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for g in groups:
            for run in g.runs:
                summary = run_summary(run)
                row = [
                    _rel(run.path, root),
                    g.label,
                    run.seed,
                    run.protocol_id or "",
                    run.config_digest,
                    " ".join(run.overrides),
                ]
                for m in metrics:
                    s = summary.get(m)
                    row += [s.final, s.best, s.best_step] if s else ["", "", ""]
                writer.writerow(row)
    return path


def write_groups_csv(groups: list[Group], metrics: list[str], path: Path) -> Path:
    """``report.csv``: per group ``<metric>:final_mean|final_std|best_mean|best_std|n``."""
    header = ["group", "runs", "seeds", "protocol_id", "config_digest", "flagged"]
    header += [f"{m}:{s}" for m in metrics for s in ("final_mean", "final_std", "best_mean", "best_std", "n")]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for g in groups:
            seeds = " ".join(str(r.seed) for r in g.runs)
            row = [g.label, len(g.runs), seeds, g.protocol_id or "", g.config_digest, int(g.flagged)]
            for m in metrics:
                final_mean, final_std, n = g.stats(m, "final")
                best_mean, best_std, _ = g.stats(m, "best")
                row += [final_mean, final_std, best_mean, best_std, n]
            writer.writerow(row)
    return path


def report_markdown(
    groups: list[Group], runs: list[Run], metrics: list[str], root: Path, figures: list[str]
) -> str:
    """The whole ``report.md``: source, shared overrides, protocol warnings, tables and figures."""
    lines = [f"# Report: {root}", "", f"{len(runs)} runs in {len(groups)} groups."]
    shared = common_overrides(runs)
    if shared:
        lines += ["", "Overrides common to all runs: `" + " ".join(shared) + "`"]
    varying = varying_keys(runs)
    if varying:
        lines += ["", "Groups differ in: " + ", ".join(f"`{k}`" for k in varying) + " (seeds are averaged)."]
    protocols = sorted({r.protocol_id for r in runs if r.protocol_id})
    if len(protocols) > 1:
        lines += [
            "",
            f"> ⚠ Runs were measured under {len(protocols)} different metric protocols "
            f"({', '.join(protocols)}): their metrics are not comparable and are never averaged together. "
            "Groups marked ⚠ use a protocol other than the most common one.",
        ]
    no_metrics = [_rel(r.path, root) for r in runs if not r.metrics]
    if no_metrics:
        lines += ["", "Runs without any logged metric: " + ", ".join(no_metrics)]
    lines += ["", "## Groups (mean ± std across seeds)", "", groups_markdown(groups, metrics)]
    lines += ["", "## Runs", "", runs_markdown(groups, metrics, root)]
    if figures:
        lines += ["", "## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def replace_block(
    text: str, block: str, start: str = "<!-- report -->", end: str = "<!-- /report -->"
) -> str:
    """Put ``block`` between the ``start`` and ``end`` markers of ``text`` (an experiment README).

    Raises:
        ValueError: the markers are missing.
    """
    head, sep, rest = text.partition(start)
    _, sep2, tail = rest.partition(end)
    if not sep or not sep2:
        raise ValueError(f"the README has no '{start}' ... '{end}' markers to write the table between")
    return f"{head}{start}\n{block.strip()}\n{end}{tail}"
