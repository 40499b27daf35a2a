"""What the machine can do, for putting benchmark numbers in proportion.

* :func:`theoretical_fp32_peak`: cores x FMA units x fp32 lanes x 2 flops x clock, from
  ``os.sched_getaffinity`` and ``/proc/cpuinfo`` (the clock is the one the kernel reports now,
  not a boost clock);
* :func:`measured_matmul_peak`: the best rate of a large fp32 matmul, the most a dense kernel
  reaches here;
* :class:`PeakMemory`: peak resident memory of this process over a block (Linux ``VmHWM``,
  reset through ``/proc/self/clear_refs``) or peak CUDA memory.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import torch


def cpu_info() -> dict[str, str | float | int]:
    """Model name, usable cores, clock (GHz) and vector flags from ``/proc/cpuinfo``."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""

    def first(key: str) -> str:
        match = re.search(rf"^{key}\s*:\s*(.*)$", text, flags=re.MULTILINE)
        return match.group(1).strip() if match else ""

    flags = set(first("flags").split())
    mhz = first("cpu MHz")
    return {
        "model": first("model name") or "unknown",
        "vendor": first("vendor_id") or "unknown",
        "cores": len(os.sched_getaffinity(0)),
        "ghz": float(mhz) / 1000 if mhz else float("nan"),
        "avx2_fma": int({"avx2", "fma"} <= flags),
        "avx512": int("avx512f" in flags),
    }


def theoretical_fp32_peak(info: dict | None = None) -> tuple[float, str]:
    """Theoretical fp32 FLOP/s and the formula behind it.

    Two FMA units per core with 8 fp32 lanes each (AVX2) and 2 flops per FMA: 32 flops per cycle.
    AMD's AVX-512 (Zen 4) runs on the same two 256-bit units, so it does not double this; Intel
    server cores with two 512-bit FMA units do (64 flops per cycle).
    """
    info = info or cpu_info()
    lanes = 16 if info["avx512"] and info["vendor"] == "GenuineIntel" else 8
    flops_per_cycle = 2 * lanes * 2
    peak = info["cores"] * flops_per_cycle * info["ghz"] * 1e9
    formula = f"{info['cores']} cores x 2 FMA x {lanes} fp32 lanes x 2 flop x {info['ghz']:.2f} GHz"
    return peak, formula


def measured_matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 FLOP/s of an ``n x n`` matmul over ``repeats`` runs (after one warm-up)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


class PeakMemory:
    """Peak memory over a ``with`` block: resident set size on CPU, allocated memory on CUDA.

    ``peak_mb`` after the block; on CPU it is the process's high-water mark, reset on entry
    where Linux allows it (otherwise it is the peak since the process started). ``added_mb``
    is the peak minus the memory in use on entry: what the block itself needed.
    """

    def __init__(self, device: str = "cpu"):
        self.device, self.peak_mb, self.start_mb = device, float("nan"), float("nan")

    @property
    def added_mb(self) -> float:
        return self.peak_mb - self.start_mb

    def _status_mb(self, field: str) -> float:
        status = Path("/proc/self/status")
        match = re.search(rf"{field}:\s*(\d+) kB", status.read_text()) if status.is_file() else None
        return int(match.group(1)) / 1024 if match else float("nan")

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            self.start_mb = torch.cuda.memory_allocated() / 2**20
        else:
            self.start_mb = self._status_mb("VmRSS")
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
            return
        self.peak_mb = self._status_mb("VmHWM")
        if self.peak_mb == self.peak_mb:  # not NaN: Linux reported it
            return
        import resource

        self.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
