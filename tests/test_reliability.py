"""Crashes, divergence, corrupt checkpoints, unwritable folders and bad values."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ganforge.callbacks.divergence import DivergenceError, DivergenceGuard
from ganforge.config import ConfigError, compose_config, validate_config
from ganforge.generate import generate
from ganforge.train import train
from ganforge.utils.checkpoint import CheckpointError, load_checkpoint
from ganforge.utils.checkpoint_io import AtomicCheckpointIO
from tests.helpers import ExplodingLoss, write_images

BIN = Path(sys.executable).parent


# ------------------------------------------------------------------ checkpoints
def test_truncated_and_foreign_checkpoints_are_named(tiny_cfg, tmp_path):
    train(tiny_cfg([]))
    good = tmp_path / "run" / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "ganforge": {}, "obj": Path("x")}, unsafe)
    for path, reason in [
        (truncated, "truncated or corrupt"),
        (foreign, "not a ganforge checkpoint"),
        (unsafe, "cannot be loaded safely"),
        (tmp_path / "missing.ckpt", "not found"),
    ]:
        with pytest.raises(CheckpointError, match=reason) as info:
            generate(path, n=1)
        assert str(path) in str(info.value)
    with pytest.raises(CheckpointError, match="truncated"):
        train(tiny_cfg([f"ckpt_path={truncated}"]))


def test_atomic_save_keeps_previous_checkpoint_on_full_disk(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"value": torch.tensor(1.0)}, path)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device") as info:
        io.save_checkpoint({"value": torch.tensor(2.0)}, path)
    assert str(path) in str(info.value) and "intact" in str(info.value)
    assert torch.load(path, weights_only=True)["value"] == 1.0
    assert list(tmp_path.iterdir()) == [path]  # the temporary file is gone


def test_kill_during_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"value": torch.tensor(1.0)}, path)

    def killed(src, dst):
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"value": torch.tensor(2.0)}, path)
    assert torch.load(path, weights_only=True)["value"] == 1.0


def test_unwritable_output_folder_fails_before_training(tiny_cfg, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cfg = tiny_cfg([])
    cfg.paths.output_dir = str(blocker / "run")
    with pytest.raises(PermissionError, match="cannot write to the run folder"):
        train(cfg)


# ------------------------------------------------------------------ divergence
def test_divergence_stops_and_keeps_last_good_checkpoint(tiny_cfg, tmp_path):
    ExplodingLoss.reset({4})
    cfg = tiny_cfg(
        [
            "trainer.max_epochs=3",
            "trainer.limit_train_batches=3",
            "loss.d_loss._target_=tests.helpers.exploding_d_loss",
        ]
    )
    with pytest.raises(
        DivergenceError, match=r"iteration 4.*train/d_loss = nan.*last good checkpoint"
    ) as info:
        train(cfg)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert "last.ckpt" in str(info.value)
    assert ckpt["ganforge"]["iteration"] == 3  # end of epoch 0: nothing after the NaN was saved
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_divergence_rollback_lowers_learning_rate_and_continues(tiny_cfg, tmp_path):
    ExplodingLoss.reset({4})
    cfg = tiny_cfg(
        [
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=3",
            "callbacks.divergence.action=rollback",
            "loss.d_loss._target_=tests.helpers.exploding_d_loss",
        ]
    )
    train(cfg)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert [s["param_groups"][0]["lr"] for s in ckpt["optimizer_states"]] == pytest.approx([1e-4, 1e-4])
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


class _CountingStrategy:
    """A strategy whose shared decision counts its calls; ``others_diverged`` plays another process's vote."""

    def __init__(self, others_diverged: bool = False):
        self.calls, self.others_diverged = 0, others_diverged

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        self.calls += 1
        return decision or self.others_diverged


def _feed(guard, iterations, losses, batches_per_epoch=1000, device="cpu", strategy=None):
    """Call the guard's batch hook as Lightning would after ``iterations`` training batches."""
    trainer = SimpleNamespace(
        strategy=strategy or _CountingStrategy(),
        num_training_batches=batches_per_epoch,
        checkpoint_callbacks=[],
    )
    module = torch.nn.Linear(2, 2, device=device)
    for it in iterations:
        module.iteration = it
        module.last_losses = {k: torch.tensor(v, device=device) for k, v in losses(it).items()}
        guard.on_train_batch_end(trainer, module, None, None, (it - 1) % batches_per_epoch)
    return trainer, module


def test_divergence_between_checks_is_caught_at_the_next_check():
    # The NaN is there at iteration 13 only: the device-side record still holds it at 20.
    def losses(it):
        return {"train/d_loss": float("nan") if it == 13 else 0.5, "train/g_loss": 1.0}

    guard = DivergenceGuard(check_every=10)
    trainer, _ = _feed(guard, range(1, 13), losses)
    with pytest.raises(DivergenceError) as info:
        _feed(guard, range(13, 31), losses, strategy=trainer.strategy)
    assert str(info.value) == (
        "training diverged at iteration 20 (non-finite since iteration 13): train/d_loss = nan; "
        "no checkpoint had been written yet"
    )
    assert trainer.strategy.calls == 2  # one shared decision at 10, one at 20


def test_divergence_guard_reads_nothing_on_the_host_between_checks():
    # Meta tensors hold no data: any host read (float, bool, .item) between checks would raise.
    strategy = _CountingStrategy()
    guard = DivergenceGuard(check_every=10, check_weights_every=4)
    _feed(guard, range(1, 10), lambda it: {"train/d_loss": 0.5}, device="meta", strategy=strategy)
    assert strategy.calls == 0
    # Decisions at every 10th iteration and at the last batch of each 25-batch epoch: 10, 20, 25, 30.
    strategy = _CountingStrategy()
    guard = DivergenceGuard(check_every=10)
    _feed(guard, range(1, 31), lambda it: {"train/d_loss": 0.5}, batches_per_epoch=25, strategy=strategy)
    assert strategy.calls == 4


def test_divergence_on_another_process_is_shared_and_checked_before_a_save():
    guard = DivergenceGuard(check_every=10)
    with pytest.raises(DivergenceError, match="at iteration 10: a loss on another process = nan"):
        _feed(guard, range(1, 11), lambda it: {"train/d_loss": 0.5}, strategy=_CountingStrategy(True))
    # A checkpoint save between checks decides first (here: an inf three iterations earlier).
    guard = DivergenceGuard(check_every=10)
    trainer, module = _feed(guard, range(1, 6), lambda it: {"train/g_loss": float("inf") if it == 2 else 1.0})
    with pytest.raises(
        DivergenceError, match=r"iteration 5 \(non-finite since iteration 2\): train/g_loss = inf"
    ):
        guard.on_save_checkpoint(trainer, module, {})


def test_divergence_between_checks_keeps_last_good_checkpoint(tiny_cfg, tmp_path):
    ExplodingLoss.reset({7})  # first iteration of epoch 1; decisions at 4, 6 (epoch end), 8
    cfg = tiny_cfg(
        [
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=6",
            "callbacks.divergence.check_every=4",
            "loss.d_loss._target_=tests.helpers.exploding_d_loss",
        ]
    )
    with pytest.raises(
        DivergenceError, match=r"iteration 8 \(non-finite since iteration 7\): train/d_loss = nan"
    ):
        train(cfg)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ckpt["ganforge"]["iteration"] == 6
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


# ------------------------------------------------------------------ bad config
@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.generator.lr=-1e-4", "optimizer.generator.lr must be > 0; got -0.0001"),
        ("data.batch_size=0", "data.batch_size must be >= 1; got 0"),
        ("loss.n_critic=0", "loss.n_critic must be >= 1; got 0"),
        ("trainer.max_epochs=ten", "trainer.max_epochs must be an integer; got 'ten'"),
        ("optimizer.discriminator.betas=[0.5,1.5]", "betas must be two numbers in [0, 1)"),
        ("model.generator.channels=3", "model.generator.channels = 3 but data.channels = 1"),
        ("trainer.precision=8-mixed", "trainer.precision must be one of"),
    ],
)
def test_bad_values_fail_before_training_with_one_message(override, message):
    with pytest.raises(ConfigError) as info:
        validate_config(compose_config([override]))
    assert message in str(info.value)


def test_conditional_model_on_unlabeled_data_is_rejected(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        [
            "data=image_folder",
            f"data.root={write_images(tmp_path / 'imgs', n=10)}",
            "data.img_size=16",
            "model.num_classes=10",
        ]
    )
    with pytest.raises(ConfigError, match="conditional .* has no labels"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cli_reports_bad_value_without_traceback(tmp_path):
    proc = subprocess.run(
        [str(BIN / "ganforge-train"), "data.batch_size=0", f"paths.outputs_root={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "data.batch_size must be >= 1; got 0" in proc.stderr and "Traceback" not in proc.stderr


# Bad input as a user types it: (console script, arguments, phrases of the last line of stderr).
# {random}: random bytes, {text}: a text file, {truncated}: half a torch checkpoint, {missing}: no file.
# The cases that reach Hydra's run start the console script; the others call its entry point
# in this process (each start costs seconds of imports), whose wiring to the script is checked
# by test_console_scripts_start_their_entry_points.
BAD_INPUT = [
    ("ganforge-train", ["model=nosuch"], ["model=nosuch", "choose one of: acgan, cut, cyclegan, dcgan"]),
    ("ganforge-train", ["trainer.max_epoch=3"], ["Unknown config key 'trainer.max_epoch'", "max_epochs"]),
    (
        "ganforge-train",
        ["ckpt_path={random}"],
        ["not a ganforge checkpoint (not a torch file, or truncated)"],
    ),
    (
        "ganforge-train",
        ["data=image_folder", "data.root={missing}"],
        ["image folder does not exist", "give the path of a folder"],
    ),
    ("ganforge-generate", ["ckpt={random}"], ["not a ganforge checkpoint", "written by ganforge-train"]),
    ("ganforge-eval", ["ckpt={truncated}"], ["is truncated or corrupt", "written by ganforge-train"]),
    ("ganforge-translate", ["ckpt={missing}", "input=x", "out=y"], ["checkpoint not found", "written by"]),
    ("ganforge-export", ["ckpt={text}", "format=onnx"], ["not a ganforge checkpoint", "written by"]),
]
IN_HYDRA = {2, 3}  # past the override check: Hydra's run, its logging and its run folder


def console_scripts() -> dict[str, object]:
    """ganforge's console scripts as installed: name -> entry point."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="console_scripts") if ep.value.startswith("ganforge.")}


def test_console_scripts_start_their_entry_points():
    scripts = console_scripts()
    assert {case[0] for case in BAD_INPUT} <= set(scripts)
    for name, entry in scripts.items():
        assert (BIN / name).is_file(), f"{name} is not installed next to {sys.executable}"
        assert f"from {entry.module} import {entry.attr}" in (BIN / name).read_text(), name
        assert callable(entry.load())


def test_checkpoint_tools_start_without_lightning():
    """The tools that only read checkpoints import neither Lightning nor torchmetrics (seconds per start)."""
    code = (
        "import sys, ganforge.generate, ganforge.translate, ganforge.export; "
        "print(sorted(m for m in ('pytorch_lightning', 'torchmetrics') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]


@pytest.fixture(scope="module")
def bad_input_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    files = {"random": root / "random.ckpt", "text": root / "notes.ckpt", "missing": root / "nothing"}
    rng = torch.Generator().manual_seed(0)
    files["random"].write_bytes(
        bytes(torch.randint(0, 256, (4096,), generator=rng, dtype=torch.uint8).tolist())
    )
    files["text"].write_text("not a checkpoint\n")
    files["truncated"] = root / "truncated.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "ganforge": {}}, files["truncated"])
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:2000])
    return root, files


def _argv(case: int, root: Path, files: dict[str, Path]) -> list[str]:
    script, args, _ = BAD_INPUT[case]
    argv = [a.format(**files) for a in args]
    if script == "ganforge-train":
        argv += [f"paths.outputs_root={root / f'outputs{case}'}", "trainer.accelerator=cpu"]
    return argv


@pytest.fixture(scope="module")
def bad_input_runs(bad_input_files):
    """The ``IN_HYDRA`` cases as console scripts, started at once: each spends seconds importing."""
    root, files = bad_input_files
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    runs = {
        case: subprocess.Popen(
            [str(BIN / BAD_INPUT[case][0]), *_argv(case, root, files)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=root,
            env=env,
        )
        for case in sorted(IN_HYDRA)
    }
    yield runs
    for run in runs.values():
        run.kill()
        run.communicate()


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(BAD_INPUT)), ids=[f"{c[0]} {c[1][0]}" for c in BAD_INPUT])
def test_cli_bad_input_ends_with_what_to_do(request, bad_input_files, case, monkeypatch, capsys):
    if case in IN_HYDRA:
        run = request.getfixturevalue("bad_input_runs")[case]
        _, stderr = run.communicate(timeout=180)
        code = run.returncode
    else:
        root, files = bad_input_files
        argv = _argv(case, root, files)
        monkeypatch.setattr(sys, "argv", [BAD_INPUT[case][0], *argv])
        monkeypatch.chdir(root)
        try:  # what the console script does with the entry point's result
            code = console_scripts()[BAD_INPUT[case][0]].load()()
        except SystemExit as exit_info:
            code = exit_info.code
        stderr = capsys.readouterr().err
    assert code not in (0, None) and "Traceback" not in stderr, stderr[-3000:]
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    for phrase in BAD_INPUT[case][2]:
        assert phrase in last, (phrase, last)


# ------------------------------------------------------------------ crash and resume
def _train_cmd(root: Path, epochs: int, *extra: str) -> list[str]:
    return [
        str(BIN / "ganforge-train"),
        "data=digits",
        "data.batch_size=16",
        "model.generator.width=16",
        "model.discriminator.width=16",
        f"trainer.max_epochs={epochs}",
        "+trainer.limit_train_batches=40",
        "trainer.deterministic=true",
        "trainer.accelerator=cpu",
        "logger=[csv]",
        "~callbacks.progress_bar",
        f"paths.outputs_root={root}",
        "name=crash",
        *extra,
    ]


def _generator_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(ckpt)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith(("generator.", "generator_ema."))}


@pytest.mark.slow
@pytest.mark.extended  # the mid-epoch kill below checks the same property from a harder point
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight_log = (tmp_path / "straight.err").open("w")  # a file, not a pipe nobody reads until the end
    straight = subprocess.Popen(  # alongside the others, one thread each
        _train_cmd(tmp_path / "straight", 3), stdout=subprocess.DEVNULL, stderr=straight_log, env=env
    )
    victim = subprocess.Popen(
        _train_cmd(tmp_path / "killed", 3), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 240
    while (
        not list((tmp_path / "killed").glob("crash/*/checkpoints/last.ckpt")) and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    interrupted = load_checkpoint(next((tmp_path / "killed").glob("crash/*/checkpoints/last.ckpt")))
    assert interrupted["epoch"] < 2  # it really died before the last epoch

    time.sleep(1.1)  # the resumed run gets its own timestamped folder
    resumed = subprocess.run(
        _train_cmd(tmp_path / "killed", 3, "ckpt_path=last"),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight_log.close()
    assert straight.wait(timeout=300) == 0, (tmp_path / "straight.err").read_text()[-2000:]
    finals = sorted((tmp_path / "killed").glob("crash/*/checkpoints/last.ckpt"))
    assert len(finals) == 2
    expected = _generator_weights(next((tmp_path / "straight").glob("crash/*/checkpoints/last.ckpt")))
    got = _generator_weights(finals[-1])
    assert expected.keys() == got.keys()
    for key in expected:
        assert (expected[key].float() - got[key].float()).abs().max() <= 1e-6, key


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    # 40-batch epochs, last.ckpt every 5 iterations: killed inside epoch 1, the resumed run
    # continues that epoch at its next unseen batch with the same random draws.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    extra = ("callbacks.last_checkpoint.every_n_iters=5", "metrics=none")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True, "env": env}
    straight = subprocess.Popen(_train_cmd(tmp_path / "straight", 2, *extra), **quiet)  # alongside the others
    victim = subprocess.Popen(_train_cmd(tmp_path / "killed", 2, *extra), **quiet)
    deadline = time.monotonic() + 240
    mid_epoch = False
    while not mid_epoch and victim.poll() is None and time.monotonic() < deadline:
        for path in (tmp_path / "killed").glob("crash/*/checkpoints/last.ckpt"):
            with contextlib.suppress(CheckpointError):
                mid_epoch = load_checkpoint(path)["ganforge"]["iteration"] >= 50  # epoch 1: iterations 41-80
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    interrupted = load_checkpoint(next((tmp_path / "killed").glob("crash/*/checkpoints/last.ckpt")))
    iteration = interrupted["ganforge"]["iteration"]
    assert interrupted["epoch"] == 1 and 50 <= iteration < 80 and iteration % 5 == 0, iteration
    (loader,) = interrupted["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert (loader["epoch"], loader["batches"]) == (1, iteration - 40)

    time.sleep(1.1)  # the resumed run gets its own timestamped folder
    resumed = subprocess.run(
        _train_cmd(tmp_path / "killed", 2, *extra, "ckpt_path=last"), **quiet, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert straight.wait(timeout=300) == 0, straight.stderr.read()[-2000:]
    finals = sorted((tmp_path / "killed").glob("crash/*/checkpoints/last.ckpt"))
    assert len(finals) == 2
    assert load_checkpoint(finals[-1])["ganforge"]["iteration"] == 80
    expected = _generator_weights(next((tmp_path / "straight").glob("crash/*/checkpoints/last.ckpt")))
    got = _generator_weights(finals[-1])
    assert expected.keys() == got.keys()
    for key in expected:
        assert (expected[key].float() - got[key].float()).abs().max() <= 1e-6, key
