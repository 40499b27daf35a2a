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
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf

# The value rules live in ganforge.validation; their entry points are part of this module's API.
from ganforge.validation import ConfigError, check_value, validate_config

__all__ = [
    "CONF_DIR",
    "ConfigError",
    "check_value",
    "compose_config",
    "precheck_overrides",
    "resolved_container",
    "save_resolved",
    "validate_config",
]

CONF_DIR = Path(os.environ.get("GANFORGE_CONF", Path(__file__).resolve().parents[2] / "conf"))


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

    Messages are one line that ends with what to do: an unknown group option lists the options
    (without Hydra's config search path); an unknown key lists the keys that exist there, which
    Hydra's message leaves out.
    """
    if any(a in ("-m", "--multirun") or a.startswith("-") for a in argv):
        return None  # flags (help, multirun, --cfg...) are Hydra's to handle
    overrides = [a for a in argv if not a.startswith("hydra")]
    parser = OverridesParser.create()
    for override in overrides:  # one at a time: Hydra's grammar errors do not say which one
        try:
            parser.parse_overrides([override])
        except OverrideParseException as err:
            reason = "; ".join(
                line for line in err.message.splitlines() if not line.startswith(("Error", "See"))
            )
            return (
                f"cannot read the override '{override}' ({reason}); write key=value and quote a value "
                "with special characters, e.g. 'callbacks.last_checkpoint.filename=\"{epoch}\"'"
            )
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
        return _ending_with_the_fix(message)
    finally:
        GlobalHydra.instance().clear()
    return None


def _ending_with_the_fix(message: str) -> str:
    """A Hydra composition error without its config search path, ending with what to do."""
    message = message.split("\nConfig search path:")[0].strip()
    missing = re.search(r"Could not find '(.+)/([^/']+)'", message)
    options = re.search(r"Available options in '[^']+':\n((?:\t.*\n?)+)", message)
    if missing and options:
        group, name = missing.groups()
        choices = ", ".join(line.strip() for line in options.group(1).splitlines() if line.strip())
        return f"{group}={name}: there is no conf/{group}/{name}.yaml; choose one of: {choices}"
    twice = re.match(
        r"(\S+) appears more than once in the final defaults list|Multiple values for ([^.\s]+)\.", message
    )
    if twice:
        group = twice.group(1) or twice.group(2)
        return f"+{group}=... adds a second {group}; to replace the default one, write {group}=<option> (without '+')"
    return message


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
