"""What a run cost: seconds per training iteration, peak memory and parameter counts.

The numbers a method comparison reports beside its scores (CUT, Park et al. 2020, Table 1:
sec/iter, memory, parameters). Every epoch logs

* ``perf/sec_per_iter``: wall-clock seconds per training iteration since the fit started,
  over training batches only. The clock runs from the start of a batch to the end of the last
  batch before an interruption (validation, the end of the epoch, where the quality metrics,
  grids and checkpoints run) and starts again at the next batch: it covers the step, the
  loading of every batch but the first after an interruption, and the per-batch callbacks.
  The first ``warmup_iters`` iterations (allocator growth, cuDNN autotuning, compilation) are
  left out. On a GPU the device is synchronised once at each interruption, so queued work is
  counted with the training that issued it, never on every batch;
* ``perf/peak_mem_mb``: ``torch.cuda.max_memory_allocated`` on a GPU, the process's peak
  resident set (Linux ``VmHWM``) elsewhere; both restart from the memory in use when the fit
  starts (the resident peak where Linux allows the reset), so jobs of one multirun process
  do not inherit each other's peak. Data-loader worker processes are not included.

``run_stats.json`` in the run folder holds the parameter counts (written when the fit starts)
and the final values (rewritten when training ends or stops on an error). Parameters are
counted per top-level submodule of the training scheme, and by role: ``generator`` and
``discriminator`` (submodules named ``generator*`` / ``discriminator*``), ``other`` (any other
trained network, e.g. CUT's MLP heads) and ``total``; a role counts only parameters an
optimizer updates, so an EMA copy or a frozen feature network is listed but not counted.
Under DDP every process measures itself; what is logged and written is the mean time and the
largest peak over the processes (one all-gather per epoch), and rank 0 writes the file. Nothing
here draws random numbers or touches the model: training is unchanged.
"""

from __future__ import annotations

import logging
import math
import re
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from torch import nn

from ganforge.metrics.protocol import write_json_atomic

log = logging.getLogger("ganforge")
# The perf/ values are gathered over the processes before they are logged (RunStats.measured).
warnings.filterwarnings("ignore", message=r"It is recommended to use `self.log\('perf/")

STATS_FILE = "run_stats.json"
ROLES = ("generator", "discriminator")  # submodule name prefixes with a role of their own


def reset_peak_memory(device: torch.device) -> None:
    """Restart the peak-memory count of :func:`peak_memory_mb` from the memory in use now."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: "5" restarts VmHWM from the current resident set
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # elsewhere the peak counts from the process's start


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """The peak memory in MiB and what was measured (``"cuda_max_allocated"`` or ``"rss"``)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    status = Path("/proc/self/status")
    found = re.search(r"VmHWM:\s*(\d+) kB", status.read_text()) if status.is_file() else None
    if found:
        return int(found.group(1)) / 1024, "rss"
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return peak / (2**20 if sys.platform == "darwin" else 1024), "rss"


def parameter_counts(module: nn.Module, trained: set[int] | None = None) -> dict[str, dict[str, int]]:
    """Per top-level submodule: ``{"params": all, "trained": those in ``trained``}``.

    Args:
        module: the training scheme.
        trained: ``id``s of the parameters the optimizers update; ``None`` counts those with
            ``requires_grad``. A parameter shared by two submodules counts in the first.
    """
    seen: set[int] = set()
    counts: dict[str, dict[str, int]] = {}
    parts = [(name, child.parameters()) for name, child in module.named_children()]
    parts.append(("(own)", module.parameters(recurse=False)))  # registered on the scheme itself
    for name, params in parts:
        total = n_trained = 0
        for p in params:
            if id(p) in seen or isinstance(p, nn.parameter.UninitializedParameter):
                continue
            seen.add(id(p))
            is_trained = p.requires_grad if trained is None else id(p) in trained
            total += p.numel()
            n_trained += p.numel() if is_trained else 0
        if total:
            counts[name] = {"params": total, "trained": n_trained}
    return counts


def role_counts(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """Trained parameters of the generator(s), discriminator(s), other networks, and their total."""
    roles = dict.fromkeys((*ROLES, "other", "total"), 0)
    for name, count in counts.items():
        role = next((r for r in ROLES if name.startswith(r)), "other")
        roles[role] += count["trained"]
        roles["total"] += count["trained"]
    return roles


class RunStats(Callback):
    """Logs ``perf/sec_per_iter`` and ``perf/peak_mem_mb``; writes ``run_stats.json``.

    Args:
        dirpath: the run folder.
        warmup_iters: first iterations of a fit left out of the timing.
    """

    def __init__(self, dirpath: str, warmup_iters: int = 10):
        if warmup_iters < 0:
            raise ValueError(f"run_stats.warmup_iters must be >= 0; got {warmup_iters}")
        self.dirpath, self.warmup_iters = Path(dirpath), int(warmup_iters)
        self.params: dict[str, Any] = {}
        self._reset()

    def _reset(self) -> None:
        self.seconds, self.timed_iters, self.iters = 0.0, 0, 0
        self._mark: float | None = None  # clock at the start of the current stretch of training

    # ----------------------------------------------------------------- the clock
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset()
        reset_peak_memory(pl_module.device)
        self._count_parameters(trainer, pl_module)
        self._write(trainer, pl_module, gather=False)  # nothing measured yet

    def _count_parameters(self, trainer: Trainer, pl_module: LightningModule) -> None:
        trained = {id(p) for opt in trainer.optimizers for g in opt.param_groups for p in g["params"]}
        counts = parameter_counts(pl_module, trained or None)
        self.params = {"by_role": role_counts(counts), "by_module": counts}

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx) -> None:
        if self._mark is None:
            self._mark = time.perf_counter()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx
    ) -> None:
        self.iters += 1
        if self.iters == self.warmup_iters:
            self._sync(pl_module)  # the warm-up's queued work is not timed
        now = time.perf_counter()
        if self.iters > self.warmup_iters:
            self.seconds += now - self._mark
            self.timed_iters += 1
        self._mark = now

    def _pause(self, pl_module: LightningModule) -> None:
        """Stop the clock at an interruption, after the device has finished the training queued so far."""
        if self._mark is None:
            return
        self._sync(pl_module)
        if self.iters > self.warmup_iters:
            self.seconds += time.perf_counter() - self._mark
        self._mark = None

    @staticmethod
    def _sync(pl_module: LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._pause(pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._pause(pl_module)
        sec_per_iter, peak, _ = self.measured(trainer, pl_module)
        values = {"perf/peak_mem_mb": peak}
        if math.isfinite(sec_per_iter):
            values["perf/sec_per_iter"] = sec_per_iter
        # float64: the CSV holds the value the JSON file holds, not a float32 rounding of it. The
        # values are already the same on every process (measured() gathers them): no sync_dist.
        logged = {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}
        pl_module.log_dict(logged, on_step=False, on_epoch=True, sync_dist=False)

    def measured(
        self, trainer: Trainer, pl_module: LightningModule, gather: bool = True
    ) -> tuple[float, float, str]:
        """Seconds per iteration (NaN before any is timed), peak memory in MiB and its kind.

        Under DDP (``gather``, a collective: every process calls it) the mean time and the
        largest peak over the processes.
        """
        sec_per_iter = self.seconds / self.timed_iters if self.timed_iters else math.nan
        peak, kind = peak_memory_mb(pl_module.device)
        if gather and trainer.world_size > 1:
            local = torch.tensor([sec_per_iter, peak], dtype=torch.float64, device=pl_module.device)
            every = trainer.strategy.all_gather(local).reshape(-1, 2)
            sec_per_iter, peak = float(every[:, 0].mean()), float(every[:, 1].max())
        return sec_per_iter, peak, kind

    # ----------------------------------------------------------------- the file
    def _write(self, trainer: Trainer, pl_module: LightningModule, gather: bool = True) -> None:
        """``run_stats.json`` from rank 0: parameter counts, timing and peak memory so far."""
        sec_per_iter, peak, kind = self.measured(trainer, pl_module, gather)
        if not trainer.is_global_zero:
            return
        device = pl_module.device
        stats = {
            "params": self.params,
            "sec_per_iter": sec_per_iter if math.isfinite(sec_per_iter) else None,
            "timed_iters": self.timed_iters,
            "warmup_iters": self.warmup_iters,
            "peak_mem_mb": peak,
            "memory": kind,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
            "processes": trainer.world_size if gather else 1,  # how many the figures are over
        }
        write_json_atomic(stats, self.dirpath / STATS_FILE)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._pause(pl_module)
        self._count_parameters(trainer, pl_module)  # lazy layers have their shapes by now
        self._write(trainer, pl_module)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # No device synchronisation or collective after an error (other processes may be gone),
        # and a failure here must not hide the error itself.
        self._mark = None
        try:
            self._write(trainer, pl_module, gather=False)
        except Exception as err:  # noqa: BLE001
            log.warning("could not write %s: %s", STATS_FILE, err)
