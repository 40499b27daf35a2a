"""Sweeps from the command line: Hydra multirun + report, Optuna search, submitit launcher."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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
def test_multirun_two_by_two_then_report(tmp_path):
    """`ganforge-train -m loss=ns,hinge seed=0,1`: 4 job folders in one sweep folder, then the report."""
    run_cli(
        "ganforge-train",
        [
            "-m",
            "experiment=loss_seeds_digits",
            "loss=ns,hinge",
            "seed=0,1",
            *TINY_CLI,
            f"paths.outputs_root={tmp_path}",
            "name=mr",
        ],
    )
    sweep = sweep_folder(tmp_path, "mr")
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    recorded = [yaml.safe_load((p / ".hydra" / "overrides.yaml").read_text()) for p in jobs]
    assert [(o[1], o[2]) for o in recorded] == [
        ("loss=ns", "seed=0"),
        ("loss=ns", "seed=1"),
        ("loss=hinge", "seed=0"),
        ("loss=hinge", "seed=1"),
    ]
    assert [yaml.safe_load((p / "config.yaml").read_text())["seed"] for p in jobs] == [0, 1, 0, 1]

    report_main([str(sweep)])  # in-process: the CLI's parsing is tested in test_report.py
    runs = {r["run"]: r for r in csv.DictReader(open(sweep / "runs.csv"))}
    assert set(runs) == {"0", "1", "2", "3"}
    finals = {}
    for job in jobs:
        d_final, d_best = last_and_best(job / "metrics.csv", "train/d_loss", min)
        acc_final, acc_best = last_and_best(job / "metrics.csv", "val/d_acc_real", max)
        row = runs[job.name]
        assert float(row["train/d_loss:final"]) == pytest.approx(d_final, rel=1e-12)
        assert float(row["train/d_loss:best"]) == pytest.approx(d_best, rel=1e-12)
        assert float(row["val/d_acc_real:final"]) == pytest.approx(acc_final, rel=1e-12)
        assert float(row["val/d_acc_real:best"]) == pytest.approx(acc_best, rel=1e-12)
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
