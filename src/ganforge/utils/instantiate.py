"""Instantiating config nodes with the user's error in front, not Hydra's wrapper around it."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate


def build(node: Any, what: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)``; a bad value stops with one message naming ``what``.

    A :class:`~ganforge.config.ConfigError` raised by a constructor surfaces as it is; a plain
    ``ValueError`` (a network's own argument check) becomes a ``ConfigError`` prefixed by ``what``
    (``"model"``, ``"data"``, ``"metrics"``); any other error is Hydra's, unchanged.
    """
    from ganforge.config import ConfigError

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        if type(cause) is ValueError:
            raise ConfigError(f"{what}: {cause}") from None
        if cause is not None and not isinstance(cause, (ImportError, TypeError)):
            raise cause from None
        raise
