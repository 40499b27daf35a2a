"""What the machine can do, for putting benchmark numbers in proportion.

* :func:`theoretical_fp32_peak`: cores x FMA units x fp32 lanes x 2 flops x clock, from
  ``os.sched_getaffinity`` and ``/proc/cpuinfo`` (the clock is the one the kernel reports now,
  not a boost clock);
* :func:`measured_matmul_peak`: the best rate of a large matmul (fp32 on the CPU; on CUDA in
  the math a run uses: fp32, TF32, bf16 or fp16), the most a dense kernel reaches here;
* :func:`gpu_info` and :func:`theoretical_gpu_peak`: the GPU's name and its datasheet peak for
  that math (dense, without 2:4 sparsity);
* :class:`PeakMemory`: peak resident memory of this process over a block (Linux ``VmHWM``,
  reset through ``/proc/self/clear_refs``) or peak CUDA memory.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import torch

from ganforge.callbacks.run_stats import peak_memory_mb, reset_peak_memory


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
        # bfloat16 matrix units: AMX tiles (Intel Sapphire Rapids on), else AVX-512 BF16 dot products
        "bf16_units": "amx_bf16"
        if "amx_bf16" in flags
        else "avx512_bf16"
        if "avx512_bf16" in flags
        else "none",
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


# Dense peak TFLOP/s (no 2:4 sparsity) of the GPUs this project may be lent, by a part of the name
# torch reports. Source: NVIDIA's H100 Tensor Core GPU Architecture whitepaper, H100 SXM5 column
# (TF32 494.7, BF16/FP16 989.4, FP32 66.9); the H200 SXM is the same GH100 chip at the same clocks,
# and its datasheet lists twice these as the "with sparsity" figures (TF32 989, BF16 1,979 TFLOP/s).
# The device notes of this workplace (H200.md) quote the same ~990 bf16 and ~67 fp32, and measured an
# 8192^3 bf16 matmul at 769-798 TFLOP/s on random data there (KINDS.md).
GPU_PEAK_TFLOPS = {
    "H200": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H100": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},  # SXM5; the PCIe card is lower
}
MATH_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def gpu_info() -> dict[str, str | float]:
    """Name, memory (GiB), compute capability and CUDA version of the current GPU."""
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {
        "name": props.name,
        "memory_gib": props.total_memory / 2**30,
        "capability": f"{props.major}.{props.minor}",
        "cuda": str(torch.version.cuda),
        "cudnn": str(torch.backends.cudnn.version()),
    }


def run_math(device: str, precision: str) -> str:
    """The math a training run's convolutions use: ``fp32`` on the CPU, else by ``trainer.precision``.

    On CUDA, ``32-true`` convolutions run in TF32 while ``torch.backends.cudnn.allow_tf32`` is on
    (PyTorch's default); ``bf16-mixed`` and ``16-mixed`` autocast them to bf16 and fp16.
    """
    if not device.startswith("cuda"):
        return "fp32"
    if precision.startswith("bf16"):
        return "bf16"
    if precision.startswith("16"):
        return "fp16"
    return "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"


def theoretical_gpu_peak(math: str, name: str | None = None) -> tuple[float, str]:
    """Datasheet FLOP/s of the GPU for ``math`` (``fp32``, ``tf32``, ``bf16``, ``fp16``) and its source.

    NaN with a note for a GPU missing from :data:`GPU_PEAK_TFLOPS`.
    """
    name = name or torch.cuda.get_device_name()
    for key, peaks in GPU_PEAK_TFLOPS.items():
        if key in name:
            others = ", ".join(f"{k} {v:g}" for k, v in peaks.items() if k != math)
            return peaks[math] * 1e12, f"{key} dense {math} {peaks[math]:g} TFLOP/s, datasheet ({others})"
    return float("nan"), f"no datasheet peak recorded for {name}"


def measured_matmul_peak(n: int = 2048, repeats: int = 5, device: str = "cpu", math: str = "fp32") -> float:
    """Best FLOP/s of an ``n x n`` matmul over ``repeats`` runs (after one warm-up).

    On CUDA the matmul runs in ``math`` (``tf32`` allows TF32 for that matmul only) and is timed
    with CUDA events; on the CPU it is fp32, timed by the wall clock.
    """
    if not device.startswith("cuda"):
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
        return 2 * n**3 / best
    a, b = (torch.randn(n, n, device=device, dtype=MATH_DTYPES[math]) for _ in range(2))
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = math == "tf32"
    try:
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.mm(a, b)
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
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
        device = torch.device(self.device)
        self.start_mb = (
            torch.cuda.memory_allocated() / 2**20 if device.type == "cuda" else self._status_mb("VmRSS")
        )
        reset_peak_memory(device)  # measured as the runs' perf/peak_mem_mb is
        return self

    def __exit__(self, *exc) -> None:
        self.peak_mb, _ = peak_memory_mb(torch.device(self.device))
