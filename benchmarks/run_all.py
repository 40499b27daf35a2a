"""``make bench``: run every ``benchmarks/bench_*.py`` in turn and print one table per benchmark.

A benchmark file plugs in by existing: it defines ``main(argv=None)`` that runs the benchmark
and either returns its table (a list of dicts, one per row, or one dict) or prints it itself
and returns ``None``. Options given here (``--quick``...) are passed on to every ``main``.

Usage:
    python benchmarks/run_all.py            # full runs (minutes)
    python benchmarks/run_all.py --quick    # short runs of each benchmark
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_train import print_table  # noqa: E402


def discover(folder: Path = HERE) -> list[Path]:
    """Every ``bench_*.py`` file in ``folder``, in name order."""
    return sorted(folder.glob("bench_*.py"))


def run_one(path: Path, argv: list[str]):
    """Import a benchmark file and call its ``main``; returns what ``main`` returns."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    main = module.main
    if inspect.signature(main).parameters:
        return main(argv)
    saved, sys.argv = sys.argv, [str(path), *argv]  # a main() that reads sys.argv itself
    try:
        return main()
    finally:
        sys.argv = saved


def main(argv: list[str] | None = None) -> int:
    """Run all benchmarks; returns the number that failed (the exit status)."""
    argv = sys.argv[1:] if argv is None else argv
    failed = 0
    for path in discover():
        print(f"\n=== {path.name} {' '.join(argv)}", flush=True)
        start = time.perf_counter()
        try:
            rows = run_one(path, argv)
        except Exception:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            failed += 1
            continue
        if isinstance(rows, dict):
            rows = [{"measure": str(k), "value": str(v)} for k, v in rows.items()]
        if rows:
            print_table(path.stem, rows)
        print(f"({path.name}: {time.perf_counter() - start:.0f} s)", flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
