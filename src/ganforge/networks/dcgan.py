"""DCGAN generator and discriminator (Radford et al. 2016, arXiv:1511.06434).

Both networks build their layer stack from the image size: a square image of side
``img_size = base * 2**n_up`` with ``base`` 4 or 7 (so 16, 28, 32, 56, 64, 128 px...).
The generator projects ``z`` to ``base x base`` with a transposed convolution and then
doubles the resolution ``n_up`` times; the discriminator mirrors it with strided
convolutions and ends in a single logit per image.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.networks.packing import pack_samples


def resolution_plan(img_size: int) -> tuple[int, int]:
    """Return ``(base, n_up)`` with ``img_size == base * 2**n_up`` and ``n_up >= 1``.

    Args:
        img_size: side of the square image in pixels.

    Raises:
        ValueError: if the size cannot be written as 4 or 7 times a power of two.
    """
    for base in (4, 7):
        n_up, size = 0, img_size
        while size > base and size % 2 == 0:
            size //= 2
            n_up += 1
        if size == base and n_up >= 1:
            return base, n_up
    raise ValueError(f"DCGAN needs img_size = 4*2^k or 7*2^k (e.g. 16, 28, 32, 64, 128); got {img_size}")


def _init_dcgan_weights(module: nn.Module) -> None:
    # N(0, 0.02) for convolutions and N(1, 0.02) for norm scales, as in the DCGAN paper.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """DCGAN generator: ``z (N, latent_dim)`` -> image ``(N, channels, img_size, img_size)`` in [-1, 1].

    Args:
        latent_dim: size of the noise vector.
        img_size: output side in pixels (see :func:`resolution_plan`).
        channels: output channels (1 grey, 3 colour).
        width: channels of the last hidden layer; earlier layers double it per level.
    """

    def __init__(self, latent_dim: int = 100, img_size: int = 32, channels: int = 1, width: int = 64):
        super().__init__()
        self.latent_dim, self.img_size, self.channels = latent_dim, img_size, channels
        base, n_up = resolution_plan(img_size)
        ch = width * 2 ** (n_up - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, ch, base, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(n_up - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        _init_dcgan_weights(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: image -> one real/fake logit per image, shape ``(N,)``.

    Args:
        img_size: input side in pixels (see :func:`resolution_plan`).
        channels: input channels.
        width: channels of the first layer; later layers double it per level.
        norm: ``"batch"`` (DCGAN), ``"layer"`` (group norm with one group, safe with
            gradient penalties, which per-sample gradients need) or ``"none"``.
        spectral_norm: wrap every convolution in spectral normalisation
            (Miyato et al. 2018), bounding D's Lipschitz constant.
        pack: images judged together (PacGAN, Lin et al. 2018): ``pack`` images are
            concatenated along channels and D returns ``N / pack`` logits.
    """

    def __init__(
        self,
        img_size: int = 32,
        channels: int = 1,
        width: int = 64,
        norm: str = "batch",
        spectral_norm: bool = False,
        pack: int = 1,
    ):
        super().__init__()
        if pack < 1:
            raise ValueError(f"pack must be >= 1; got {pack}")
        self.pack = pack
        if norm not in ("batch", "layer", "none"):
            raise ValueError(f"norm must be one of batch, layer, none; got {norm!r}")
        base, n_up = resolution_plan(img_size)
        sn = nn.utils.spectral_norm if spectral_norm else (lambda m: m)

        def normalize(c: int) -> list[nn.Module]:
            if norm == "batch":
                return [nn.BatchNorm2d(c)]
            if norm == "layer":
                return [nn.GroupNorm(1, c)]
            return []

        ch = width
        layers: list[nn.Module] = [sn(nn.Conv2d(channels * pack, ch, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        for _ in range(n_up - 1):
            layers += [sn(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none")), *normalize(ch * 2)]
            layers += [nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers += [sn(nn.Conv2d(ch, 1, base, 1, 0))]
        self.net = nn.Sequential(*layers)
        _init_dcgan_weights(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(pack_samples(x, self.pack)).flatten()
