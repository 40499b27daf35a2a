"""PacGAN packing: D sees m samples concatenated, returns N / m logits, and trains in the module."""

from __future__ import annotations

import pytest
import torch

from ganforge.config import ConfigError, validate_config
from ganforge.networks.dcgan import DCGANDiscriminator
from ganforge.networks.mlp import Maxout, MLPDiscriminator, MLPGenerator
from ganforge.networks.packing import pack_samples


def test_pack_samples_concatenates_consecutive_samples_along_axis_1():
    x = torch.arange(6 * 2).float().view(6, 2)  # sample i = [2i, 2i + 1]
    packed = pack_samples(x, 3)
    assert packed.shape == (2, 6)
    assert torch.equal(packed[0], torch.tensor([0.0, 1, 2, 3, 4, 5]))
    assert torch.equal(packed[1], torch.tensor([6.0, 7, 8, 9, 10, 11]))
    images = torch.randn(4, 3, 5, 5)
    packed = pack_samples(images, 2)
    assert packed.shape == (2, 6, 5, 5)
    assert torch.equal(packed[1, 3:], images[3]) and torch.equal(packed[0, :3], images[0])
    assert pack_samples(images, 1) is images


def test_pack_samples_rejects_a_batch_that_is_not_a_multiple():
    with pytest.raises(ValueError, match="divisible by 3"):
        pack_samples(torch.zeros(8, 2), 3)


def test_packed_dcgan_discriminator_equals_unpacked_one_on_concatenated_channels():
    torch.manual_seed(0)
    packed = DCGANDiscriminator(img_size=16, channels=3, width=8, norm="none", pack=2)
    plain = DCGANDiscriminator(img_size=16, channels=6, width=8, norm="none")
    plain.load_state_dict(packed.state_dict())
    x = torch.randn(8, 3, 16, 16)
    logits = packed(x)
    assert logits.shape == (4,)
    assert torch.allclose(logits, plain(x.view(4, 6, 16, 16)), atol=1e-6)
    assert torch.allclose(logits, plain(torch.cat([x[0::2], x[1::2]], dim=1)), atol=1e-6)
    # Packing channels-last tensors keeps the sample order.
    assert torch.allclose(packed(x.contiguous(memory_format=torch.channels_last)), logits, atol=1e-5)


def test_packed_mlp_discriminator_sees_m_points_as_one_input():
    torch.manual_seed(0)
    packed = MLPDiscriminator(width=8, pack=4)
    assert packed.net[0].linear.in_features == 8
    x = torch.randn(12, 2)
    assert packed(x).shape == (3,)
    # Swapping two points between packs changes the logits; permuting whole packs permutes them.
    perm = torch.tensor([4, 5, 6, 7, 0, 1, 2, 3, 8, 9, 10, 11])
    assert torch.allclose(packed(x[perm]), packed(x)[[1, 0, 2]])
    with pytest.raises(ValueError, match="divisible by 4"):
        packed(torch.randn(10, 2))


def test_mlp_networks_shapes_and_maxout():
    g = MLPGenerator(latent_dim=3, width=8, depth=2)
    assert g(torch.randn(5, 3)).shape == (5, 2)
    assert MLPDiscriminator(width=8, maxout_pieces=1)(torch.randn(5, 2)).shape == (5,)
    layer = Maxout(2, 1, 3)
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
        layer.linear.bias.zero_()
    out = layer(torch.tensor([[2.0, 5.0], [-3.0, 1.0]]))
    assert torch.equal(out.flatten(), torch.tensor([5.0, 3.0]))  # max over the 3 pieces


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.discriminator.pack=0"], "pack must be an integer >= 1"),
        (["data=ring8"], "needs 'data.img_size'.*needs model=mlp"),
    ],
)
def test_config_rejects_bad_pack_and_image_model_on_points(tiny_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(tiny_cfg(overrides))


def test_packed_module_diagnostics_and_losses_are_per_pack(tiny_cfg):
    from hydra.utils import instantiate

    from ganforge.train import build_module

    cfg = tiny_cfg(["model=mlp", "data=grid25", "data.batch_size=4", "model.discriminator.pack=3"])
    validate_config(cfg)
    module = build_module(cfg, None)
    real = instantiate(cfg.data)
    real.setup("fit")
    real.pack = module.pack  # what the module's setup does when fitting
    points, labels = next(iter(real.train_dataloader()))
    assert points.shape == (12, 2)  # data.batch_size packs of 3 points (PacGAN's batch)
    logits = module.discriminator(points)
    assert logits.shape == (4,)
    diagnostics = module._d_diagnostics(logits, -logits)
    # Accuracy is per pack: it takes values in steps of 1/4 with 4 packs.
    assert (diagnostics["train/d_acc_real"] * 4).item() == pytest.approx(round((logits > 0).sum().item()))
    loss = module.objective.d_loss(logits, module.discriminator(module.generator(torch.randn(12, 2))))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_a_packed_d_step_judges_batch_size_packs_of_real_and_generated_samples(tiny_cfg):
    from hydra.utils import instantiate

    from ganforge.train import build_module
    from tests.helpers import bare_trainer

    cfg = tiny_cfg(["model=mlp", "data=ring8", "data.batch_size=5", "model.discriminator.pack=4"])
    module = build_module(cfg, None)
    seen = []
    module.discriminator.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    bare_trainer().fit(module, datamodule=instantiate(cfg.data))
    assert seen[:2] == [20, 20]  # D main: 5 packs x 4 real points, then 5 packs x 4 generated
    assert module.iteration == 2
