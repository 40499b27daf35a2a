"""Rules for config values, each written once: the pre-flight check and the constructors read one table.

:data:`RULES` maps a config key to the type its value must have, the test it must pass and the
words that say what is allowed. :func:`validate_config` walks the table over a composed config
before anything is built and reports every problem at once; a constructor checks its own argument
with ``check_value("loss.n_critic", n_critic)``, so a class built without a config (a test, a
notebook) refuses the same values in the same words. Names that a module implements (D's
conditionings, the augmentation ops) are read from that module when a rule first needs them, so a
new op is added in one place. Checks that relate several keys (channels of model and data,
gradient penalties and batch norm, the arguments the model class takes) follow the
table. ``ganforge.config`` re-exports :class:`ConfigError`, :func:`check_value` and
:func:`validate_config`.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, InterpolationToMissingValueError

if TYPE_CHECKING:
    from torch import nn


class ConfigError(ValueError):
    """A config is invalid; the message says which key and what is allowed."""


def owned_names(module: str, name: str) -> tuple[str, ...]:
    """The tuple ``module.name`` of names that ``module`` implements (imported on first use)."""
    return tuple(getattr(importlib.import_module(module), name))


def _names(value) -> list[str]:
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [item.strip() for item in items if item.strip()]


@dataclass(frozen=True)
class Rule:
    """What the value at one config key must be.

    Args:
        kind: ``int``, ``float`` (an int passes), ``str``, ``list`` or ``"names"`` (a comma-separated
            string or a list of names).
        check: the test a value of the right kind must pass.
        allowed: completes ``"<key> must be ..."``; a callable where the words list names a module owns.
        nullable: ``None`` (YAML ``null``) passes.
    """

    kind: type | str
    check: Callable[[Any], bool]
    allowed: str | Callable[[], str]
    nullable: bool = False

    def words(self) -> str:
        return self.allowed() if callable(self.allowed) else self.allowed


def _one_of(module: str, name: str) -> Rule:
    return Rule(
        str,
        lambda v: str(v) in owned_names(module, name),
        lambda: "one of " + ", ".join(owned_names(module, name)),
    )


def _subset_of(module: str, name: str) -> Rule:
    return Rule(
        "names",
        lambda v: set(_names(v)) <= set(owned_names(module, name)),
        lambda: f"a comma-separated list (valid: {', '.join(owned_names(module, name))})",
    )


def _betas(value) -> bool:
    return len(value) == 2 and all(_kind_ok(b, float) and 0 <= b < 1 for b in value)


PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed", "16-mixed", "bf16-true", "16-true")

# key -> rule; a `*` segment matches any one name (the penalties under loss.penalties).
RULES: dict[str, Rule] = {
    "seed": Rule(int, lambda v: v >= 0, ">= 0"),
    "data.batch_size": Rule(int, lambda v: v >= 1, ">= 1"),
    "data.img_size": Rule(int, lambda v: v >= 4, ">= 4"),
    "data.channels": Rule(int, lambda v: v in (1, 3), "1 or 3"),
    "data.num_workers": Rule(int, lambda v: v >= 0, ">= 0"),
    "data.val_fraction": Rule(float, lambda v: 0 <= v < 1, "in [0, 1)"),
    "data.select_fraction": Rule(float, lambda v: 0 <= v < 1, "in [0, 1)"),
    "optimizer.generator.lr": Rule(float, lambda v: v > 0, "> 0"),
    "optimizer.discriminator.lr": Rule(float, lambda v: v > 0, "> 0"),
    "optimizer.generator.betas": Rule(list, _betas, "two numbers in [0, 1)"),
    "optimizer.discriminator.betas": Rule(list, _betas, "two numbers in [0, 1)"),
    "loss.n_critic": Rule(int, lambda v: v >= 1, ">= 1"),
    "loss.aux_weight": Rule(float, lambda v: v >= 0, ">= 0"),
    "loss.topk_gamma": Rule(float, lambda v: 0 <= v <= 1, "in [0, 1] (1 = off)"),
    "loss.topk_min_fraction": Rule(float, lambda v: 0 < v <= 1, "in (0, 1]"),
    "loss.penalties.*.weight": Rule(float, lambda v: v >= 0, "a number >= 0"),
    "loss.penalties.*.every": Rule(int, lambda v: v >= 1, "an integer >= 1"),
    "model.latent_dim": Rule(int, lambda v: v >= 1, ">= 1"),
    "model.num_classes": Rule(int, lambda v: v >= 0, ">= 0 (0 = unconditional)"),
    "model.ema_decay": Rule(
        float, lambda v: 0 <= v < 1, "in [0, 1) (null: no average, translation models only)", nullable=True
    ),
    "model.ema_half_life_kimg": Rule(
        float, lambda v: v > 0, "> 0 (or null: use model.ema_decay)", nullable=True
    ),
    "model.ema_rampup": Rule(float, lambda v: v > 0, "> 0 (or null: no ramp-up)", nullable=True),
    "model.generator.style_mixing_prob": Rule(float, lambda v: 0 <= v <= 1, "in [0, 1] (0 = off)"),
    "metrics.truncation_psi": Rule(float, lambda v: v >= 0, ">= 0 (1 = no truncation)"),
    "model.max_iters": Rule(int, lambda v: v >= 1, ">= 1 (or null)", nullable=True),
    "model.grad_clip": Rule(float, lambda v: v > 0, "> 0 (or null)", nullable=True),
    "model.d_warmup_iters": Rule(int, lambda v: v >= 0, "an integer >= 0 (0 = no warm-up)"),
    "model.discriminator.conditioning": _one_of("ganforge.networks.sngan", "CONDITIONINGS"),
    "model.discriminator.pack": Rule(int, lambda v: v >= 1, "an integer >= 1"),
    "model.augment.p": Rule(float, lambda v: 0 <= v <= 1, "in [0, 1]"),
    "model.augment.target": Rule(float, lambda v: 0 <= v <= 1, "in [0, 1] (r_t = E[sign(D(real))])"),
    "model.augment.interval": Rule(int, lambda v: v >= 1, ">= 1"),
    "model.augment.speed_images": Rule(int, lambda v: v >= 1, ">= 1"),
    "model.augment.policy": _subset_of("ganforge.augment.diffaugment", "POLICIES"),
    "model.augment.transforms": _subset_of("ganforge.augment.ada", "TRANSFORMS"),
    "trainer.max_epochs": Rule(int, lambda v: v >= 1 or v == -1, ">= 1 (or -1 for no limit)"),
    "trainer.precision": Rule(str, lambda v: str(v) in PRECISIONS, "one of " + ", ".join(sorted(PRECISIONS))),
}

_KIND_WORDS = {
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    "names": "a list of names",
}


def _kind_ok(value, kind: type | str) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    if kind is str:
        return isinstance(value, (str, int))  # YAML reads precision 32 as an int
    if kind is list:
        return isinstance(value, (list, tuple))
    if kind == "names":
        return isinstance(value, (str, list, tuple))
    return isinstance(value, kind)


def _rule_for(key: str) -> Rule:
    if key in RULES:
        return RULES[key]
    parts = key.split(".")
    for pattern, rule in RULES.items():
        segments = pattern.split(".")
        if len(segments) == len(parts) and all(s in ("*", p) for s, p in zip(segments, parts, strict=True)):
            return rule
    raise KeyError(f"no rule for config key {key!r}")


def value_problem(key: str, value: Any) -> str | None:
    """What is wrong with ``value`` at ``key`` in the words of its rule, or ``None`` if it is allowed."""
    rule = _rule_for(key)
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value)
    if value is None and rule.nullable:
        return None
    if not _kind_ok(value, rule.kind):
        return f"{key} must be {_KIND_WORDS[rule.kind]}; got {value!r}"
    if not rule.check(value):
        return f"{key} must be {rule.words()}; got {value!r}"
    return None


def check_value(key: str, value: Any) -> None:
    """Refuse a value that the rule for ``key`` does not allow; constructors call it on their arguments.

    Args:
        key: a key of :data:`RULES` such as ``"loss.n_critic"``; a concrete key matches a ``*``
            pattern (``"loss.penalties.r1.weight"``), and a class that does not know its name
            passes the pattern itself (``"loss.penalties.*.weight"``).
        value: the value to check; ``None`` passes where the rule allows ``null``.

    Raises:
        ConfigError: the value breaks the rule (the message names the key, the value and what is allowed).
        KeyError: there is no rule for ``key``.
    """
    problem = value_problem(key, value)
    if problem:
        raise ConfigError(problem)


_ABSENT = object()


def _present_keys(cfg: DictConfig, pattern: str) -> Iterator[str]:
    """The keys of ``cfg`` that ``pattern`` names (expanding ``*`` over the names found there)."""
    head, _, rest = pattern.partition(".*.")
    if not rest:
        if OmegaConf.select(cfg, pattern, default=_ABSENT) is not _ABSENT:
            yield pattern
        return
    node = OmegaConf.select(cfg, head, default=None)
    if isinstance(node, DictConfig):
        for name, child in node.items():
            if child is not None:
                yield from _present_keys(cfg, f"{head}.{name}.{rest}")


def _rule_problems(cfg: DictConfig) -> list[str]:
    problems = []
    for pattern in RULES:
        for key in _present_keys(cfg, pattern):
            problem = value_problem(key, OmegaConf.select(cfg, key))
            if problem:
                problems.append(problem)
    return problems


def _missing_keys(parent: DictConfig | ListConfig, key: str | int, path: str | None = None) -> Iterator[str]:
    """Keys under ``parent[key]`` whose value is ``???``, without resolving interpolations."""
    path = path if path is not None else str(key)
    if OmegaConf.is_missing(parent, key):
        yield path
    elif not OmegaConf.is_interpolation(parent, key):
        node = parent[key]
        if isinstance(node, DictConfig):
            for child in node:
                yield from _missing_keys(node, child, f"{path}.{child}")
        elif isinstance(node, ListConfig):
            for index in range(len(node)):
                yield from _missing_keys(node, index, f"{path}[{index}]")


def _missing_problems(cfg: DictConfig) -> list[str]:
    """Required values (``???``) left unset; a base chosen as an option (``model=scheme/gan``) lands here."""
    missing = [key for top in cfg if top != "hydra" for key in _missing_keys(cfg, str(top))]
    problems = [f"{key} must be set (it is ??? in the config)" for key in missing]
    if any(key in ("model.generator", "model._target_", "data._target_") for key in missing):
        problems.append(
            "conf/model/scheme/ and conf/data/base/ hold the bases that options build on, not options "
            "to train with: choose e.g. model=dcgan, data=mnist5k"
        )
    return problems


def _model_argument_problems(cfg: DictConfig) -> list[str]:
    """Keys of the model node that its class does not take (e.g. augment=ada with a translation model)."""
    target = OmegaConf.select(cfg, "model._target_", default=None)
    if not isinstance(target, str):
        return []
    from hydra.utils import get_class

    try:
        parameters = inspect.signature(get_class(target)).parameters
    except Exception:  # an unimportable target: instantiation reports it with Hydra's message
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return []
    extra = [str(k) for k in cfg.model if not str(k).startswith("_") and str(k) not in parameters]
    name, takes = target.rsplit(".", 1)[-1], ", ".join(p for p in parameters if p != "self")
    return [
        f"model.{key} is not an argument of {name}"
        + (" (augment=... is D-input augmentation of the GAN scheme)" if key == "augment" else "")
        + f"; it takes: {takes}"
        for key in extra
    ]


def _augment_problems(cfg: DictConfig) -> list[str]:
    """D-input augmentation transforms images; 2-D point data has none (no data.img_size)."""
    augment = OmegaConf.select(cfg, "model.augment", default=None)
    if (
        augment is None
        or "data" not in cfg
        or OmegaConf.select(cfg, "data.img_size", default=None) is not None
    ):
        return []
    return [
        f"model.augment ({str(OmegaConf.select(augment, '_target_', default='')).rsplit('.', 1)[-1]}) "
        "transforms images, but this data holds 2-D points (it has no data.img_size); drop augment=..."
    ]


def needs_per_sample_gradients(penalty: DictConfig) -> bool:
    """Whether a penalty node's function is marked by :func:`ganforge.losses.regularizers.per_sample_gradients`."""
    target = OmegaConf.select(penalty, "fn._target_", default=None)
    if not isinstance(target, str):
        return False
    from hydra.utils import get_method

    try:
        fn = get_method(target)
    except Exception:  # an unimportable target: instantiation reports it with Hydra's message
        return False
    return bool(getattr(fn, "per_sample_gradients", False))


def _penalty_problems(cfg: DictConfig) -> list[str]:
    """No batch norm in D under a penalty that takes per-sample gradients of D."""
    if OmegaConf.select(cfg, "model.discriminator.norm", default=None) != "batch":
        return []
    penalties = OmegaConf.select(cfg, "loss.penalties", default=None) or {}
    return [
        f"loss.penalties.{name} takes per-sample gradients of D, but model.discriminator.norm=batch "
        "mixes the samples of a batch; add model.discriminator.norm=layer (or none)"
        for name, node in penalties.items()
        if node is not None and needs_per_sample_gradients(node)
    ]


def _channel_problems(cfg: DictConfig) -> list[str]:
    problems = []
    data_channels = OmegaConf.select(cfg, "data.channels", default=None)
    for side in ("generator", "discriminator"):
        channels = OmegaConf.select(cfg, f"model.{side}.channels", default=None)
        if channels is not None and data_channels is not None and channels != data_channels:
            problems.append(
                f"model.{side}.channels = {channels} but data.channels = {data_channels}; they must match"
            )
    return problems


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


def validate_config(cfg: DictConfig) -> None:
    """Check types and ranges of the values training depends on, before anything is built.

    Raises:
        ConfigError: one message per problem found, each naming the key, the value and what is allowed.
    """
    try:  # a model sized from image keys the data lacks (e.g. model=dcgan with data=ring8)
        if "model" in cfg:
            OmegaConf.to_container(cfg.model, resolve=True)
    except InterpolationToMissingValueError:
        pass  # it points at a ??? value: reported below as one that must be set
    except InterpolationResolutionError as err:
        missing = re.search(r"[Kk]ey '([^']+)'", str(err))
        name = missing.group(1) if missing else str(err).splitlines()[0]
        raise ConfigError(
            f"invalid config:\n  - the model config needs '{name}', which this data config does not define "
            "(2-D point data such as ring8/grid25 needs model=mlp)"
        ) from None
    problems = _missing_problems(cfg)  # the other checks read values that may point at these
    if not problems:
        for more in (
            _rule_problems,
            _channel_problems,
            _penalty_problems,
            _precision_problems,
            _model_argument_problems,
            _augment_problems,
        ):
            problems += more(cfg)
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))


def check_truncation(generator: nn.Module, truncation_psi: float) -> None:
    """Refuse truncation for a generator without a mapping network's average ``w``."""
    if not hasattr(generator, "w_avg"):
        raise ConfigError(
            f"truncation_psi={truncation_psi} pulls w toward the mapping network's average, but "
            f"{type(generator).__name__} has no mapping network (use model=stylegan2, or truncation_psi=1)"
        )
