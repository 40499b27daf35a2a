"""Sweeps from the command line: Hydra multirun + report, Optuna search, submitit launcher."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hydra.utils import instantiate

from ganforge.callbacks.divergence import DivergenceError
from ganforge.config import ConfigError
from ganforge.report import main as report_main
from ganforge.train import objective_value
from tests.conftest import compose_tiny

BIN = Path(sys.executable).parent
# Command-line twins of conftest.TINY for the console scripts.
TINY_CLI = [
    "data=digits",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "data.batch_size=8",
    "model.generator.width=8",
    "model.discriminator.width=8",
    "logger=[csv]",
    "metrics=none",
    "~callbacks.progress_bar",
]


def run_cli(script: str, args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    result = subprocess.run(
        [str(BIN / script), *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def sweep_folder(root: Path, name: str) -> Path:
    (sweep,) = (root / name).glob("multirun_*")
    return sweep


def last_and_best(metrics_csv: Path, key: str, goal) -> tuple[float, float]:
    """Straight from the file: the last non-empty value of a column and its min or max."""
    values = [float(r[key]) for r in csv.DictReader(open(metrics_csv)) if r.get(key)]
    return values[-1], goal(values)


@pytest.mark.slow
def test_optuna_search_of_two_trials_through_submitit_local_then_two_more(tmp_path):
    """hparams_search=dcgan_optuna, its two trials launched by submitit's local launcher, then continued.

    One sweep tests both: the Optuna sweeper gets each trial's return value, and the submitit
    launcher that hydra/launcher=slurm uses runs each job in its own process. The search
    minimizes val/fid, as configured, measured on a few generated digits to stay fast. The study
    is in <sweep>/optuna.db; relaunched with that storage, the search adds two new trials to it.
    """
    import optuna

    search = ["hparams_search=dcgan_optuna", "hydra.sweeper.n_trials=2", *TINY_CLI, "metrics=domain"]
    search += ["metrics.names=[fid]", "metrics.n_fake=64", f"paths.outputs_root={tmp_path}", "name=opt"]
    run_cli("ganforge-train", [*search, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"])
    sweep = sweep_folder(tmp_path, "opt")
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = [sweep / "0", sweep / "1"]
    finals = [last_and_best(t / "metrics.csv", "val/fid", min)[0] for t in trials]
    assert results["best_value"] == pytest.approx(min(finals))  # Optuna got what train returned
    lrs = [yaml.safe_load((t / "config.yaml").read_text())["optimizer"]["generator"]["lr"] for t in trials]
    assert lrs[0] != lrs[1] and all(1e-5 <= lr <= 1e-3 for lr in lrs)
    assert results["best_params"]["loss"] in ("ns", "hinge", "lsgan")
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2  # one process per trial
    assert all((t / "checkpoints" / "last.ckpt").is_file() for t in trials)
    storage = f"sqlite:///{sweep / 'optuna.db'}"
    study = optuna.load_study(study_name="dcgan_optuna", storage=storage)  # written as trials finished
    assert [t.value for t in study.trials] == pytest.approx(finals)

    run_cli(
        "ganforge-train", [*search, f"hydra.sweeper.storage={storage}"]
    )  # the interrupted search, relaunched
    study = optuna.load_study(study_name="dcgan_optuna", storage=storage)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    params = [t.params["optimizer.generator.lr"] for t in study.trials]
    assert len(set(params)) == 4  # new trials, not the first two drawn again
    (later,) = [p for p in (tmp_path / "opt").glob("multirun_*") if p != sweep]
    later_lrs = [
        yaml.safe_load((later / j / "config.yaml").read_text())["optimizer"]["generator"]["lr"] for j in "01"
    ]
    assert later_lrs == pytest.approx(params[2:])


def test_sweep_configs_compose(tmp_path):
    cfg = compose_tiny(tmp_path, ["hparams_search=dcgan_optuna"])
    assert cfg.optimized_metric == "val/fid" and cfg.hydra.sweeper.direction == "minimize"
    assert set(cfg.hydra.sweeper.params) >= {"optimizer.generator.lr", "loss"}
    cfg = compose_tiny(tmp_path, ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = instantiate(cfg.hydra.launcher)  # builds the sbatch parameters; submits nothing
    assert type(launcher).__name__ == "SlurmLauncher" and launcher.params["partition"] == "gpu"
    assert launcher.params["gpus_per_node"] == 1 and launcher.params["timeout_min"] == 240
    assert launcher.params["submitit_folder"].endswith("/.submitit/%j")
    assert compose_tiny(tmp_path, ["experiment=loss_seeds_digits"]).data._target_.endswith("DigitsDataModule")


def test_objective_value_is_the_named_metric_or_a_clear_error():
    assert objective_value({"val/fid": 12.5}, "val/fid") == 12.5
    assert objective_value({"val/fid": 12.5}, None) is None
    with pytest.raises(DivergenceError, match="optimized_metric=val/fid is NaN"):
        objective_value({"val/fid": float("nan")}, "val/fid")  # a returned NaN would end an Optuna search
    with pytest.raises(ConfigError, match=r"optimized_metric=val/fid was not logged.*train/d_loss"):
        objective_value({"train/d_loss": 1.0}, "val/fid")


def test_failed_job_ends_a_single_run_but_not_a_sweep(tmp_path):
    """A user error exits 1 in a single run; in a multirun it is raised, so Hydra records the job as failed
    and runs the remaining jobs (and Optuna counts a failed trial)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    from ganforge.train import _hydra_main

    task = _hydra_main.__wrapped__  # the task function without Hydra's command-line wrapper
    cfg = compose_tiny(tmp_path, ["optimizer.generator.lr=-1"])
    with pytest.raises(SystemExit) as exit_info:
        task(cfg)
    assert exit_info.value.code == 1
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(ConfigError, match="optimizer.generator.lr must be > 0"):
        task(cfg)


@pytest.mark.slow
@pytest.mark.extended  # the resume logic is checked in process by the next test
def test_killed_sweep_resumes_in_its_folder(tmp_path):
    """A 4-job sweep killed while its third job trains: relaunched with sweep.resume=<folder>, jobs 0 and 1
    are skipped, job 2 resumes from its last.ckpt, job 3 runs; the report covers the four as one sweep."""
    args = [
        "-m",
        "loss=ns,hinge",
        "seed=0,1",
        *TINY_CLI,
        "trainer.max_epochs=3",
        f"paths.outputs_root={tmp_path}",
    ]
    args += ["name=rs"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    sweep_run = subprocess.Popen(
        [str(BIN / "ganforge-train"), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and sweep_run.poll() is None:
            sweeps = list((tmp_path / "rs").glob("multirun_*"))
            if sweeps and (sweeps[0] / "2" / "checkpoints" / "last.ckpt").is_file():
                break
            time.sleep(0.02)
    finally:
        os.killpg(sweep_run.pid, signal.SIGKILL)  # a lost node: no clean-up of any kind
        sweep_run.wait()
    sweep = sweep_folder(tmp_path, "rs")
    assert [(sweep / j / "job_done.json").is_file() for j in "012"] == [True, True, False]
    assert not (sweep / "3").exists()
    before = {j: (sweep / j / "metrics.csv").stat().st_mtime_ns for j in "01"}

    result = run_cli("ganforge-train", [*args, f"sweep.resume={sweep}"])
    assert sorted(p.name for p in sweep.glob("multirun_*")) == []  # no new sweep folder beside it
    assert list((tmp_path / "rs").iterdir()) == [sweep]
    assert all((sweep / j / "job_done.json").is_file() for j in "0123")
    assert {j: (sweep / j / "metrics.csv").stat().st_mtime_ns for j in "01"} == before  # skipped
    printed = result.stdout + result.stderr
    assert printed.count("finished before") == 2
    assert f"Resuming from {sweep / '2' / 'checkpoints' / 'last.ckpt'}" in printed
    epochs = [int(r["epoch"]) for r in csv.DictReader(open(sweep / "2" / "metrics.csv")) if r.get("epoch")]
    assert max(epochs) == 2  # job 2 trained to the end

    report_main([str(sweep)])
    groups = {r["group"]: r for r in csv.DictReader(open(sweep / "report.csv"))}
    assert {g: groups[g]["runs"] for g in groups} == {"loss=ns": "2", "loss=hinge": "2"}


def test_resumed_sweep_job_is_skipped_resumed_or_run_by_what_its_folder_holds(tmp_path, monkeypatch):
    """``resumable_job`` in process, for the three jobs a killed grid sweep leaves behind."""
    from omegaconf import OmegaConf

    import ganforge.sweep as sweep_module

    def job_cfg(num: int, resume: bool, overrides: list[str]):
        hydra_cfg = OmegaConf.create({"job": {"num": num}, "overrides": {"task": overrides}})
        monkeypatch.setattr(sweep_module, "hydra_config", lambda: hydra_cfg)
        monkeypatch.setattr(sweep_module, "is_multirun", lambda h: True)
        folder = tmp_path / str(num)
        folder.mkdir(exist_ok=True)
        cfg = {"paths": {"output_dir": str(folder)}, "ckpt_path": None}
        return OmegaConf.create({**cfg, "sweep": {"resume": str(tmp_path) if resume else None}}), folder

    ran = []

    def job(cfg):
        return lambda: ran.append((cfg.paths.output_dir, cfg.ckpt_path)) or 0.5

    overrides = ["loss=ns", "seed=0"]
    cfg, done = job_cfg(0, False, overrides)  # the first launch: job 0 ends well
    assert sweep_module.resumable_job(cfg, job(cfg)) == 0.5
    assert json.loads((done / "job_done.json").read_text()) == {"overrides": overrides, "value": 0.5}

    ran.clear()
    cfg, _ = job_cfg(0, True, [*overrides, f"sweep.resume={tmp_path}"])  # relaunched: skipped
    assert sweep_module.resumable_job(cfg, job(cfg)) == 0.5 and ran == []
    cfg, killed = job_cfg(1, True, ["loss=ns", "seed=1"])  # killed after a checkpoint: resumed
    (killed / "checkpoints").mkdir()
    (killed / "checkpoints" / "last.ckpt").write_bytes(b"")
    sweep_module.resumable_job(cfg, job(cfg))
    cfg, fresh = job_cfg(2, True, ["loss=hinge", "seed=0"])  # never started: from the start
    sweep_module.resumable_job(cfg, job(cfg))
    assert ran == [(str(killed), str(killed / "checkpoints" / "last.ckpt")), (str(fresh), None)]
    cfg, _ = job_cfg(0, True, ["loss=hinge", "seed=1"])  # a different command in job 0's folder
    with pytest.raises(ConfigError, match="relaunch the sweep's own command"):
        sweep_module.resumable_job(cfg, job(cfg))


def test_sweep_resume_reuses_a_grid_sweep_folder_and_refuses_searches(tmp_path):
    from ganforge.sweep import BASIC_SWEEPER, study_seed, sweep_dir_resolver

    assert sweep_dir_resolver(None, "outputs/x/multirun_new", BASIC_SWEEPER) == "outputs/x/multirun_new"
    assert sweep_dir_resolver(str(tmp_path), "outputs/x/multirun_new", BASIC_SWEEPER) == str(tmp_path)
    with pytest.raises(ValueError, match="no such sweep folder"):
        sweep_dir_resolver(str(tmp_path / "gone"), "new", BASIC_SWEEPER)
    with pytest.raises(ValueError, match="hydra.sweeper.storage=sqlite:///"):
        sweep_dir_resolver(
            str(tmp_path), "new", "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
        )
    assert (
        study_seed(1234, f"sqlite:///{tmp_path / 'none.db'}", "s") == 1234
    )  # a fresh study: the seed as set
    cfg = compose_tiny(tmp_path, ["hparams_search=dcgan_optuna"])
    assert cfg.hydra.sweeper.storage == f"sqlite:///{cfg.hydra.sweep.dir}/optuna.db"
