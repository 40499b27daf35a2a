"""Weights & Biases logging that never waits on the network, one W&B run per Hydra job.

The mode is decided before ``wandb.init``: offline when ``WANDB_MODE=offline`` or when no
API key is configured (``WANDB_API_KEY`` unset and no ``~/.netrc`` entry for the W&B host),
so a run on a cluster node without network writes ``<run>/wandb/offline-run-*`` at once;
``wandb sync <that folder>`` uploads it later. ``WANDB_MODE=disabled`` turns W&B off.
Every job of a multirun finishes its W&B run when training ends, so the next job starts a
new one instead of appending to it; the jobs of one sweep share a W&B group, each is named by
its swept overrides (``loss=hinge seed=1``, as in TensorBoard and ``ganforge-report``) and
its ``job_type`` is the training scheme.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlsplit

from pytorch_lightning.loggers import WandbLogger as LightningWandbLogger

from ganforge.loggers.naming import hydra_config, run_name, sweep_dir

log = logging.getLogger("ganforge")
DEFAULT_HOST = "https://api.wandb.ai"


def has_api_key() -> bool:
    """Whether W&B credentials are configured: ``WANDB_API_KEY`` or a ``.netrc`` entry for the host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)).netloc
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def resolve_mode(offline: bool | None = None) -> str:
    """``"online"``, ``"offline"`` or ``"disabled"`` for ``wandb.init``.

    Args:
        offline: ``True``/``False`` forces the mode; ``None`` decides from the environment.
    """
    env = os.environ.get("WANDB_MODE", "").lower()
    if env == "disabled":
        return "disabled"
    if offline is not None:
        return "offline" if offline else "online"
    if env in ("offline", "dryrun"):
        return "offline"
    return "online" if has_api_key() else "offline"


def sweep_names(name: str | None) -> tuple[str | None, str | None]:
    """``(group, run name)``: in a multirun group = ``<name>/<sweep folder>`` and the run is named
    by its swept overrides (:func:`~ganforge.loggers.naming.run_name`); a single run is ``name`` in both."""
    hydra_cfg = hydra_config()
    if hydra_cfg is None:
        return name, name
    folder = sweep_dir(hydra_cfg)
    group = f"{name}/{folder.name}" if folder is not None else name
    return group, run_name(name, hydra_cfg)


def scheme_of(target: str | None) -> str | None:
    """The training scheme a model ``_target_`` names (``ganforge.modules.gan.GANModule`` -> ``gan``)."""
    if not target:
        return None
    if "." not in target:
        return target
    from hydra.utils import get_class

    try:
        return str(getattr(get_class(target), "scheme", None) or target.rsplit(".", 1)[-1])
    except (ImportError, AttributeError, ValueError):
        return target.rsplit(".", 1)[-1]


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` with an automatic offline mode and one W&B run per job.

    Args:
        save_dir: folder that receives ``wandb/`` (the run folder).
        project: W&B project.
        experiment_name: ganforge's ``name``; the group of a multirun is ``<name>/<sweep folder>``.
        group: W&B group; ``None`` for the automatic one above.
        scheme: the model's ``_target_`` or a scheme name; the W&B ``job_type`` is the scheme (``gan``, ``cyclegan``).
        tags: W&B tags (ganforge's ``tags``).
        offline: ``None`` decides from the environment (see :func:`resolve_mode`).
        init_timeout: seconds ``wandb.init`` may wait for its service before giving up.
        **kwargs: passed to Lightning's ``WandbLogger`` and on to ``wandb.init``.
    """

    def __init__(
        self,
        save_dir: str,
        project: str = "ganforge",
        experiment_name: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        offline: bool | None = None,
        init_timeout: float = 60.0,
        scheme: str | None = None,
        **kwargs,
    ):
        mode = resolve_mode(offline)
        auto_group, display_name = sweep_names(experiment_name)
        if mode == "offline":
            log.info(
                "W&B logs offline to %s/wandb; upload later with `wandb sync <offline-run folder>`", save_dir
            )
        kwargs.setdefault("name", display_name)
        kwargs.setdefault("job_type", scheme_of(scheme))
        kwargs.setdefault("settings", {"init_timeout": init_timeout, "console": "off"})
        super().__init__(
            save_dir=save_dir,
            project=project,
            group=group or auto_group,
            tags=list(tags or []),
            offline=mode == "offline",
            mode=mode,
            **kwargs,
        )
        self._wandb_init.pop("anonymous", None)  # deprecated in wandb; passing None still warns
        self.mode = mode

    def finalize(self, status: str) -> None:
        """End the W&B run with the job (``wandb.finish``), so the next multirun job gets its own."""
        super().finalize(status)
        if self._experiment is not None and hasattr(self._experiment, "finish"):
            self._wandb_init["id"] = getattr(self._experiment, "id", None)  # a later use resumes this run
            self._experiment.finish(exit_code=0 if status == "success" else 1)
            self._experiment = None
