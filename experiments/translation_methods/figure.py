"""One picture per benchmark: held-out inputs translated by each method's checkpoint, side by side.

Usage (from the repository root, after run.sh):
    .venv/bin/python experiments/translation_methods/figure.py [outputs/translation_methods] [seed]

For each benchmark, the first ``ROWS`` held-out images of its data (as the experiment composes it)
are translated by the ``last.ckpt`` of every method's run with ``seed`` (default 1; else its lowest
seed), through
:func:`ganforge.translate.load_translator` (the checkpoint alone, no config files); columns:
input | one column per method | the known target (digits2ink, photo2painting) or a real B image
(digits2mnist, for the look of the domain). Writes ``<benchmark>.png`` next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch.utils.data import default_collate

from ganforge.config import compose_config
from ganforge.reporting.runs import find_runs
from ganforge.translate import load_translator
from ganforge.utils.images import image_grid, save_png

HERE = Path(__file__).resolve().parent
ROWS = 8
BENCHMARKS = {  # benchmark -> its methods, in the table's order
    "digits2ink": ["cyclegan", "cut", "fastcut", "pix2pix"],
    "digits2mnist": ["cyclegan", "cut", "fastcut"],
    "photo2painting": ["cyclegan", "cut", "fastcut"],
    "photo2painting_tv": ["cyclegan", "cut", "fastcut"],  # the *_photo2painting_tv experiments
}


def run_of(root: Path, experiment: str, seed: int) -> tuple[Path, int] | None:
    """The run folder of ``experiment`` with ``seed`` below ``root`` (the newest if several), or,
    without one, the run with the lowest seed; and that run's seed."""
    if not (root / experiment).is_dir():
        return None
    runs = sorted(find_runs(root / experiment), key=lambda run: (run.seed != seed, run.seed, str(run.path)))
    return (runs[0].path, runs[0].seed) if runs else None


def held_out(benchmark: str, n: int) -> dict:
    """The first ``n`` held-out items of the benchmark's data, with B spread over the domain."""
    cfg = compose_config([f"experiment=cyclegan_{benchmark}"])
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    items = [datamodule.val_set[i] for i in range(n)]
    return default_collate(items)


@torch.no_grad()
def figure(root: Path, benchmark: str, seed: int) -> Path | None:
    batch = held_out(benchmark, ROWS)
    inputs = batch["A"]
    columns, names = [inputs], ["input"]
    for method in BENCHMARKS[benchmark]:
        found = run_of(root, f"{method}_{benchmark}", seed)
        if found is None:
            print(f"{benchmark}: no {method} run below {root}; column left out")
            continue
        run, run_seed = found
        net, _ = load_translator(run / "checkpoints" / "last.ckpt")
        torch.manual_seed(seed)  # pix2pix's test-time dropout: a fixed draw
        columns.append(net.eval()(inputs).clamp(-1, 1))
        names.append(method if run_seed == seed else f"{method} (seed {run_seed})")
    if len(columns) == 1:
        return None
    columns.append(batch.get("target", batch["B"]))
    names.append("target" if "target" in batch else "a real B")
    grid = image_grid(torch.stack(columns, 1).flatten(0, 1), nrow=len(columns))
    scale = max(1, 96 // inputs.shape[-1])  # small images drawn 2-3x, nearest neighbour: pixels stay visible
    grid = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    out = HERE / f"{benchmark}.png"
    save_png(grid, out)
    print(f"{out}: columns {' | '.join(names)}")
    return out


def main(argv: list[str]) -> None:
    root = Path(argv[0]) if argv else Path("outputs/translation_methods")
    seed = int(argv[1]) if len(argv) > 1 else 1
    for benchmark in BENCHMARKS:
        figure(root, benchmark, seed)


if __name__ == "__main__":
    main(sys.argv[1:])
