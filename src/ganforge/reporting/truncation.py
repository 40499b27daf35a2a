"""The truncation trade-off: FID against precision and recall for several truncation psi.

Truncation (Karras et al. 2019) pulls ``w`` toward its average: precision rises and recall falls
as psi goes from 1 to 0 (Kynkäänniemi et al. 2019, figure 6). This module scores a checkpoint
with ``ganforge-eval`` at each psi (one JSON each, the protocol recording psi) and plots FID
against precision and against recall, one point per psi.

Usage:
    python -m ganforge.reporting.truncation ckpt=<run>/checkpoints/last.ckpt [psis=1.0,0.9,0.7,0.5]
        [out=truncation] [n_fake=1000] [metrics=domain]      # evaluates, then plots
    python -m ganforge.reporting.truncation evals=out/eval_psi1.json,out/eval_psi0.7.json out=truncation
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display (servers, CI)
import matplotlib.pyplot as plt  # noqa: E402

PSIS = (1.0, 0.9, 0.7, 0.5)
USAGE = (
    "usage: python -m ganforge.reporting.truncation ckpt=<path> [psis=1.0,0.9,0.7,0.5] [out=truncation] "
    "[n_fake=1000] [metrics=domain|inception] [split=val] [seed=0] [cache_dir=outputs/.cache/metrics]\n"
    "       python -m ganforge.reporting.truncation evals=<a.json>,<b.json>,... [out=truncation]"
)
DEFAULTS: dict[str, Any] = {
    "ckpt": None,
    "evals": None,
    "psis": ",".join(map(str, PSIS)),
    "out": "truncation",
    "n_fake": 1000,
    "metrics": "domain",
    "split": "val",
    "seed": 0,
    "cache_dir": "outputs/.cache/metrics",
}


def sweep_point(report: dict[str, Any]) -> dict[str, float]:
    """``{"psi", "fid", "precision", "recall"}`` of one ``ganforge-eval`` report (psi 1 when unrecorded)."""
    results = report["results"]
    missing = [k for k in ("val/fid", "val/precision", "val/recall") if k not in results]
    if missing:
        raise ValueError(
            f"the evaluation lacks {', '.join(missing)}: evaluate with names=fid,pr (the default)"
        )
    return {
        "psi": float(report["protocol"].get("truncation_psi", 1.0)),
        "fid": float(results["val/fid"]),
        "precision": float(results["val/precision"]),
        "recall": float(results["val/recall"]),
    }


def evaluate_sweep(ckpt: str | Path, psis: Iterable[float], out: str | Path, **eval_args: Any) -> list[Path]:
    """Run ``ganforge-eval`` on ``ckpt`` at each psi; writes ``out/eval_psi<psi>.json`` and returns the files."""
    from ganforge import evaluate

    files = []
    for psi in psis:
        path = Path(out) / f"eval_psi{float(psi):g}.json"
        argv = [f"ckpt={ckpt}", f"truncation_psi={float(psi)}", f"out={path}"]
        argv += [f"{k}={v}" for k, v in eval_args.items()]
        if evaluate.main(argv) != 0:
            raise RuntimeError(f"ganforge-eval failed at truncation_psi={psi}")
        files.append(path)
    return files


def plot_truncation(points: Sequence[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """FID (y) against precision and against recall (x), each point labelled with its psi."""
    points = sorted(points, key=lambda p: -p["psi"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, key in zip(axes, ("precision", "recall"), strict=True):
        xs, ys = [p[key] for p in points], [p["fid"] for p in points]
        ax.plot(xs, ys, "-o", color="tab:blue")
        for p, x, y in zip(points, xs, ys, strict=True):
            ax.annotate(f"ψ={p['psi']:g}", (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("FID")
    fig.suptitle(title or "truncation: FID against precision and recall")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report_sweep(evals: Iterable[str | Path], out: str | Path) -> tuple[Path, list[dict[str, float]]]:
    """Plot the evaluations to ``out/truncation.png`` and tabulate them in ``out/truncation.md``."""
    reports = [json.loads(Path(e).read_text()) for e in evals]
    ids = {r["protocol_id"] for r in reports}
    points = sorted((sweep_point(r) for r in reports), key=lambda p: -p["psi"])
    source = reports[0].get("source", {}).get("ckpt", "")
    png = plot_truncation(points, Path(out) / "truncation.png", title=f"truncation sweep {Path(source).name}")
    rows = ["| psi | FID | precision | recall |", "|---|---|---|---|"]
    rows += [f"| {p['psi']:g} | {p['fid']:.3f} | {p['precision']:.3f} | {p['recall']:.3f} |" for p in points]
    (Path(out) / "truncation.md").write_text(
        f"Truncation sweep of {source} ({len(ids)} protocol ids: one per psi)\n\n" + "\n".join(rows) + "\n"
    )
    return png, points


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    from ganforge.utils.cli import parse_key_values, print_error

    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_key_values(argv, DEFAULTS)
        if bool(args["ckpt"]) == bool(args["evals"]):
            raise ValueError("give either ckpt=<path> (evaluate, then plot) or evals=<json>,<json>,...")
        if args["ckpt"]:
            psis = [float(p) for p in str(args["psis"]).split(",")]
            extra = {k: args[k] for k in ("n_fake", "metrics", "split", "seed", "cache_dir")}
            evals = evaluate_sweep(args["ckpt"], psis, args["out"], **extra)
        else:
            evals = [e.strip() for e in str(args["evals"]).split(",") if e.strip()]
        png, points = report_sweep(evals, args["out"])
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print_error("ganforge.reporting.truncation", err, USAGE)
        return 2
    for p in points:
        print(
            f"psi {p['psi']:g}: FID {p['fid']:.3f}  precision {p['precision']:.3f}  recall {p['recall']:.3f}"
        )
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
