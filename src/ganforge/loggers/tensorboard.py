"""TensorBoard logging whose runs are named by what differs between them.

TensorBoard names a run by the folder of its event file below ``--logdir``. A single run
writes to ``<run folder>/tensorboard/`` (so ``tensorboard --logdir outputs`` shows
``<name>/<time>/tensorboard``). The jobs of a multirun write to one folder per job under the
sweep folder, ``<sweep>/tensorboard/<run name>/`` (``loss=hinge seed=1``, see
:mod:`ganforge.loggers.naming`): ``tensorboard --logdir <sweep>/tensorboard`` lists the jobs by
name. Each event folder holds ``run_folder.txt``, the job folder it belongs to, and the TEXT tab
shows it too (with the resolved config).
"""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning.loggers import TensorBoardLogger as LightningTensorBoardLogger

from ganforge.loggers.naming import run_name, sweep_dir

RUN_FOLDER_FILE = "run_folder.txt"


def folder_name(name: str) -> str:
    """A run name as one folder name (a ``/`` in a value would open a sub-folder)."""
    return name.replace("/", "∕")


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's ``TensorBoardLogger``, writing a multirun job under ``<sweep>/tensorboard/<run name>``.

    Args:
        save_dir: the run folder (a single run's events go to ``<save_dir>/<name>``).
        name: sub-folder of a single run.
        version: sub-folder below ``name`` (``""``: none).
        **kwargs: passed to Lightning's ``TensorBoardLogger``.
    """

    def __init__(
        self,
        save_dir: str,
        name: str = "tensorboard",
        version: str = "",
        experiment: str | None = None,
        **kwargs,
    ):
        self.run_dir = Path(save_dir)
        self.display_name = run_name(experiment)
        sweep = sweep_dir()
        if sweep is not None:
            save_dir, name = str(sweep / "tensorboard"), folder_name(self.display_name)
        super().__init__(save_dir=save_dir, name=name, version=version, **kwargs)
        if sweep is not None:
            log_dir = Path(self.log_dir)
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / RUN_FOLDER_FILE).write_text(f"{self.run_dir.resolve()}\n")
