"""Speed switches change speed only: same batches, same losses and weights with each on or off."""

from __future__ import annotations

import csv
import functools
import os

import pytest
import torch
from hydra.utils import instantiate
from pytorch_lightning import LightningModule
from torch._dynamo.utils import counters

from ganforge.modules.scheme import TrainingScheme
from ganforge.train import train
from ganforge.utils.checkpoint import load_checkpoint
from tests.conftest import compose_tiny
from tests.helpers import write_images

DETERMINISTIC = ["trainer.deterministic=true", "trainer.limit_train_batches=3", "data.img_size=16"]
# The translation schemes at test size (3 iterations each; pix2pix's U-Net needs 32 px), composed
# from the groups with the papers' settings, and SGD's step at 0.01: at 0.1 (below) their losses
# grow a hundredfold in three steps.
SMALL_STEP = [
    "optimizer.generator.lr=0.01",
    "optimizer.discriminator.lr=0.01",
    "++trainer.limit_val_batches=0",
]
SCHEME = ["optimizer=adam_linear_decay", "callbacks=image2image", "data.batch_size=2"]
RESNET_16 = [
    "data=digits2mnist",
    "data.load_size=16",
    "model.generator.n_blocks=1",
    "model.discriminator.n_layers=2",
]
TRANSLATION = {
    "cyclegan": ["model=cyclegan", "loss=cyclegan", *SCHEME, *RESNET_16],
    "cut": ["model=cut", "loss=cut", *SCHEME, *RESNET_16, "loss.nce_layers=[input,down2,block1]"],
    "pix2pix": ["model=pix2pix", "loss=pix2pix", *SCHEME, "data=edges2photos", "data.photo_size=40"]
    + ["data.img_size=32", "data.load_size=36"],
}
# Plain SGD with a large step: weights then differ in proportion to gradient differences. Adam
# would turn last-bit noise on near-zero gradients into full +-lr steps and hide what is compared.
SGD = [
    f"{side}"
    for name in ("generator", "discriminator")
    for side in (
        f"optimizer.{name}._target_=torch.optim.SGD",
        f"~optimizer.{name}.betas",
        f"optimizer.{name}.lr=0.1",
    )
]


def trained(tmp_path, name: str, overrides: list[str]) -> tuple[dict, list[dict]]:
    """Train 3 deterministic iterations; returns the networks' weights and the logged rows."""
    cfg = compose_tiny(tmp_path / name, [*DETERMINISTIC, *SGD, *overrides])
    train(cfg)
    run = tmp_path / name / "run"
    state = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r.get("train/d_loss")]
    # every network: G and D, CycleGAN's second pair (generator_ba, discriminator_a), CUT's heads
    return {k: v for k, v in state.items() if k.startswith(("generator", "discriminator", "heads"))}, rows


def assert_same_run(
    a: tuple[dict, list[dict]], b: tuple[dict, list[dict]], atol: float, rel: float | None = None
) -> None:
    """The same losses at every step (to ``atol`` or relative ``rel``) and the same weights (each
    tensor to ``atol`` plus ``rel`` times its largest value)."""
    for key in ("train/d_loss", "train/g_loss"):
        la, lb = [float(r[key]) for r in a[1]], [float(r[key]) for r in b[1]]
        assert len(la) == 3 and la == pytest.approx(lb, abs=atol, rel=rel), key
    for key, value in a[0].items():
        scale = value.abs().max().item() if value.numel() else 0.0
        torch.testing.assert_close(b[0][key], value, rtol=0, atol=atol + (rel or 0) * scale, msg=key)


def test_channels_last_gives_the_same_training(tmp_path):
    assert_same_run(
        trained(tmp_path, "nchw", ["model.channels_last=false"]),
        trained(tmp_path, "nhwc", ["model.channels_last=true"]),
        atol=1e-5,
    )


def test_reuse_fake_runs_g_once_per_iteration(tmp_path, monkeypatch):
    """model.reuse_fake: one G forward per iteration instead of two; D's first step is unchanged."""
    from ganforge.networks.dcgan import DCGANGenerator

    calls = []
    forward = DCGANGenerator.forward
    monkeypatch.setattr(
        DCGANGenerator, "forward", lambda self, z, labels=None: calls.append(1) or forward(self, z, labels)
    )
    fresh = trained(tmp_path, "fresh", ["model.reuse_fake=false"])
    n_fresh = len(calls)
    reused = trained(tmp_path, "reuse", ["model.reuse_fake=true"])
    assert n_fresh - (len(calls) - n_fresh) == 3  # 3 iterations, one G forward saved in each
    assert float(fresh[1][0]["train/d_loss"]) == pytest.approx(float(reused[1][0]["train/d_loss"]), abs=1e-6)
    assert float(fresh[1][0]["train/g_loss"]) != pytest.approx(float(reused[1][0]["train/g_loss"]), abs=1e-6)


@pytest.mark.slow
def test_compile_gives_the_same_training(tmp_path):
    """Dynamo's graph capture of G and D through the real module; ``aot_eager`` skips inductor's
    C++ code generation, which takes minutes on 2 cores (``model.compile=true`` was checked by hand)."""
    eager = trained(tmp_path, "eager", ["model.compile=false"])
    counters.clear()
    compiled = trained(tmp_path, "compiled", ["model.compile=aot_eager"])
    assert counters["stats"]["unique_graphs"] >= 2  # G and D really ran as compiled graphs
    assert_same_run(eager, compiled, atol=1e-5)


# (atol, rel) after three SGD steps: CycleGAN's and pix2pix's weights differ by <= 6e-5 on two
# threads and <= 1.5e-4 on one (float rounding of other convolution kernels; the losses agree to
# 3e-6 relative). CUT's PatchNCE turns the same rounding into larger
# steps: its heads' biases grow to ~300 in three steps and differ by ~0.06 (2e-4 relative); a
# layout bug would move every value.
TOLERANCE = {"cyclegan": (3e-4, 1e-5), "pix2pix": (3e-4, 1e-5), "cut": (1e-2, 1e-3)}


@pytest.mark.parametrize("scheme", list(TRANSLATION))
def test_channels_last_gives_the_same_translation_training(tmp_path, scheme):
    overrides = [*TRANSLATION[scheme], *SMALL_STEP]
    nchw = trained(tmp_path, "nchw", [*overrides, "model.channels_last=false"])
    nhwc = trained(tmp_path, "nhwc", [*overrides, "model.channels_last=true"])
    assert len(nchw[0]) == len(nhwc[0]) >= (4 if scheme == "cyclegan" else 2) * 2
    first = [float(r[key]) for r in (nchw[1][0], nhwc[1][0]) for key in ("train/d_loss", "train/g_loss")]
    assert first[:2] == pytest.approx(first[2:], rel=1e-6)
    atol, rel = TOLERANCE[scheme]
    assert_same_run(nchw, nhwc, atol=atol, rel=rel)


def test_translation_switches_reach_the_networks_and_the_batches(tiny_cfg):
    from ganforge.train import build_module

    cfg = tiny_cfg([*TRANSLATION["cyclegan"], "model.channels_last=true", "model.compile=aot_eager"])
    module = build_module(cfg, None)
    module.setup("fit")
    networks = [*module.generators(), *module.discriminators()]
    assert len(networks) == 4 and all(net._compiled_call_impl is not None for net in networks)
    weights = [m.weight for net in networks for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    seen = []
    module.train_step = lambda batch: seen.append(batch) or ({}, 2)
    module.end_step = lambda logs, n, batch_idx: None
    module.training_step({"A": torch.rand(2, 1, 8, 8), "A_label": torch.zeros(2)}, 0)
    assert seen[0]["A"].is_contiguous(memory_format=torch.channels_last) and seen[0]["A_label"].dim() == 1


@pytest.mark.slow
def test_compile_gives_the_same_translation_training(tmp_path):
    """CycleGAN's four networks through Dynamo (``aot_eager``, see the GAN test), with and
    without channels-last: the two switches compose."""
    overrides = [*TRANSLATION["cyclegan"], *SMALL_STEP]
    eager = trained(tmp_path, "eager", overrides)
    for name, switches in (("compiled", []), ("compiled_nhwc", ["model.channels_last=true"])):
        counters.clear()
        compiled = trained(tmp_path, name, [*overrides, "model.compile=aot_eager", *switches])
        assert counters["stats"]["unique_graphs"] >= 4  # both generators and both discriminators
        assert_same_run(eager, compiled, *TOLERANCE["cyclegan"])


def epoch_batches(cfg, epochs: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    batches = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        batches += [(x.clone(), y.clone()) for x, y in loader]
    return batches


@pytest.mark.parametrize(
    "switch",
    [["data.in_memory=true"], ["data.num_workers=2"], ["data.pin_memory=true"]],
    ids=["in_memory", "workers", "pin_memory"],
)
def test_loader_switches_give_the_same_batches(tmp_path, switch):
    folder = write_images(tmp_path / "imgs", n=20, size=20)
    base = ["data=image_folder", f"data.root={folder}", "data.img_size=16", "data.in_memory=false"]
    reference = epoch_batches(compose_tiny(tmp_path / "a", base))
    switched = epoch_batches(compose_tiny(tmp_path / "b", [*base, *switch]))
    assert len(reference) == len(switched) == 4  # 2 epochs of 2 full batches of 8
    assert not torch.equal(reference[0][0], reference[2][0])  # epochs are shuffled differently
    for (xa, ya), (xb, yb) in zip(reference, switched, strict=True):
        torch.testing.assert_close(xb, xa, rtol=0, atol=0)
        assert torch.equal(ya, yb)


@pytest.mark.parametrize(
    "scheme",
    [
        ["data.img_size=16"],
        [
            "experiment=pix2pix_edges2photos",
            "data.photo_size=40",
            "data.img_size=32",
            "data.load_size=36",
            "data.batch_size=1",
        ],
    ],
    ids=["gan", "pix2pix"],
)
def test_logging_only_where_read_writes_the_same_metrics(tmp_path, monkeypatch, scheme):
    """Both schemes hand values to ``self.log`` on logging steps only; the files must not change."""
    overrides = [
        "trainer.log_every_n_steps=3",
        "++trainer.limit_train_batches=5",
        "++trainer.limit_val_batches=0",
        "~callbacks.run_stats",  # its measured time and memory differ from run to run
    ]
    overrides += ["trainer.deterministic=true", *scheme]
    calls = []
    log_dict = LightningModule.log_dict
    monkeypatch.setattr(
        LightningModule,
        "log_dict",
        lambda self, *a, **k: calls.append(self.iteration) or log_dict(self, *a, **k),
    )
    lean = train(compose_tiny(tmp_path / "lean", overrides))
    assert calls == [3, 5]  # after iteration 3 (a logging step) and 5 (the last)

    def log_every_step(self, logs, n, batch_idx):  # what the modules did before
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=n)

    monkeypatch.setattr(TrainingScheme, "log_step", log_every_step)
    full = train(compose_tiny(tmp_path / "full", overrides))
    lean_rows = list(csv.DictReader(open(tmp_path / "lean" / "run" / "metrics.csv")))
    full_rows = list(csv.DictReader(open(tmp_path / "full" / "run" / "metrics.csv")))
    assert [r["step"] for r in lean_rows if r["train/d_loss"]] == ["2"]  # iterations 3 (log) and 5 (not)
    assert lean_rows == full_rows
    assert {k: v for k, v in full.items() if k.startswith("train/")} == {
        k: v for k, v in lean.items() if k.startswith("train/")
    }  # the final metrics are the last step's, logging step or not


def test_in_memory_batches_are_gathered_in_one_step_with_the_per_sample_values(monkeypatch):
    """BatchGather: one ``__getitems__`` per batch, the values and order of the per-sample path."""
    from torch.utils.data import DataLoader, Subset, TensorDataset

    from ganforge.data.base import BatchGather, seeded_loader

    data = TensorDataset(torch.randn(50, 3, 4, 4), torch.arange(50))
    subset = Subset(data, list(range(49, 4, -3)))
    calls = []
    monkeypatch.setattr(BatchGather, "__getitem__", lambda self, i: calls.append(i))
    for dataset in (data, subset):
        gathered = seeded_loader(dataset, 4, shuffle=True, drop_last=True, num_workers=0, pin_memory=False)
        assert isinstance(gathered.dataset, BatchGather)
        order = list(gathered.sampler)
        per_sample = DataLoader(dataset, batch_size=4, sampler=order, drop_last=True)
        pairs = list(zip(gathered, per_sample, strict=True))
        assert len(pairs) == len(dataset) // 4
        for (images, labels), (want_images, want_labels) in pairs:
            assert torch.equal(images, want_images) and torch.equal(labels, want_labels)
    assert calls == []  # never one sample at a time


def test_removing_the_progress_bar_callback_removes_the_bar(tiny_cfg):
    """`~callbacks.progress_bar` (the tests' setting) must not fall back to Lightning's own bar."""
    from pytorch_lightning import Trainer

    seen = {}
    original = Trainer.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen["bar"] = self.progress_bar_callback

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "__init__", spy)
        cfg = tiny_cfg()
        train(cfg)
        assert "progress_bar" not in cfg.callbacks and seen["bar"] is None
        train(tiny_cfg(["+callbacks.progress_bar._target_=pytorch_lightning.callbacks.RichProgressBar"]))
        assert seen["bar"] is not None


def test_fused_adam_is_the_default_and_steps_like_the_per_tensor_loop(tiny_cfg):
    from ganforge.optim import build_gan_optimizers

    cfg = instantiate(tiny_cfg().optimizer, _convert_="all")
    nets = [torch.nn.Linear(5, 3) for _ in range(4)]
    for a, b in ((nets[0], nets[2]), (nets[1], nets[3])):
        b.load_state_dict(a.state_dict())
    fused = build_gan_optimizers(cfg, nets[0].parameters(), nets[1].parameters())
    looped = build_gan_optimizers(cfg, nets[2].parameters(), nets[3].parameters(), allow_fused=False)
    assert all(o.defaults["fused"] for o in fused) and not any(o.defaults["fused"] for o in looped)
    for _ in range(3):
        grads = [torch.randn_like(p) for p in nets[0].parameters()] + [
            torch.randn_like(p) for p in nets[1].parameters()
        ]
        for net_pair in ((nets[0], nets[1]), (nets[2], nets[3])):
            for p, g in zip([*net_pair[0].parameters(), *net_pair[1].parameters()], grads, strict=True):
                p.grad = g.clone()
        for opt in (*fused, *looped):
            opt.step()
    for a, b in ((nets[0], nets[2]), (nets[1], nets[3])):
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_loss_functions_are_called_as_plain_partials_with_the_same_values(tiny_cfg):
    cfg = tiny_cfg(["loss=r3gan", "model.discriminator.norm=layer"])
    built = instantiate(cfg.loss.d_loss)  # what Hydra hands over: its own partial type
    objective = instantiate(cfg.loss, _convert_="all")
    assert type(built) is not functools.partial
    fns = [objective.d_loss, objective.g_loss, *(p.fn for p in objective.penalties.values())]
    assert all(type(fn) is functools.partial for fn in fns)
    real, fake = torch.randn(8), torch.randn(8)
    assert objective.d_loss(real, fake).item() == built(real, fake).item()


@pytest.mark.parametrize("nvml_present", [False, True])
def test_nvml_cuda_check_is_dropped_only_without_nvml(monkeypatch, nvml_present):
    import ganforge.train as train_module

    def cdll(name):
        if not nvml_present:
            raise OSError(f"{name}: cannot open shared object file")
        return object()

    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    monkeypatch.setattr(train_module.ctypes, "CDLL", cdll)
    assert train_module.drop_nvml_cuda_check_without_nvml() is not nvml_present
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == ("1" if nvml_present else "0")
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "0")  # a user's own setting stays
    assert not train_module.drop_nvml_cuda_check_without_nvml()
