"""Dashboards: W&B offline without network, TensorBoard's HTTP API serving two runs with their hparams."""

from __future__ import annotations

import contextlib
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

import numpy as np
import pytest
import yaml

from ganforge.callbacks.hparams import flatten, write_tensorboard_hparams
from ganforge.loggers.wandb import resolve_mode, sweep_names
from ganforge.report import main as report_main
from ganforge.train import train
from tests.test_sweeps import TINY_CLI, last_and_best, run_cli, sweep_folder

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


def as_sweep_job(cfg, sweep: Path, arguments: list[str], job: list[str], num: int, params=None) -> None:
    """Make ``cfg``'s Hydra config that of job ``num`` of a sweep launched with ``arguments``."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf, open_dict, read_write

    sweep.mkdir(parents=True, exist_ok=True)
    OmegaConf.save({"hydra": {"overrides": {"task": arguments}}}, sweep / "multirun.yaml")
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweep.dir = str(sweep)
        cfg.hydra.job.num = num
        cfg.hydra.overrides.task = job
        if params:
            cfg.hydra.sweeper.params = params
    HydraConfig.instance().set_config(cfg)


def test_comparison_hparams_outside_a_hydra_job(monkeypatch):
    """A config composed in code (the benchmarks, a notebook) has no group choices: the curated keys alone."""
    from hydra.core.hydra_config import HydraConfig

    from ganforge.loggers.naming import comparison_hparams, hydra_config

    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)
    assert hydra_config() is None
    hparams = comparison_hparams({"seed": 1, "name": "exp", "data": {"batch_size": 8, "img_size": 32}})
    assert hparams == {"data.batch_size": 8, "data.img_size": 32, "seed": 1, "experiment": "exp"}


def test_runs_are_named_by_their_swept_overrides(tiny_cfg, tmp_path):
    """W&B and TensorBoard name a sweep's job by what was swept; a single run by its experiment."""
    from ganforge.loggers.naming import comparison_hparams, run_name

    cfg = tiny_cfg(["name=exp"])
    assert sweep_names("exp") == ("exp", "exp")  # a single run: the experiment name
    sweep = tmp_path / "exp" / "multirun_2026-01-01_00-00-00"
    common = [
        "data=digits",
        "+trainer.limit_train_batches=2",
        "paths.outputs_root=/x",
        "~callbacks.progress_bar",
    ]
    as_sweep_job(cfg, sweep, ["loss=ns,hinge", "seed=0,1", *common], ["loss=hinge", "seed=1", *common], 3)
    assert sweep_names("exp") == ("exp/multirun_2026-01-01_00-00-00", "loss=hinge seed=1")
    hparams = comparison_hparams({"seed": 1, "name": "exp", "data": {"batch_size": 8, "img_size": 32}})
    assert list(hparams)[:2] == ["loss", "seed"] and hparams["loss"] == "ns"  # the composed choice
    assert {"model", "data.batch_size", "data.img_size", "experiment"} <= set(hparams)
    # A value listed twice: the grid has two equal names, so the job number tells them apart.
    as_sweep_job(cfg, sweep, ["seed=0,0"], ["seed=0"], 1)
    assert run_name("exp") == "seed=0 #1"
    # A search: sampled values may repeat, keys are shortened, floats rounded.
    params = {"optimizer.generator.lr": "tag(log, interval(1e-5, 1e-3))", "loss": "choice(ns, hinge)"}
    job = ["optimizer.generator.lr=0.00012345678", "loss=hinge", *common]
    as_sweep_job(cfg, sweep, [], job, 4, params)
    assert run_name("exp") == "lr=0.000123 loss=hinge #4"


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
    assert run.display_name == "wb" and run.job_type == "gan"  # a single run: its experiment; the scheme
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
    summary = {
        item.key or "/".join(item.nested_key): json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "summary"
        for item in r.summary.update
    }
    _, best_acc = last_and_best(run_dir / "metrics.csv", "val/d_acc_real", max)
    assert summary["best/val/d_acc_real"] == pytest.approx(best_acc)  # the run summary: final and best
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
    metric_tags = [m.name.tag for m in hparams["_hparams_/experiment"].experiment.metric_infos]
    assert metric_tags == ["val/d_acc_real", "best/val/d_acc_real"]  # no FID here: the metrics it has
    assert set(metric_tags) <= set(events.Tags()["scalars"])
    session = hparams["_hparams_/session_start_info"].session_start_info.hparams
    assert (
        session["data.img_size"].number_value == cfg.data.img_size
        and session["model"].string_value == "dcgan"
    )
    assert "loss.n_critic" not in session  # the whole config is in the TEXT tab, not the table
    assert "n_critic: 1" in events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()


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

    with tensorboard_server(tmp_path) as base:
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


@contextlib.contextmanager
def tensorboard_server(logdir: Path):
    """``tensorboard --logdir logdir`` on a free local port; yields its base URL."""
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "tensorboard"), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)]
        + ["--load_fast", "false", "--reload_interval", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def wait_for_json(url: str, body: dict | None, ready, timeout: float = 30.0):
    """``get_json`` until ``ready(answer)`` holds (the server is starting, or still reading the logs)."""
    answer, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = get_json(url, body)
            if ready(answer):
                return answer
        except OSError:
            pass
        time.sleep(0.5)
    return answer


@pytest.mark.slow
def test_multirun_two_by_two_in_tensorboard_then_report(tmp_path):
    """`ganforge-train -m loss=ns,hinge seed=0,1`: 4 job folders in one sweep folder, which TensorBoard
    lists by their overrides, its hparams plugin serving the swept keys first, the curated set, then
    FID and KID final and best; then the report, which names the runs alike and reads the same
    finals and bests from each job's metrics.csv."""
    run_cli(
        "ganforge-train",
        ["-m", "loss=ns,hinge", "seed=0,1", *TINY_CLI, "logger=[csv,tensorboard]", "metrics=domain"]
        + ["metrics.names=[fid,kid]", "metrics.n_fake=64", f"paths.outputs_root={tmp_path}", "name=cmp"],
    )
    sweep = sweep_folder(tmp_path, "cmp")
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    recorded = [yaml.safe_load((p / ".hydra" / "overrides.yaml").read_text()) for p in jobs]
    assert [[o for o in r if o.startswith(("loss=", "seed="))] for r in recorded] == [
        ["loss=ns", "seed=0"],
        ["loss=ns", "seed=1"],
        ["loss=hinge", "seed=0"],
        ["loss=hinge", "seed=1"],
    ]
    assert [yaml.safe_load((p / "config.yaml").read_text())["seed"] for p in jobs] == [0, 1, 0, 1]

    names = ["loss=ns seed=0", "loss=ns seed=1", "loss=hinge seed=0", "loss=hinge seed=1"]
    for num, name in enumerate(names):  # the job folder is found from the name
        assert (sweep / "tensorboard" / name / "run_folder.txt").read_text().strip() == str(sweep / str(num))
    sessions_query = {"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS"], "colParams": []}
    sessions_query.update({"startIndex": 0, "sliceSize": 100})
    with tensorboard_server(sweep / "tensorboard") as base:
        groups = wait_for_json(
            f"{base}/data/plugin/hparams/session_groups",
            sessions_query,
            lambda a: len(a.get("sessionGroups", [])) == 4,
        )
        experiment = get_json(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
    assert sorted(g["name"] for g in groups["sessionGroups"]) == sorted(names)
    curated = ["data.batch_size", "data.img_size", "experiment", "model"]
    curated += ["optimizer.discriminator.lr", "optimizer.generator.lr"]
    assert [h["name"] for h in experiment["hparamInfos"]] == ["loss", "seed", *curated]
    metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
    assert metrics == ["val/fid", "best/val/fid", "val/kid_mean", "best/val/kid_mean"]
    group = next(g for g in groups["sessionGroups"] if g["name"] == "loss=hinge seed=1")
    assert group["hparams"]["loss"] == "hinge" and group["hparams"]["model"] == "dcgan"
    values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
    final, best = last_and_best(sweep / "3" / "metrics.csv", "val/fid", min)
    assert values["val/fid"] == pytest.approx(final) and values["best/val/fid"] == pytest.approx(best)

    report_main([str(sweep)])  # in-process: the CLI's parsing is tested in test_report.py
    runs = {r["run"]: r for r in csv.DictReader(open(sweep / "runs.csv"))}
    assert [(r, runs[r]["name"]) for r in sorted(runs)] == [(str(i), n) for i, n in enumerate(names)]
    finals = {}
    for job in jobs:
        d_final, d_best = last_and_best(job / "metrics.csv", "train/d_loss", min)
        fid_final, fid_best = last_and_best(job / "metrics.csv", "val/fid", min)
        row = runs[job.name]
        assert float(row["train/d_loss:final"]) == pytest.approx(d_final, rel=1e-12)
        assert float(row["train/d_loss:best"]) == pytest.approx(d_best, rel=1e-12)
        assert float(row["val/fid:final"]) == pytest.approx(fid_final, rel=1e-12)
        assert float(row["val/fid:best"]) == pytest.approx(fid_best, rel=1e-12)
        finals[job.name] = d_final
    groups = {r["group"]: r for r in csv.DictReader(open(sweep / "report.csv"))}
    assert set(groups) == {"loss=ns", "loss=hinge"}
    for label, (a, b) in {"loss=ns": ("0", "1"), "loss=hinge": ("2", "3")}.items():
        pair = [finals[a], finals[b]]
        assert float(groups[label]["train/d_loss:final_mean"]) == pytest.approx(np.mean(pair))
        assert float(groups[label]["train/d_loss:final_std"]) == pytest.approx(np.std(pair, ddof=1))
    md = (sweep / "report.md").read_text()
    assert "Groups differ in: `loss`" in md and "| loss=hinge | 2 | 0,1 |" in md
    assert (sweep / "samples_mosaic.png").is_file() and (sweep / "plots" / "train_d_loss.png").is_file()
