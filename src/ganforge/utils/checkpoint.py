"""Loading ganforge checkpoints safely and rebuilding networks from them alone.

Checkpoints are read with ``torch.load(weights_only=True)``: only tensors and plain
containers are unpickled, so a checkpoint cannot run code. Every checkpoint carries the
resolved run config under ``"ganforge"``, enough to rebuild its networks without ``conf/``.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, foreign or lacks what is asked of it; names the file."""


# What to do about any unusable checkpoint: the last words of every message below.
WANTED = "give a checkpoint written by ganforge-train, e.g. <run folder>/checkpoints/last.ckpt"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a ganforge checkpoint onto the CPU.

    Raises:
        CheckpointError: the file is missing, unreadable, or not a ganforge checkpoint; one line
            naming the file and ending with what to give instead (torch's own text is left out).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; {WANTED}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to read is the file's fault, named below
        raise CheckpointError(_unreadable(path, err)) from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "ganforge" not in ckpt:
        raise CheckpointError(
            f"{path} is not a ganforge checkpoint (no 'state_dict' and 'ganforge' entries); {WANTED}"
        )
    return ckpt


def _unreadable(path: Path, err: Exception) -> str:
    """Why torch could not read ``path``, in one line without torch's advice about ``weights_only``."""
    with open(path, "rb") as f:
        zip_start = f.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
    if zipfile.is_zipfile(path):
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(err))
        if unsafe:
            return (
                f"checkpoint {path} cannot be loaded safely: it holds a pickled Python object "
                f"({unsafe.group(1)}), which could run code when loaded; {WANTED}"
            )
    elif not zip_start:
        return f"{path} is not a ganforge checkpoint (not a torch file, or truncated); {WANTED}"
    return f"checkpoint {path} is truncated or corrupt (cut short by a copy or a save that did not finish); {WANTED}"


def checkpoint_config(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The resolved run config stored in a checkpoint."""
    config = ckpt["ganforge"].get("config")
    if not config:
        raise CheckpointError("checkpoint has no stored run config")
    return config


def load_submodule(ckpt: dict[str, Any], config_node: dict[str, Any], prefix: str) -> nn.Module:
    """Instantiate a network from its config node and load the weights stored under ``prefix.``."""
    net = instantiate(config_node)
    state = {k[len(prefix) + 1 :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix + ".")}
    if not state:
        raise CheckpointError(f"checkpoint holds no weights for '{prefix}'")
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)


def load_generator(path: str | Path, ema: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """The generator of a checkpoint (its EMA copy by default) and the run config."""
    ckpt = load_checkpoint(path)
    config = checkpoint_config(ckpt)
    prefix = "generator_ema" if ema else "generator"
    return load_submodule(ckpt, config["model"]["generator"], prefix), config


def resolve_ckpt_path(ckpt_path: str | None, outputs_root: str | Path) -> str | None:
    """Turn the ``ckpt_path`` setting into a checkpoint file.

    Accepts a ``.ckpt`` file, a run folder (its ``checkpoints/last.ckpt``), or ``last``: the
    newest ``checkpoints/last.ckpt`` below ``outputs_root`` (this experiment's outputs).

    Raises:
        CheckpointError: nothing to resume from is found; the message names where it looked.
    """
    if not ckpt_path:
        return None
    if str(ckpt_path) == "last":
        candidates = sorted(
            Path(outputs_root).glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
        )
        if not candidates:
            raise CheckpointError(
                f"ckpt_path=last but no checkpoints/last.ckpt exists below {outputs_root}; "
                "check name= (each experiment name has its own outputs) or give ckpt_path=<file or run folder>"
            )
        return str(candidates[-1])
    path = Path(ckpt_path).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    load_checkpoint(path)  # fail early, naming the file, if it is missing or corrupt
    return str(path)
