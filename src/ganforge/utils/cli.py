"""The ``key=value`` arguments of ganforge's checkpoint CLIs (generate, translate, eval, export)."""

from __future__ import annotations

import sys
from typing import Any

import yaml


def parse_key_values(argv: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """``key=value`` arguments over ``defaults``, each value typed as YAML (``3`` -> int, ``null`` -> None).

    Raises:
        ValueError: an argument without ``=`` or with a key not in ``defaults``, naming the valid keys.
    """
    args = dict(defaults)
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in defaults:
            raise ValueError(f"unknown argument '{item}'. Valid keys: {', '.join(defaults)}")
        args[key] = yaml.safe_load(value) if value else None
    return args


def print_error(prog: str, err: Exception, usage: str) -> None:
    """Print a CLI's error as the last line a user reads, with the usage above it for wrong arguments.

    Wrong arguments raise a plain ``ValueError``; a missing or unusable file (``CheckpointError``,
    ``FileNotFoundError``, ...) is about the file, and its message already says what to give.
    """
    if type(err) is ValueError:
        print(usage, file=sys.stderr)
    print(f"{prog}: {err}", file=sys.stderr)
