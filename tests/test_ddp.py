"""Distributed data parallel on CPU: 2 gloo processes through the real ``ganforge-train`` CLI.

Lightning relaunches the script once per extra process; these tests check what a user sees:
one run folder, one checkpoint, a resume, and a divergence on one process that stops all of
them instead of leaving the others waiting in an all-reduce. Each scheme adds its overrides
to ``SCHEMES``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ganforge.config import compose_config
from ganforge.evaluate import evaluate_checkpoint, parse_args
from ganforge.losses.adversarial import g_loss_nonsaturating
from ganforge.utils.checkpoint import load_checkpoint

BIN = Path(sys.executable).parent
TINY_DDP = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "data.batch_size=8",
    "logger=[csv]",
    "~callbacks.progress_bar",
]
# Overrides that select a training scheme with tiny networks.
SCHEMES = {
    "gan": ["data=digits", "data.img_size=16", "model.generator.width=8", "model.discriminator.width=8"],
    "image2image": [
        "experiment=cyclegan_digits2mnist",
        "data.img_size=16",
        "data.load_size=16",
        "model.generator.width=8",
        "model.generator.n_blocks=1",
        "model.discriminator.width=8",
    ],
}
# FID and precision/recall of 64 samples split over the two processes (KID and IS draw random
# subsets of the gathered features, whose order differs between 1 and 2 processes).
METRICS = ["metrics=domain", "metrics.names=[fid,pr]", "metrics.n_fake=64", "metrics.every_n_epochs=1"]
_calls = 0


def g_loss_nan_on_rank1(fake_logits, real_logits=None):
    """The non-saturating G loss, but NaN from the second call on in the process of local rank 1.

    Rank 0's own losses of that iteration are computed before the all-reduced G step spreads
    the NaN, so only a shared decision stops rank 0 in the same iteration.
    """
    global _calls
    _calls += 1
    loss = g_loss_nonsaturating(fake_logits, real_logits)
    return loss * float("nan") if os.environ.get("LOCAL_RANK") == "1" and _calls >= 2 else loss


def run_ddp(outputs: Path, overrides: list[str], name: str = "ddp") -> subprocess.CompletedProcess:
    """``ganforge-train`` with 2 CPU processes; one thread each so they do not fight over cores."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [str(BIN / "ganforge-train"), *TINY_DDP, *overrides, f"paths.outputs_root={outputs}", f"name={name}"],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    # The translation scheme shares the launch, the metric sync and the resume path with the GAN's;
    # its 2-process run is the longest test (~65 s), so only `make test-all` runs it.
    "scheme",
    [pytest.param(s, marks=pytest.mark.extended) if s == "image2image" else s for s in SCHEMES],
)
def test_ddp_trains_once_and_resumes(tmp_path, scheme):
    first = run_ddp(tmp_path, [*SCHEMES[scheme], *METRICS])
    assert first.returncode == 0, first.stderr[-3000:]
    runs = sorted(p for p in (tmp_path / "ddp").iterdir() if p.is_dir())
    assert len(runs) == 1, runs  # the relaunched process writes into the first one's folder
    assert sorted(p.relative_to(runs[0]).as_posix() for p in runs[0].rglob("*.ckpt")) == [
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
    ]
    # The metric states are synced: the 2-process values equal one process scoring the same
    # samples of the same checkpoint (its reals computed afresh, not read from the run's cache).
    rows = [r for r in csv.DictReader(open(runs[0] / "metrics.csv")) if r.get("val/fid")]
    args = ["names=fid,pr", "n_fake=64", f"cache_dir={tmp_path / 'one_process_cache'}"]
    single = evaluate_checkpoint(parse_args([f"ckpt={runs[0] / 'checkpoints' / 'last.ckpt'}", *args]))
    for key in ("val/fid", "val/precision", "val/recall"):
        assert float(rows[-1][key]) == pytest.approx(single["results"][key], rel=1e-4), key
    assert (runs[0] / "config.yaml").is_file() and (runs[0] / "metrics.csv").is_file()
    state = load_checkpoint(runs[0] / "checkpoints" / "last.ckpt")["ganforge"]
    assert state["iteration"] == 2 and state["config"]["trainer"]["devices"] == 2

    second = run_ddp(tmp_path, [*SCHEMES[scheme], "metrics=none", "ckpt_path=last", "trainer.max_epochs=2"])
    assert second.returncode == 0, second.stderr[-3000:]
    runs = sorted(p for p in (tmp_path / "ddp").iterdir() if p.is_dir())
    assert len(runs) == 2, runs
    resumed = load_checkpoint(runs[1] / "checkpoints" / "last.ckpt")
    assert resumed["ganforge"]["iteration"] == 4 and resumed["epoch"] == 1


@pytest.mark.slow
@pytest.mark.extended  # test_reliability checks the shared decision in one process, with a stand-in all-reduce
def test_divergence_on_one_process_stops_every_process(tmp_path):
    loss = f"loss.g_loss._target_={__name__}.g_loss_nan_on_rank1"
    # Decisions at iterations 2 and 4: the NaN of rank 1 at iteration 2 meets rank 0's finite losses
    # there (later, the all-reduced G step has spread it to rank 0 too).
    overrides = [loss, "trainer.limit_train_batches=4", "callbacks.divergence.check_every=2"]
    run = run_ddp(tmp_path, [*SCHEMES["gan"], "metrics=none", *overrides], name="diverge")
    assert run.returncode == 1, run.stderr[-3000:]
    assert "training diverged at iteration 2" in run.stderr
    # Rank 0's own losses are finite: it stops because the guard shares the decision.
    assert "a loss on another process = nan" in run.stderr


def test_slurm_launcher_composes_with_ddp():
    """SLURM through Hydra's submitit launcher: one task per GPU, Lightning reads the SLURM variables."""
    cfg = compose_config(
        [
            "trainer=ddp",
            "trainer.devices=4",
            "trainer.num_nodes=2",
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.nodes=2",
            "hydra.launcher.tasks_per_node=4",
            "hydra.launcher.gpus_per_node=4",
        ]
    )
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.trainer.strategy == "ddp_find_unused_parameters_true"
    assert (
        cfg.hydra.launcher.nodes * cfg.hydra.launcher.tasks_per_node
        == cfg.trainer.devices * cfg.trainer.num_nodes
    )
