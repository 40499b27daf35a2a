"""Run names that say what differs, and the short set of hyperparameters dashboards compare on.

A job of a multirun is named by its *swept* overrides, ``loss=hinge seed=1``: the keys the
command line gave several values (``loss=ns,hinge``, ``seed=range(3)``) or that the sweeper
searches (Optuna's ``hydra.sweeper.params``), in command-line order, with this job's values.
Overrides every job shares (``data=digits trainer.max_epochs=1``) and keys that only place or
display a run (paths, loggers, ``sweep.resume``) are left out. A single run is named by its
experiment (``name``). TensorBoard, W&B and ``ganforge-report`` all use these names.

Within a sweep the names are unique: where two jobs of a grid would read the same (a value
listed twice) and in searches, whose sampled values may repeat, `` #<job number>`` is added.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Override keys that name, place or display a run: never part of a run's name.
NOISE_KEYS = ("name", "tags", "ckpt_path", "logger", "optimized_metric", "hparams_search")
NOISE_PREFIXES = (
    "hydra.",
    "hydra/",
    "paths.",
    "sweep.",
    "logger.",
    "trainer.enable_",
    "callbacks.progress_bar",
)
# The short hyperparameter set of the HPARAMS table, after the swept keys. Group names (model,
# loss, experiment) read the option chosen (dcgan, hinge), not its resolved node.
CURATED_KEYS = (
    "model",
    "loss",
    "optimizer.generator.lr",
    "optimizer.discriminator.lr",
    "data.batch_size",
    "data.img_size",
    "seed",
    "experiment",
)

# The metrics runs are compared on, in this order, where the runs logged them: the HPARAMS table's
# metrics and the first columns of ganforge-report's tables.
COMPARISON_METRICS = (
    "val/fid",
    "val/kid_mean",
    "val/is_mean",
    "val/precision",
    "val/recall",
    "val/density",
    "val/coverage",
    "val/label_acc",
    "val/psnr",
    "val/ssim",
)


def hydra_config() -> DictConfig | None:
    """The running job's Hydra config, ``None`` outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return HydraConfig.get()
    except ValueError:
        return None


def is_multirun(hydra_cfg: DictConfig | None) -> bool:
    from hydra.types import RunMode

    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


def is_noise(key: str) -> bool:
    """Whether an override key only names, places or displays a run (see :data:`NOISE_KEYS`)."""
    return key in NOISE_KEYS or key.startswith(NOISE_PREFIXES)


def _parse(overrides: list[str]) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([str(o) for o in overrides])


def sweep_arguments(hydra_cfg: DictConfig) -> list[str]:
    """The sweep's command-line overrides (``loss=ns,hinge``), from ``<sweep>/multirun.yaml``.

    Hydra's basic sweeper writes that file before it launches any job, whichever launcher runs
    them (a SLURM array task reads it too). Other sweepers do not: their searched keys come from
    ``hydra.sweeper.params``.
    """
    saved = Path(str(hydra_cfg.sweep.dir)) / "multirun.yaml"
    if not saved.is_file():
        return []
    task = OmegaConf.select(OmegaConf.load(saved), "hydra.overrides.task", default=None)
    return [str(o) for o in task or []]


def swept_keys(hydra_cfg: DictConfig) -> list[str]:
    """Keys given several values on the command line, then the sweeper's searched keys."""
    keys = [o.key_or_group for o in _parse(sweep_arguments(hydra_cfg)) if o.is_sweep_override()]
    params = OmegaConf.select(hydra_cfg, "sweeper.params", default=None) or {}
    keys += [str(k) for k in params if str(k) not in keys]
    return [k for k in keys if not is_noise(k)]


def job_values(overrides: list[str]) -> dict[str, str]:
    """``["+a.b=1", "~c"]`` -> ``{"a.b": "1", "c": "~"}``: a job's overrides by key."""
    values = {}
    for o in _parse(overrides):
        values[o.key_or_group] = "~" if o.is_delete() else o.get_value_element_as_str()
    return values


def short_value(value: str) -> str:
    """Sampled floats to 3 significant digits (``0.000123456`` -> ``0.000123``); the rest as given."""
    try:
        number = float(value)
    except ValueError:
        return value
    if len(value) <= 8 or not math.isfinite(number):
        return value
    return f"{number:.3g}"


def short_keys(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest suffix that no other key ends with (``optimizer.generator.lr`` -> ``generator.lr``)."""
    short = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if not any(k != key and (k == tail or k.endswith("." + tail)) for k in keys):
                short[key] = tail
                break
        else:
            short[key] = key
    return short


def name_from(keys: list[str], overrides: list[str]) -> str:
    """``key=value`` of ``keys`` in a job's ``overrides``, space-separated."""
    values = job_values(overrides)
    short = short_keys(keys)
    return " ".join(f"{short[k]}={short_value(values[k])}" for k in keys if k in values)


def _grid_names(hydra_cfg: DictConfig, keys: list[str]) -> list[str] | None:
    """Every job's name in a basic-sweeper grid (job order), ``None`` for other sweepers."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    arguments = sweep_arguments(hydra_cfg)
    if not arguments or OmegaConf.select(hydra_cfg, "sweeper.params", default=None):
        return None
    (batch,) = BasicSweeper.split_arguments(_parse(arguments), None)
    return [name_from(keys, job) for job in batch]


def run_name(experiment: str | None = None, hydra_cfg: DictConfig | None = None) -> str:
    """The display name of the running job (see the module docstring).

    Args:
        experiment: the run's ``name`` (the experiment); the name of a single run.
        hydra_cfg: the job's Hydra config (default: the running job's).
    """
    hydra_cfg = hydra_cfg if hydra_cfg is not None else hydra_config()
    if not is_multirun(hydra_cfg):
        return experiment or "run"
    keys = swept_keys(hydra_cfg)
    num = int(hydra_cfg.job.num)
    name = name_from(keys, list(hydra_cfg.overrides.task))
    grid = _grid_names(hydra_cfg, keys)
    if grid is not None and grid.count(name) == 1:
        return name
    return f"{name} #{num}" if name else f"#{num}"


def sweep_dir(hydra_cfg: DictConfig | None = None) -> Path | None:
    """The sweep folder of a multirun job, ``None`` for a single run."""
    hydra_cfg = hydra_cfg if hydra_cfg is not None else hydra_config()
    return Path(str(hydra_cfg.sweep.dir)) if is_multirun(hydra_cfg) else None


def comparison_hparams(config: dict, hydra_cfg: DictConfig | None = None) -> dict[str, Any]:
    """The HPARAMS set: swept keys first, then :data:`CURATED_KEYS`; scalars only.

    Args:
        config: the resolved run config.
        hydra_cfg: the job's Hydra config, for group choices and swept keys (default: the running job's).
    """
    hydra_cfg = hydra_cfg if hydra_cfg is not None else hydra_config()
    # Outside a Hydra job (a config composed in code, as the benchmarks and notebooks do) there are no
    # group choices and nothing swept: the curated keys alone.
    choices = dict(OmegaConf.select(hydra_cfg, "runtime.choices", default=None) or {}) if hydra_cfg else {}
    swept = swept_keys(hydra_cfg) if is_multirun(hydra_cfg) else []
    resolved = OmegaConf.create(config)
    params: dict[str, Any] = {}
    for key in [*swept, *(k for k in CURATED_KEYS if k not in swept)]:
        if key == "experiment":
            value = choices.get(key) or config.get("name")
        elif key in choices:
            value = choices[key]
        else:
            value = OmegaConf.select(resolved, key, default=None)
            if isinstance(value, DictConfig):  # a group chosen on the command line but not recorded
                value = OmegaConf.select(resolved, f"{key}._target_", default=None)
            elif value is not None and not isinstance(value, (bool, int, float, str)):
                value = str(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)
        if value is not None or key in swept:
            params[key] = "none" if value is None else value
    return params
