"""The protocol of a metric result: everything that changes its value besides the generator.

FID moves by points with the feature network, the sample counts, the resize and the real split
(Kynkäänniemi et al. 2023; Parmar et al. 2022, "On Aliased Resizing and Surprising Subtleties in
GAN Evaluation"), so each result carries its protocol and a short id of it. Runs are compared
only when their ids agree; the report groups by id.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

PROTOCOL_FILE = "metrics_protocol.json"
QUANTIZATION = "uint8-round"  # [-1, 1] -> round((x + 1) * 127.5), as the reference pipelines feed images


def protocol_id(protocol: dict[str, Any]) -> str:
    """Eight hex digits of the SHA-256 of the protocol's canonical JSON."""
    canonical = json.dumps(protocol, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def protocol_record(protocol: dict[str, Any]) -> dict[str, Any]:
    """``{"protocol_id": ..., "protocol": ...}``: what files, dashboards and checkpoints store."""
    return {"protocol_id": protocol_id(protocol), "protocol": dict(protocol)}


def with_truncation(protocol: dict[str, Any], truncation_psi: float) -> dict[str, Any]:
    """The protocol of samples drawn with truncation ``psi`` (``metrics.truncation_psi``): psi = 1
    (no truncation) adds nothing, so the ids of untruncated results stay as they were."""
    return protocol if truncation_psi == 1 else {**protocol, "truncation_psi": float(truncation_psi)}


def write_json_atomic(data: dict[str, Any], path: str | Path) -> Path:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path


def flat_protocol(record: dict[str, Any], prefix: str = "metrics_protocol") -> dict[str, Any]:
    """The record as flat ``prefix/key`` scalars for hyper-parameter panels (TensorBoard, wandb)."""
    flat: dict[str, Any] = {f"{prefix}/id": record["protocol_id"]}
    for key, value in record["protocol"].items():
        flat[f"{prefix}/{key}"] = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
    return flat
