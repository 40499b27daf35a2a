"""Side-by-side final scatter plots of one seed per (data, pack), for the experiment README.

Usage:
    python experiments/mode_collapse_2d/figure.py OUT.png SEED outputs/mode_collapse_grid25/multirun_* ...

Each row is a dataset, each column a pack size; a panel is the run's last
``samples/scatter_epoch_XXXX.png`` (titled with its modes and high-quality share).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from PIL import Image


def main(out: str, seed: int, folders: list[str]) -> None:
    panels: dict[tuple[str, int], Path] = {}
    for folder in folders:
        for config in Path(folder).glob("*/config.yaml"):
            cfg = yaml.safe_load(config.read_text())
            scatters = sorted((config.parent / "samples").glob("scatter_epoch_*.png"))
            if cfg["seed"] == seed and scatters:
                panels[(cfg["data"]["mixture"], cfg["model"]["discriminator"]["pack"])] = scatters[-1]
    rows = sorted({d for d, _ in panels}, reverse=True)
    cols = sorted({p for _, p in panels})
    w, h = Image.open(next(iter(panels.values()))).size
    sheet = Image.new("RGB", (w * len(cols), h * len(rows)), "white")
    for (data, pack), path in panels.items():
        sheet.paste(Image.open(path).convert("RGB"), (cols.index(pack) * w, rows.index(data) * h))
    sheet = sheet.quantize(colors=64)  # scatter plots need few colours: keeps the PNG small
    sheet.save(out, optimize=True)
    print(f"wrote {out}: rows {rows}, columns pack = {cols}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
