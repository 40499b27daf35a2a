"""The image-to-image scheme end to end: configs, a few training steps, metrics, translate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import open_dict
from PIL import Image
from pytorch_lightning import Callback

from ganforge.metrics.domain import load_digit_classifier, predict_digits
from ganforge.train import build_module, train
from ganforge.translate import load_translator, translate_files, translate_image
from ganforge.translate import main as translate_main
from ganforge.utils.checkpoint import CheckpointError, load_checkpoint
from tests.conftest import conf_options

PHOTOS = ["data.photo_size=40", "data.img_size=32", "data.load_size=36"]
TRANSLATION_DATA = ["digits2mnist", "edges2photos", "photo2painting", "aligned", "unaligned"]


@pytest.mark.parametrize(
    ("group", "option"),
    [("model", "cyclegan"), ("model", "pix2pix"), ("loss", "cyclegan"), ("loss", "pix2pix")]
    + [("data", name) for name in TRANSLATION_DATA]
    + [("callbacks", "image2image")],
)
def test_every_translation_option_composes_and_instantiates(tiny_cfg, group, option):
    model = "pix2pix" if option in ("pix2pix", "edges2photos", "aligned") else "cyclegan"
    overrides = [f"model={model}", f"loss={model}", "callbacks=image2image", f"{group}={option}"]
    if option in ("aligned", "unaligned"):
        overrides.append("data.root=/nonexistent")  # instantiation does not read the folder
    cfg = tiny_cfg(overrides)
    assert isinstance(instantiate(cfg.data), object)
    module = build_module(cfg, None)
    assert module.scheme == model and module.objective.lambda_cycle == (10.0 if model == "cyclegan" else 0.0)
    assert instantiate(cfg.callbacks.panels).every_n_epochs == 1 and cfg.callbacks.samples is None


@pytest.mark.parametrize(
    "name", [n for n in conf_options("experiment") if n.startswith(("cyclegan", "pix2pix"))]
)
def test_experiments_compose_with_published_defaults(tiny_cfg, name):
    cfg = tiny_cfg([f"experiment={name}"])
    assert cfg.optimizer.generator.lr == 2e-4 and list(cfg.optimizer.generator.betas) == [0.5, 0.999]
    assert cfg.optimizer.scheduler._target_.endswith("constant_then_linear_decay")
    if name == "cyclegan_digits2mnist":  # its weights were chosen on seed 0 (see the experiment's README)
        assert cfg.loss.lambda_cycle == 20.0 and cfg.loss.lambda_identity == 1.0
    elif cfg.model._target_.endswith("CycleGANModule"):
        assert cfg.loss.lambda_cycle == 10.0 and cfg.loss.lambda_identity == 0.5
    else:
        assert cfg.loss.lambda_l1 == 100.0 and cfg.loss.gan_mode == "vanilla"
    assert cfg.model.discriminator.norm == "instance" and cfg.model.generator.norm == "instance"


def image_size(path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def read_metrics(run) -> dict[str, float]:
    """The last logged value of every column of ``metrics.csv``."""
    last: dict[str, float] = {}
    with open(run / "metrics.csv") as f:
        for row in csv.DictReader(f):
            last.update({k: float(v) for k, v in row.items() if v})
    return last


def test_cyclegan_trains_logs_label_accuracy_and_translates_from_its_checkpoint(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        [
            "experiment=cyclegan_digits2mnist",
            "data.img_size=16",
            "data.load_size=16",
            "model.generator.n_blocks=1",
            "metrics=domain",  # FID/KID of the translations against held-out MNIST, by the digit classifier
            "metrics.names=[fid,kid]",
            "metrics.n_fake=32",
            "loss.lambda_tv=0.5",  # the priors on G(A), logged as train/tv and train/content
            "loss.lambda_content=1",
        ]
    )
    metrics = train(cfg)
    assert np.isfinite(metrics["train/tv"]) and np.isfinite(metrics["train/content"])
    run = tmp_path / "run"
    logged = read_metrics(run)
    for key in ("train/g_loss", "train/d_loss", "train/cycle", "train/identity", "val/cycle_a", "val/fid"):
        assert np.isfinite(logged[key]), key
    assert logged["val/kid_mean"] > -1 and (run / "metrics_protocol.json").is_file()
    # label_acc_identity: the shipped MNIST classifier on the one held-out batch, untranslated
    held_out = instantiate(cfg.data).held_out_batch(cfg.data.batch_size)
    expected = (predict_digits(load_digit_classifier(), held_out["A"]) == held_out["A_label"]).float().mean()
    assert metrics["val/label_acc_identity"] == pytest.approx(expected.item())
    assert 0.0 <= metrics["val/label_acc"] <= 1.0
    assert (run / "panels/epoch_0000.png").is_file() and (run / "panels/last.png").is_file()
    panel = np.asarray(Image.open(run / "panels/last.png"))
    assert panel.shape[1] == 6 * 18 + 2  # six 16 px columns: A | G(A) | F(G(A)) | B | F(B) | G(F(B))
    ckpt = load_checkpoint(run / "checkpoints/last.ckpt")
    assert ckpt["ganforge"]["scheme"] == "cyclegan" and ckpt["ganforge"]["iteration"] == 2
    # the scheme merges its entries: the metrics callback's protocol and last values survive
    assert (
        ckpt["ganforge"]["metrics_protocol"]["protocol_id"]
        == json.loads((run / "metrics_protocol.json").read_text())["protocol_id"]
    )
    assert ckpt["ganforge"]["metrics"]["val/fid"] == pytest.approx(logged["val/fid"])

    # translate a folder of odd sizes and modes: names and sizes kept, from the checkpoint alone
    src = tmp_path / "inputs"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (21, 13, 3), dtype=np.uint8)).save(
        src / "a.png"
    )
    Image.fromarray(np.full((5, 40), 200, dtype=np.uint8)).save(src / "sub" / "thin.png")
    written = translate_files(run / "checkpoints/last.ckpt", src, tmp_path / "out", direction="BtoA")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == ["a.png", "sub/thin.png"]
    assert image_size(tmp_path / "out" / "a.png") == (13, 21)
    assert image_size(tmp_path / "out" / "sub" / "thin.png") == (40, 5)

    # the written image is exactly the generator's output at native size (padded to a multiple of 4)
    net, _ = load_translator(run / "checkpoints/last.ckpt", "BtoA")
    x = (
        torch.as_tensor(np.array(Image.open(src / "a.png").convert("L")), dtype=torch.float32)[None] / 127.5
        - 1
    )
    expected = (
        ((translate_image(net, x) + 1) * 127.5).round().clamp(0, 255).squeeze(0).numpy().astype(np.uint8)
    )
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), expected)


@pytest.mark.parametrize("experiment", ["cyclegan_digits2mnist", "cut_digits2mnist"])
def test_translator_moving_average_is_kept_used_and_read_from_the_checkpoint(tiny_cfg, tmp_path, experiment):
    tiny = ["data.img_size=16", "data.load_size=16", "model.generator.n_blocks=1", "metrics=none"]
    tiny += ["loss.nce_layers=[input,down2,block1]"] if experiment.startswith("cut") else []
    cfg = tiny_cfg([f"experiment={experiment}", *tiny, "model.ema_decay=0.5", "trainer.max_epochs=2"])
    train(cfg)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints/last.ckpt")
    state = ckpt["state_dict"]
    module = build_module(cfg, None)
    module.load_state_dict(state)  # the averages are part of the state: a resume restores them
    for direction in module.directions:
        average, trained = module.translators_ema[direction], module.trained_translator(direction)
        assert module.translator(direction) is average
        assert not any(p.requires_grad for p in average.parameters())
        assert any(
            not torch.equal(p_avg, p)
            for p_avg, p in zip(average.parameters(), trained.parameters(), strict=True)
        )  # after 4 steps at decay 0.5 the average lags the trained weights
        net, _ = load_translator(tmp_path / "run" / "checkpoints/last.ckpt", direction)
        x = torch.rand(2, 1, 16, 16) * 2 - 1
        torch.testing.assert_close(net(x), average.eval()(x), rtol=0, atol=0)  # the tools translate with it
    with pytest.raises(Exception, match="ema_decay"):
        build_module(tiny_cfg([f"experiment={experiment}", *tiny, "model.ema_decay=1.5"]), None)


def test_selection_split_is_held_in_digits_scored_at_every_validation(tiny_cfg):
    tiny = [
        "experiment=cyclegan_digits2mnist",
        "data.img_size=16",
        "data.load_size=16",
        "model.generator.n_blocks=1",
    ]
    cfg = tiny_cfg([*tiny, "data.select_fraction=0.1"])
    dm = instantiate(cfg.data)
    dm.setup()
    plain = instantiate(tiny_cfg([*tiny, "data.select_fraction=0"]).data)
    plain.setup()
    images, labels = dm.selection()
    n_in = len(plain.train_set.source_a)
    assert plain.selection() is None and len(images) == round(n_in * 0.1) == len(labels)
    assert (
        len(dm.train_set.source_a) + len(images) == n_in
    )  # taken out of training, not out of the held-out digits
    torch.testing.assert_close(dm.held_out("A"), plain.held_out("A"), rtol=0, atol=0)
    assert images.shape[1:] == (1, 16, 16) and dm.dataset_id != plain.dataset_id
    metrics = train(cfg)
    assert 0.0 <= metrics["val/label_acc_select"] <= 1.0 and "val/label_acc" in metrics


class CrashAt(Callback):
    """Stops a run with an error before the given iteration, as a crash would (no epoch-end save)."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.iteration >= self.iteration:
            raise RuntimeError("simulated crash")


def test_cyclegan_resumed_mid_epoch_matches_an_uninterrupted_run(tiny_cfg, tmp_path):
    # A pool of 3 fills in the first epoch: the resumed discriminators must see the same history.
    tiny = ["experiment=cyclegan_digits2mnist", "data.img_size=16", "data.load_size=16"]
    tiny += ["model.generator.n_blocks=1", "model.pool_size=3", "trainer.max_epochs=2"]
    tiny += ["++trainer.limit_train_batches=4", "callbacks.last_checkpoint.every_n_iters=2"]

    def run(name: str, *extra: str) -> Path:
        cfg = tiny_cfg([*tiny, *extra])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / name)
            if name == "killed":
                cfg.callbacks.crash = {"_target_": f"{__name__}.CrashAt", "iteration": 6}
        if name == "killed":
            with pytest.raises(RuntimeError, match="simulated crash"):
                train(cfg)
        else:
            train(cfg)
        return tmp_path / name / "checkpoints" / "last.ckpt"

    straight = load_checkpoint(run("straight"))["state_dict"]
    killed = run("killed")
    state = load_checkpoint(killed)
    assert state["ganforge"]["iteration"] == 6 and len(state["ganforge"]["image_pools"]["b"]["images"]) == 3
    resumed = load_checkpoint(run("resumed", f"ckpt_path={killed}"))["state_dict"]
    for key in (k for k in straight if k.startswith(("generator.", "generator_ba."))):
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=1e-6, msg=key)


def test_metric_fakes_translate_held_out_images_by_rank(tiny_cfg):
    cfg = tiny_cfg(["experiment=pix2pix_edges2photos", *PHOTOS])
    datamodule = instantiate(cfg.data)
    module = build_module(cfg, datamodule)

    class Trainer:  # metric_fakes only reads the datamodule
        pass

    trainer = Trainer()
    trainer.datamodule = datamodule
    module._trainer = trainer
    held_out = datamodule.held_out("A")
    n = len(held_out) + 3
    whole = torch.cat(list(module.metric_fakes(n, batch_size=4, seed=0)))
    assert whole.shape == (n, 3, 32, 32) and whole.min() >= -1 and whole.max() <= 1
    assert torch.allclose(whole[len(held_out)], whole[0])  # sample i translates held-out image i mod count
    shards = [torch.cat(list(module.metric_fakes(n, 4, 0, rank=r, world_size=2))) for r in (0, 1)]
    # equal up to float rounding: a batch of other images takes other convolution paths
    torch.testing.assert_close(shards[0], whole[0::2], rtol=0, atol=1e-6)
    torch.testing.assert_close(shards[1], whole[1::2], rtol=0, atol=1e-6)
    reals = torch.cat(list(datamodule.metric_reals("val")))
    assert reals.shape == held_out.shape and "edges2photos-32px-c3" in datamodule.dataset_id


def test_pix2pix_dropout_stays_on_at_test_time_unless_switched_off(tiny_cfg):
    datamodule = None
    outputs = {}
    for at_eval in (True, False):
        # 64 px: the U-Net's dropout sits in the levels below the fifth
        sizes = ["data.photo_size=80", "data.img_size=64", "data.load_size=68"]
        cfg = tiny_cfg(
            ["experiment=pix2pix_edges2photos", *sizes, f"model.generator.dropout_at_eval={at_eval}"]
        )
        datamodule = datamodule or instantiate(cfg.data)
        module = build_module(cfg, datamodule).eval()
        x = datamodule.held_out("A")[:2]
        first, second = module.translate(x), module.translate(x)
        outputs[at_eval] = torch.equal(first, second)
        trainer = type("Trainer", (), {"datamodule": datamodule})()
        module._trainer = trainer
        fakes = [torch.cat(list(module.metric_fakes(5, 2, seed=3))) for _ in range(2)]
        torch.testing.assert_close(fakes[0], fakes[1], rtol=0, atol=0)  # (seed, i) decide the draw
    assert outputs == {True: False, False: True}  # the paper's noise at test time; deterministic when off


def test_instance_norm_affine_option_learns_scale_and_shift():
    from ganforge.networks.patchgan import PatchDiscriminator
    from ganforge.networks.unet import UNetGenerator

    for make in (
        lambda a: UNetGenerator(3, 32, 4, norm_affine=a),
        lambda a: PatchDiscriminator(3, 4, norm_affine=a),
    ):
        plain, affine = make(False), make(True)
        norms = [m for m in affine.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
        assert norms and all(m.affine for m in norms)
        extra = sum(p.numel() for p in affine.parameters()) - sum(p.numel() for p in plain.parameters())
        assert extra == sum(2 * m.num_features for m in norms)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: __import__("ganforge.networks.resnet_translator", fromlist=["x"]).ResnetTranslator(
            3, 8, 2, **kw
        ),
        lambda **kw: __import__("ganforge.networks.resnet_translator", fromlist=["x"]).ResnetTranslator(
            3, 8, 2, antialias=True, **kw
        ),
        lambda **kw: __import__("ganforge.networks.unet", fromlist=["x"]).UNetGenerator(
            3, 32, 4, dropout=0.0, **kw
        ),
    ],
    ids=["resnet", "resnet-antialias", "unet"],
)
def test_residual_translators_start_as_the_identity_and_learn_a_change(make):
    torch.manual_seed(0)
    plain, residual = make(), make(residual=True)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in residual.parameters())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(residual(x), x, rtol=0, atol=0)  # the zeroed last layer changes nothing
    target = (x * 0.5).detach()  # a style that halves contrast: reachable only by changing the input
    opt = torch.optim.Adam(residual.parameters(), lr=1e-3)
    start = torch.nn.functional.mse_loss(residual(x), target).item()
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.mse_loss(residual(x), target).backward()
        opt.step()
    assert torch.nn.functional.mse_loss(residual(x), target).item() < 0.8 * start
    out = residual(torch.ones(1, 3, 32, 32) * 5)  # never leaves the image range
    assert out.max() <= 1 and out.min() >= -1
    residual.zero_grad()
    residual(-torch.ones(1, 3, 32, 32)).mean().backward()  # black pixels can still learn to change
    assert residual.residual.layer.bias.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="channels_out"):
        make(residual=True, channels_out=1)


def test_pix2pix_trains_and_logs_psnr_against_its_baseline(tiny_cfg, tmp_path):
    metrics = train(
        tiny_cfg(["experiment=pix2pix_edges2photos", *PHOTOS, "loss.lambda_tv=0.5", "loss.lambda_content=1"])
    )
    for key in (
        "val/psnr",
        "val/ssim",
        "val/psnr_identity",
        "val/ssim_identity",
        "train/l1",
        "train/g_adv",
        "train/tv",
        "train/content",
    ):
        assert np.isfinite(metrics[key]), key
    panel = np.asarray(Image.open(tmp_path / "run/panels/last.png"))
    assert panel.shape[1] == 3 * 34 + 2  # A | G(A) | target
    ckpt = tmp_path / "run/checkpoints/last.ckpt"
    with pytest.raises(CheckpointError, match="translates AtoB only"):
        load_translator(ckpt, "BtoA")


def test_cyclegan_photo2painting_logs_psnr_against_the_filter(tiny_cfg):
    metrics = train(tiny_cfg(["experiment=cyclegan_photo2painting", *PHOTOS, "data.painterly.passes=1"]))
    # identity baseline: the photo itself against its painterly rendering
    assert 5.0 < metrics["val/psnr_identity"] < 40.0 and 0.0 < metrics["val/ssim_identity"] < 1.0
    assert np.isfinite(metrics["val/psnr"]) and np.isfinite(metrics["train/identity"])


def test_translate_rejects_truncated_and_foreign_checkpoints_naming_the_file(tmp_path, capsys):
    gan = tmp_path / "gan.ckpt"
    torch.save({"state_dict": {}, "ganforge": {"scheme": "gan", "config": {}}}, gan)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(gan.read_bytes()[:50])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    (tmp_path / "in").mkdir()
    args = [f"input={tmp_path / 'in'}", f"out={tmp_path / 'o'}"]
    # (the console script's wiring to this entry point: test_reliability's test_console_scripts_start_their_entry_points)
    cases = (
        (truncated, "is truncated or corrupt"),
        (foreign, "is not a ganforge checkpoint"),
        (gan, "is a 'gan' checkpoint"),
    )
    for path, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            translate_main([f"ckpt={path}", *args])
        assert exit_info.value.code == 2 and f"{path} {message}" in capsys.readouterr().err
