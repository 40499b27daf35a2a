"""Lightning's checkpoint I/O for training runs, kept apart from :mod:`ganforge.utils.checkpoint`
so that the tools that only read checkpoints (``ganforge-generate``, ``-translate``, ``-export``)
start without importing Lightning."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins import TorchCheckpointIO

from ganforge.utils.checkpoint import CheckpointError, load_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that never leaves a half-written checkpoint behind.

    The checkpoint is serialized in memory, written to ``<name>.tmp-<pid>`` beside the target,
    flushed to disk and renamed over the target in one step. A kill or a full disk during the
    save leaves the previous checkpoint as it was; a failed save raises a message naming the
    file and the cause.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            with open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            kept = " (the previous checkpoint there is intact)" if path.exists() else ""
            raise CheckpointError(f"could not write checkpoint {path}: {err.strerror or err}{kept}") from err

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = True) -> dict[str, Any]:
        load_checkpoint(path)  # a clear error naming the file if it is truncated or foreign
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)
