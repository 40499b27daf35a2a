"""Sweeps that survive a crash: resume a grid sweep in its own folder, continue an Optuna study.

**Grid sweeps** (Hydra's basic sweeper, ``-m loss=ns,hinge seed=0,1``). Every job that ends
well writes ``job_done.json`` (its overrides and the value it returned) into its folder.
Relaunching the same command with ``sweep.resume=<sweep folder>`` reuses that folder as the
sweep folder (``hydra.sweep.dir``, through the ``ganforge.sweep_dir`` resolver), and each job:

- whose folder holds ``job_done.json`` with the same overrides is skipped (its value returned
  again, so the sweep's results stay whole);
- whose folder holds ``checkpoints/last.ckpt`` but no ``job_done.json`` (it was running, or
  failed) resumes from that checkpoint;
- otherwise runs from the start.

Jobs keep their numbers and folders, so the report covers the sweep as one.

**Optuna searches** keep their study in ``<sweep>/optuna.db`` (SQLite). A search relaunched with
``hydra.sweeper.storage=sqlite:///<old sweep>/optuna.db`` loads that study and adds trials to it;
the sampler's seed is offset by the number of trials already in the study (``ganforge.study_seed``),
so the new trials are not replays of the first ones. ``sweep.resume`` refuses searches: the
sweeper numbers a relaunch's trials from 0, which would land new trials in old trials' folders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ganforge.config import ConfigError
from ganforge.loggers.naming import hydra_config, is_multirun

log = logging.getLogger("ganforge")
DONE_FILE = "job_done.json"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def sweep_dir_resolver(resume: str | None, fresh: str, sweeper: str | None = None) -> str:
    """``hydra.sweep.dir``: the folder to resume when ``sweep.resume`` is set, else a fresh one.

    Raises:
        ValueError: ``resume`` names no folder, or the sweeper is not Hydra's grid sweeper.
    """
    if resume in (None, "", "None", "null"):
        return fresh
    if sweeper and sweeper != BASIC_SWEEPER:
        raise ValueError(
            "sweep.resume continues grid sweeps (-m a=1,2); an Optuna search continues its study with "
            f"hydra.sweeper.storage=sqlite:///{resume}/optuna.db (new trials in a new sweep folder)"
        )
    if not Path(str(resume)).is_dir():
        raise ValueError(f"sweep.resume={resume}: no such sweep folder")
    return str(resume)


def study_seed(seed: int | None, storage: str | None, study_name: str) -> int | None:
    """The sampler seed: ``seed`` plus the number of trials ``storage`` already holds for ``study_name``.

    A fresh study keeps ``seed`` (a rerun draws the same trials); a continued one draws new ones.
    """
    if seed is None or not storage or str(storage) in ("None", "null"):
        return seed
    url = str(storage)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        return int(seed)
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=url)
    except KeyError:  # no study of that name yet
        return int(seed)
    return int(seed) + len(study.trials)


def sqlite_storage(folder: str, filename: str = "optuna.db") -> str:
    """``sqlite:///<folder>/<filename>``, the folder created (Optuna creates the study before any job
    has made the sweep folder)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(folder) / filename}"


def register_resolvers() -> None:
    """``ganforge.sweep_dir``, ``ganforge.sqlite`` and ``ganforge.study_seed`` for ``conf/hydra`` and
    ``conf/hparams_search``."""
    OmegaConf.register_new_resolver("ganforge.sweep_dir", sweep_dir_resolver, replace=True)
    OmegaConf.register_new_resolver("ganforge.sqlite", sqlite_storage, replace=True)
    OmegaConf.register_new_resolver("ganforge.study_seed", study_seed, replace=True)


register_resolvers()


def job_overrides(hydra_cfg: DictConfig) -> list[str]:
    """The job's overrides without ``sweep.resume`` (the same job, resumed or not)."""
    return [str(o) for o in hydra_cfg.overrides.task if not str(o).lstrip("+~").startswith("sweep.")]


def finished_record(run_dir: Path, hydra_cfg: DictConfig) -> dict | None:
    """``job_done.json`` of this job in ``run_dir``, ``None`` if it did not finish there.

    Raises:
        ConfigError: the folder holds a finished job with other overrides (the command changed).
    """
    done = run_dir / DONE_FILE
    if not done.is_file():
        return None
    record = json.loads(done.read_text())
    if record.get("overrides") != job_overrides(hydra_cfg):
        raise ConfigError(
            f"sweep.resume: {run_dir} holds a finished job with the overrides {record.get('overrides')}, "
            f"not {job_overrides(hydra_cfg)}; relaunch the sweep's own command"
        )
    return record


def resumable_job(cfg: DictConfig, job: Callable[[], Any]) -> Any:
    """Run one job of a sweep, or skip or resume it when ``sweep.resume`` is set; record it when done.

    Args:
        cfg: the job's composed config.
        job: runs the job and returns what the sweeper gets (the objective value, or ``None``).
    """
    hydra_cfg = hydra_config()
    if not is_multirun(hydra_cfg):
        return job()
    run_dir = Path(cfg.paths.output_dir)
    if OmegaConf.select(cfg, "sweep.resume"):
        record = finished_record(run_dir, hydra_cfg)
        if record is not None:
            log.info("Job %s finished before (%s): skipped", hydra_cfg.job.num, run_dir / DONE_FILE)
            return record.get("value")
        last = run_dir / "checkpoints" / "last.ckpt"
        if last.is_file() and not cfg.get("ckpt_path"):
            cfg.ckpt_path = str(last)  # train() logs "Resuming from ..."
    value = job()
    record = {"overrides": job_overrides(hydra_cfg), "value": value}
    (run_dir / DONE_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return value
