"""Dashboards: W&B offline without network, TensorBoard's HTTP API serving two runs with their hparams."""

from __future__ import annotations

import csv
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ganforge.callbacks.hparams import flatten, write_tensorboard_hparams
from ganforge.loggers.wandb import resolve_mode, sweep_names
from ganforge.train import train

BIN = Path(sys.executable).parent


def read_wandb_records(path: Path) -> list:
    """Records of an offline ``run-*.wandb`` file (LevelDB log format: 7-byte file header, 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data, records, chunks = path.read_bytes(), [], b""
    assert data[:4] == b":W&B"
    offset, block = 7, 32768
    while offset + 7 <= len(data):
        if block - offset % block < 7:  # a block tail too short for a header is padding
            offset += block - offset % block
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        chunks += data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # FULL or LAST piece of a record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            records.append(record)
            chunks = b""
    return records


class CountingHandler(BaseHTTPRequestHandler):
    requests: list[str] = []

    def _count(self):
        CountingHandler.requests.append(f"{self.command} {self.path}")
        self.send_response(503)
        self.end_headers()

    do_GET = do_POST = do_PUT = _count

    def log_message(self, *args):
        pass


def test_wandb_mode_is_decided_before_init(monkeypatch, tmp_path):
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert resolve_mode() == "offline"  # no key anywhere
    (tmp_path / "netrc").write_text("machine api.wandb.ai login user password abc123\n")
    assert resolve_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode(offline=False) == "disabled"


def test_wandb_group_is_the_sweep(tiny_cfg):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    cfg = tiny_cfg(["name=exp"])
    assert sweep_names("exp")[0] == "exp"  # a single run: the experiment name
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweep.dir = "outputs/exp/multirun_2026-01-01_00-00-00"
        cfg.hydra.job.num = 3
        cfg.hydra.job.override_dirname = "loss=hinge"
    HydraConfig.instance().set_config(cfg)
    assert sweep_names("exp") == ("exp/multirun_2026-01-01_00-00-00", "3:loss=hinge")


def test_wandb_offline_run_holds_config_metrics_and_samples_without_network(tiny_cfg, tmp_path, monkeypatch):
    """No API key and no WANDB_MODE: the run goes offline by itself and sends nothing anywhere.

    W&B is pointed at a local server that counts requests; it must see none.
    """
    CountingHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), CountingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_cfg(["data=digits", "logger=[csv,tensorboard,wandb]", "tags=[smoke]", "name=wb"])
    start = time.monotonic()
    try:
        train(cfg)
    finally:
        server.shutdown()
    assert time.monotonic() - start < 60
    assert CountingHandler.requests == []

    run_dir = Path(cfg.paths.output_dir)
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    (log_file,) = offline.glob("run-*.wandb")
    records = read_wandb_records(log_file)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.run_group == "wb" and list(run.tags) == ["smoke"]
    config = {
        item.key: json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "config"
        for item in r.config.update
    }
    assert config["data"]["img_size"] == cfg.data.img_size and config["loss"]["n_critic"] == 1
    history = [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    logged = [h["train/d_loss"] for h in history if "train/d_loss" in h]
    from_csv = [
        float(r["train/d_loss"]) for r in csv.DictReader(open(run_dir / "metrics.csv")) if r["train/d_loss"]
    ]
    assert logged == pytest.approx(from_csv)
    (image,) = [h for h in history if h.get("samples/fixed_noise/_type") == "images/separated"]
    (filename,) = image["samples/fixed_noise/filenames"]
    assert (offline / "files" / filename).is_file()  # the sample grid itself, as a PNG

    # The same run's TensorBoard log: sample grid, and hyperparameters with metrics for the HPARAMS tab.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert events.Tags()["images"] == ["samples/fixed_noise"]
    hparams = {
        tag: HParamsPluginData.FromString(content)
        for tag, content in events.PluginTagToContent("hparams").items()
    }
    metric_tags = {m.name.tag for m in hparams["_hparams_/experiment"].experiment.metric_infos}
    assert {"train/d_loss", "train/g_loss", "val/d_acc_real"} <= metric_tags <= set(events.Tags()["scalars"])
    session = hparams["_hparams_/session_start_info"].session_start_info.hparams
    assert (
        session["data/img_size"].number_value == cfg.data.img_size
        and session["loss/n_critic"].number_value == 1
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_serves_fid_of_two_runs_and_their_hparams(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    fids = {"loss=ns": [60.0, 41.5, 33.25], "loss=hinge": [55.0, 38.0]}
    for name, values in fids.items():
        writer = SummaryWriter(str(tmp_path / name / "tensorboard"))
        for i, value in enumerate(values):
            writer.add_scalar("val/fid", value, global_step=100 * (i + 1))
        write_tensorboard_hparams(
            writer, flatten({"loss": {"name": name[5:]}, "seed": 0}), {"val/fid": values[-1]}
        )
        writer.close()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(BIN / "tensorboard"),
            "--logdir",
            str(tmp_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast",
            "false",
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        tags, deadline = {}, time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                tags = get_json(f"{base}/data/plugin/scalars/tags")
                if sum("val/fid" in t for t in tags.values()) == 2:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert set(tags) == {"loss=ns/tensorboard", "loss=hinge/tensorboard"}, tags
        for name, values in fids.items():
            query = urllib.parse.urlencode({"run": f"{name}/tensorboard", "tag": "val/fid"})
            series = get_json(f"{base}/data/plugin/scalars/scalars?{query}")
            assert [(step, value) for _, step, value in series] == [
                (100 * (i + 1), v) for i, v in enumerate(values)
            ]
        experiment = get_json(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
        assert {h["name"] for h in experiment["hparamInfos"]} == {"loss/name", "seed"}
        assert [m["name"]["tag"] for m in experiment["metricInfos"]] == ["val/fid"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
