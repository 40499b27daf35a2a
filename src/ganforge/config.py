"""Finding, composing and checking the config tree under ``conf/``.

The entry points use Hydra's ``@hydra.main``; this module adds what Hydra does not do:
a pre-flight check that turns a mistyped key into a message listing the valid keys.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

CONF_DIR = Path(os.environ.get("GANFORGE_CONF", Path(__file__).resolve().parents[2] / "conf"))


class ConfigError(ValueError):
    """A config is invalid; the message says which key and what is allowed."""


def compose_config(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with overrides, outside ``@hydra.main`` (tests, tools)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides or [], return_hydra_config=True)


def _valid_keys(overrides: list[str], key: str, config_name: str) -> list[str] | None:
    """Keys that exist at the parent of ``key`` once the group choices in ``overrides`` apply."""
    parent, _, _ = key.rpartition(".")
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key and "." not in o.split("=", 1)[0]]
    try:
        cfg = compose_config(kept, config_name)
    except HydraException:
        return None
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return None
    return sorted(str(k) for k in node.keys() if k != "hydra")


def precheck_overrides(argv: list[str], config_name: str = "train") -> str | None:
    """Compose the command line's overrides once; return an error message or ``None``.

    Hydra's own messages list the options of a config group; for a key that does not exist
    this adds the keys that do, which Hydra's message leaves out.
    """
    if any(a in ("-m", "--multirun") or a.startswith("-") for a in argv):
        return None  # flags (help, multirun, --cfg...) are Hydra's to handle
    overrides = [a for a in argv if "=" in a and not a.startswith("hydra")]
    try:
        compose_config(overrides, config_name)
    except HydraException as err:
        message = str(err) if err.__cause__ is None else f"{err}\n{err.__cause__}"
        match = re.search(r"full_key: (\S+)", message) or re.search(r"Could not override '([^']+)'", message)
        if match and "not in struct" in message:
            key = match.group(1)
            valid = _valid_keys(overrides, key, config_name)
            if valid is not None:
                where = key.rpartition(".")[0] or "the top level"
                return f"Unknown config key '{key}'. Valid keys at {where}: {', '.join(valid)}"
        return message
    finally:
        GlobalHydra.instance().clear()
    return None


def resolved_container(cfg: DictConfig) -> dict:
    """The config as plain Python containers with every interpolation resolved (no ``hydra`` node)."""
    return {
        str(k): OmegaConf.to_container(cfg[k], resolve=True)
        if isinstance(cfg[k], (DictConfig, ListConfig))
        else cfg[k]
        for k in cfg
        if k != "hydra"
    }


def save_resolved(cfg: DictConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(resolved_container(cfg))))
    return path


_CONDITIONINGS = (
    "projection",
    "aux",
)  # networks.sngan.CONDITIONINGS (configs are checked before torch loads)
_DIFFAUGMENT = ("color", "translation", "cutout")  # augment.diffaugment.POLICIES
_ADA = ("xflip", "rotate90", "translation", "brightness", "contrast", "saturation")  # augment.ada.TRANSFORMS
# Penalties that differentiate D per sample: batch norm in D would mix the samples.
_PER_SAMPLE_PENALTIES = ("gradient_penalty", "r1_penalty", "r2_penalty")


def _names_ok(value, valid: tuple[str, ...]) -> bool:
    names = str(value).split(",") if isinstance(value, str) else [str(v) for v in value]
    return all(name.strip() in valid for name in names if name.strip())


def _penalty_problems(cfg: DictConfig) -> list[str]:
    """Weights (gamma, lambda) >= 0, lazy intervals >= 1, and no batch norm in D under a gradient penalty."""
    problems = []
    penalties = OmegaConf.select(cfg, "loss.penalties") or {}
    norm = OmegaConf.select(cfg, "model.discriminator.norm")
    for name, node in penalties.items():
        if node is None:
            continue
        weight, every = node.get("weight", 1.0), node.get("every", 1)
        if not _type_ok(weight, float) or weight < 0:
            problems.append(f"loss.penalties.{name}.weight must be a number >= 0; got {weight!r}")
        if not _type_ok(every, int) or every < 1:
            problems.append(f"loss.penalties.{name}.every must be an integer >= 1; got {every!r}")
        target = str(OmegaConf.select(node, "fn._target_", default=""))
        if norm == "batch" and target.rsplit(".", 1)[-1] in _PER_SAMPLE_PENALTIES:
            problems.append(
                f"loss.penalties.{name} takes per-sample gradients of D, but model.discriminator.norm=batch "
                "mixes the samples of a batch; add model.discriminator.norm=layer (or none)"
            )
    return problems


_PRECISIONS = {"32-true", "32", "64-true", "64", "bf16-mixed", "16-mixed", "bf16-true", "16-true"}

# (key, type, check, what the check means); a key absent from the composed config is skipped.
_RULES: list[tuple[str, type, object, str]] = [
    ("seed", int, lambda v: v >= 0, ">= 0"),
    ("data.batch_size", int, lambda v: v >= 1, ">= 1"),
    ("data.img_size", int, lambda v: v >= 4, ">= 4"),
    ("data.channels", int, lambda v: v in (1, 3), "1 or 3"),
    ("data.num_workers", int, lambda v: v >= 0, ">= 0"),
    ("data.val_fraction", float, lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optimizer.generator.lr", float, lambda v: v > 0, "> 0"),
    ("optimizer.discriminator.lr", float, lambda v: v > 0, "> 0"),
    ("loss.n_critic", int, lambda v: v >= 1, ">= 1"),
    ("model.latent_dim", int, lambda v: v >= 1, ">= 1"),
    ("model.ema_decay", float, lambda v: 0 <= v < 1, "in [0, 1)"),
    ("model.max_iters", int, lambda v: v >= 1, ">= 1 (or null)"),
    ("model.grad_clip", float, lambda v: v > 0, "> 0 (or null)"),
    ("model.num_classes", int, lambda v: v >= 0, ">= 0 (0 = unconditional)"),
    (
        "model.discriminator.conditioning",
        str,
        lambda v: v in _CONDITIONINGS,
        "one of " + ", ".join(_CONDITIONINGS),
    ),
    ("model.augment.p", float, lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("model.augment.target", float, lambda v: 0 <= v <= 1, "in [0, 1] (r_t = E[sign(D(real))])"),
    ("model.augment.interval", int, lambda v: v >= 1, ">= 1"),
    ("model.augment.speed_images", int, lambda v: v >= 1, ">= 1"),
    (
        "model.augment.policy",
        str,
        lambda v: _names_ok(v, _DIFFAUGMENT),
        "comma-separated, out of " + ", ".join(_DIFFAUGMENT),
    ),
    (
        "model.augment.transforms",
        str,
        lambda v: _names_ok(v, _ADA),
        "comma-separated, out of " + ", ".join(_ADA),
    ),
    ("loss.aux_weight", float, lambda v: v >= 0, ">= 0"),
    ("loss.topk_gamma", float, lambda v: 0 <= v <= 1, "in [0, 1] (1 = off)"),
    ("loss.topk_min_fraction", float, lambda v: 0 < v <= 1, "in (0, 1]"),
    ("trainer.max_epochs", int, lambda v: v >= 1 or v == -1, ">= 1 (or -1 for no limit)"),
    ("trainer.precision", str, lambda v: str(v) in _PRECISIONS, "one of " + ", ".join(sorted(_PRECISIONS))),
]


def _type_ok(value, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    if kind is str:
        return isinstance(value, (str, int))
    return isinstance(value, kind)


def validate_config(cfg: DictConfig) -> None:
    """Check types and ranges of the values training depends on, before anything is built.

    Raises:
        ConfigError: one message per problem found, each naming the key, the value and what is allowed.
    """
    problems = []
    try:  # a model sized from image keys the data lacks (e.g. model=dcgan with data=ring8)
        if "model" in cfg:
            OmegaConf.to_container(cfg.model, resolve=True)
    except InterpolationResolutionError as err:
        missing = re.search(r"[Kk]ey '([^']+)'", str(err))
        name = missing.group(1) if missing else str(err).splitlines()[0]
        raise ConfigError(
            f"invalid config:\n  - the model config needs '{name}', which this data config does not define "
            "(2-D point data such as ring8/grid25 needs model=mlp)"
        ) from None
    for key, kind, check, allowed in _RULES:
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=True)
        except Exception as err:  # a ??? value the user must set
            problems.append(f"{key} must be set ({err.__class__.__name__})")
            continue
        if value is None:
            continue
        if not _type_ok(value, kind):
            problems.append(
                f"{key} must be {'a number' if kind is float else 'an integer' if kind is int else 'a string'}; "
                f"got {value!r}"
            )
        elif not check(value):
            problems.append(f"{key} must be {allowed}; got {value!r}")
    for side in ("generator", "discriminator"):
        betas = OmegaConf.select(cfg, f"optimizer.{side}.betas")
        if betas is not None and not all(_type_ok(b, float) and 0 <= b < 1 for b in betas):
            problems.append(f"optimizer.{side}.betas must be two numbers in [0, 1); got {list(betas)}")
    for side in ("generator", "discriminator"):
        channels = OmegaConf.select(cfg, f"model.{side}.channels")
        data_channels = OmegaConf.select(cfg, "data.channels")
        if channels is not None and data_channels is not None and channels != data_channels:
            problems.append(
                f"model.{side}.channels = {channels} but data.channels = {data_channels}; they must match"
            )
    problems += _penalty_problems(cfg)
    problems += _precision_problems(cfg)
    pack = OmegaConf.select(cfg, "model.discriminator.pack")
    batch_size = OmegaConf.select(cfg, "data.batch_size")
    if pack is not None and (not _type_ok(pack, int) or pack < 1):
        problems.append(f"model.discriminator.pack must be an integer >= 1; got {pack!r}")
    elif pack is not None and _type_ok(batch_size, int) and batch_size % pack:
        problems.append(
            f"data.batch_size = {batch_size} is not a multiple of model.discriminator.pack = {pack}: "
            "D judges packs of that many samples"
        )
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))


def _precision_problems(cfg: DictConfig) -> list[str]:
    """fp16 mixed precision needs a CUDA GPU (Lightning would silently switch a CPU run to bf16)."""
    precision = str(OmegaConf.select(cfg, "trainer.precision", default=""))
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    if precision not in ("16-mixed", "16"):
        return []
    import torch

    if accelerator == "cpu" or (accelerator in ("auto", "gpu", "cuda") and not torch.cuda.is_available()):
        return [
            f"trainer.precision={precision} needs a CUDA GPU (fp16 autocast with loss scaling); "
            "this run is on the CPU: use trainer.precision=bf16-mixed there"
        ]
    return []
