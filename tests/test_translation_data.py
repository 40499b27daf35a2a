"""Two-domain data: CycleGAN's unaligned folders, pix2pix's aligned A|B files, the embedded sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import ConfigError
from ganforge.data.aligned import AlignedFolderDataModule
from ganforge.data.embedded_pairs import Edges2PhotosDataModule, Photo2PaintingDataModule, scaled_photo, tiles
from ganforge.data.painterly import edge_map, painterly
from ganforge.data.transforms import ImageLoadError
from ganforge.data.unaligned import UnalignedFolderDataModule
from ganforge.train import build_module
from tests.helpers import write_images

SIZES = {"img_size": 16, "load_size": 20, "batch_size": 2}


def unaligned_root(tmp_path):
    root = tmp_path / "horse2zebra"
    write_images(root / "trainA", n=5, size=24)
    write_images(root / "trainB", n=3, size=12, mode="L")  # fewer, smaller than the crop, grey
    write_images(root / "testA", n=2, size=30, mode="RGBA")
    write_images(root / "testB", n=4, size=16)
    Image.fromarray(np.full((9, 7), 40000, dtype=np.uint16)).save(root / "trainB" / "deep.png")  # 16-bit
    Image.new("P", (10, 14), 3).save(root / "testB" / "palette.gif")
    return root


def test_unaligned_folders_with_mismatched_counts_sizes_and_modes(tmp_path):
    dm = UnalignedFolderDataModule(root=str(unaligned_root(tmp_path)), channels=3, **SIZES)
    dm.setup()
    assert len(dm.train_set) == 5  # max(5 A, 4 B): every A image once per epoch
    assert len(dm.val_set) == 2  # each held-out A once
    batch = next(iter(dm.train_dataloader()))
    assert batch["A"].shape == batch["B"].shape == (2, 3, 16, 16)
    assert batch["A"].min() >= -1 and batch["B"].max() <= 1 and (batch["A_label"] == -1).all()
    reals = torch.cat(list(dm.metric_reals("val")))
    assert reals.shape == (5, 3, 16, 16)  # every held-out B once, palette GIF included
    deep = dm.train_set.source_b[[p.name for p in dm.train_set.source_b.files].index("deep.png")][0]
    assert deep.shape == (3, 9, 7) and deep.mean().item() == pytest.approx(40000 / 65535 * 2 - 1, abs=0.01)
    assert "horse2zebra" in dm.dataset_id and dm.dataset_id.startswith("unaligned-16px-c3")


def aligned_root(tmp_path, sizes=((40, 20), (64, 32), (30, 17))):
    """A|B files whose two halves are identical noise, of different sizes (an odd one too)."""
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        (tmp_path / "facades" / split).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            half = rng.integers(0, 256, (h, w // 2, 3), dtype=np.uint8)
            pair = np.concatenate([half, half] + ([half[:, :1]] if w % 2 else []), axis=1)
            Image.fromarray(pair).save(
                tmp_path / "facades" / split / f"{i}.jpg"
                if i == 2
                else tmp_path / "facades" / split / f"{i}.png"
            )
    return tmp_path / "facades"


def test_aligned_pairs_of_different_sizes_stay_aligned_under_crop_and_flip(tmp_path):
    dm = AlignedFolderDataModule(root=str(aligned_root(tmp_path)), **SIZES)
    dm.setup()
    assert dm.paired and len(dm.train_set) == len(dm.val_set) == 3
    torch.manual_seed(0)
    for _ in range(3):
        for i in range(2):  # the lossless PNG pairs: identical halves give identical crops
            item = dm.train_set[i]
            assert item["A"].shape == (3, 16, 16) and torch.allclose(item["A"], item["B"], atol=1e-6)
    batch = next(iter(dm.val_dataloader()))
    assert torch.equal(batch["target"], batch["B"])


def test_aligned_direction_swaps_halves(tmp_path):
    root = tmp_path / "pairs"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    pair = np.zeros((8, 16, 3), dtype=np.uint8)
    pair[:, 8:] = 255  # A black, B white
    for split in ("train", "test"):
        Image.fromarray(pair).save(root / split / "p.png")
    for direction, a_value in (("AtoB", -1.0), ("BtoA", 1.0)):
        dm = AlignedFolderDataModule(root=str(root), direction=direction, img_size=8, load_size=8)
        dm.setup()
        assert dm.val_set[0]["A"].mean().item() == pytest.approx(a_value)


def test_layout_mixups_fail_with_one_message(tmp_path):
    with pytest.raises(ConfigError, match="unpaired folders .* use data=unaligned"):
        AlignedFolderDataModule(root=str(unaligned_root(tmp_path)), **SIZES).setup()
    with pytest.raises(ConfigError, match="no 'trainA' folder.*use data=aligned"):
        UnalignedFolderDataModule(root=str(aligned_root(tmp_path)), **SIZES).setup()
    with pytest.raises(ConfigError, match="load_size"):
        UnalignedFolderDataModule(root=".", img_size=32, load_size=16)


def test_corrupt_file_is_named_or_skipped(tmp_path):
    root = unaligned_root(tmp_path)
    (root / "trainA" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    # Its header is unreadable, so setup names it; pixels that fail to decode are named when met.
    with pytest.raises(ImageLoadError, match="broken.png.*skip_corrupt"):
        UnalignedFolderDataModule(root=str(root), **SIZES).setup()
    with pytest.warns(UserWarning, match="broken.png"):
        dm = UnalignedFolderDataModule(root=str(root), skip_corrupt=True, **SIZES)
        dm.setup()
    assert len(dm.train_set.source_a) == 5


def test_painterly_filter_is_deterministic_quantized_and_outlined():
    photo = scaled_photo("coffee", 48)
    out = painterly(photo, levels=4, outline=0.0)
    assert out.shape == photo.shape and np.array_equal(out, painterly(photo, levels=4, outline=0.0))
    assert {round(float(v), 4) for v in np.unique(out)} <= {
        0.0,
        0.3333,
        0.6667,
        1.0,
    }  # 4 levels; outlines are 0
    assert (out.sum(-1) == 0).mean() > 0.01  # dark outlines exist
    edges = edge_map(photo)
    assert set(np.unique(edges)) == {0.0, 1.0}
    t = tiles(photo, 16)
    assert t.shape[1:] == (3, 16, 16) and len(t) == ((48 - 16) // 8 + 1) * ((72 - 16) // 8 + 1)


def test_photo2painting_held_out_pairs_are_the_filter_output():
    args = {"passes": 1, "levels": 4}
    dm = Photo2PaintingDataModule(
        train_photos=["astronaut"],
        painting_photos=["chelsea"],
        held_out_photos=["coffee"],
        photo_size=40,
        painterly=args,
        img_size=16,
        load_size=16,
        batch_size=2,
    )
    dm.setup()
    item = dm.val_set[0]
    expected = tiles(painterly(scaled_photo("coffee", 40), **args), 16)[0] * 1.0
    assert torch.allclose(item["target"], expected, atol=1e-5) and not torch.allclose(
        item["A"], item["target"]
    )
    with pytest.raises(ValueError, match="held-out photos also used"):
        Photo2PaintingDataModule(
            train_photos=["coffee"], painting_photos=["chelsea"], held_out_photos=["coffee"]
        )


def test_training_photos_are_tiled_at_every_size_and_held_out_ones_at_photo_size():
    common = {
        "held_out_photos": ["coffee"],
        "photo_size": 40,
        "img_size": 16,
        "load_size": 16,
        "batch_size": 2,
    }
    args = {"passes": 1, "levels": 4}
    one = Photo2PaintingDataModule(["chelsea"], train_photos=["astronaut"], painterly=args, **common)
    many = Photo2PaintingDataModule(
        ["chelsea"], train_photos=["astronaut"], painterly=args, train_photo_sizes=[40, 56], **common
    )
    one.setup(), many.setup()
    n40 = len(tiles(scaled_photo("astronaut", 40), 16))
    n56 = len(tiles(scaled_photo("astronaut", 56), 16))
    assert len(one.train_set.source_a) == n40 and len(many.train_set.source_a) == n40 + n56
    # the 56 px tiles follow the 40 px ones, and B's are the filter's rendering at that size
    assert torch.equal(many.train_set.source_a.images[n40], tiles(scaled_photo("astronaut", 56), 16)[0])
    rendered = tiles(painterly(scaled_photo("chelsea", 56), **args), 16)[0]
    n40_b = len(tiles(scaled_photo("chelsea", 40), 16))
    assert torch.allclose(many.train_set.source_b.images[n40_b], rendered, atol=1e-5)
    # held out: only photo_size, whatever the training sizes
    assert len(many.val_set) == len(one.val_set) and torch.equal(
        many.val_set[0]["target"], one.val_set[0]["target"]
    )
    # paired data take the sizes too
    edges = Edges2PhotosDataModule(train_photos=["astronaut"], train_photo_sizes=[40, 56], **common)
    edges.setup()
    assert len(edges.train_set) == n40 + n56
    with pytest.raises(ValueError, match=r"train_photo_sizes \[8\] are below data.load_size=16"):
        Photo2PaintingDataModule(["chelsea"], train_photos=["astronaut"], train_photo_sizes=[8, 40], **common)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=pix2pix", "loss=pix2pix", "data=digits2mnist"], "model=pix2pix needs paired images"),
        (["model=pix2pix", "loss=pix2pix", "data=unaligned"], "model=pix2pix needs paired images"),
        (["model=cyclegan", "loss=cyclegan", "data=mnist5k"], "translates between two domains"),
        (["model=dcgan", "data=digits2mnist"], "train it with model=cyclegan, pix2pix, cut or fastcut"),
        (["model=cyclegan", "loss=ns", "data=digits2mnist"], "needs a translation loss"),
        (["model=cyclegan", "loss=cut", "data=digits2mnist"], "loss=cut or loss=fastcut trains model=cut or"),
        (["model=pix2pix", "loss=fastcut", "data=edges2photos"], "not model=pix2pix"),
    ],
    ids=[
        "pix2pix-digits2mnist",
        "pix2pix-unaligned",
        "cyclegan-mnist5k",
        "dcgan-digits2mnist",
        "cyclegan-ns-loss",
        "cyclegan-cut-loss",
        "pix2pix-fastcut-loss",
    ],
)
def test_incompatible_choices_fail_before_training(tiny_cfg, tmp_path, overrides, message):
    from hydra.utils import instantiate

    if "data=unaligned" in overrides:
        overrides = [
            *overrides,
            f"data.root={unaligned_root(tmp_path)}",
            "data.img_size=32",
            "data.load_size=32",
        ]
    cfg = tiny_cfg(overrides)
    with pytest.raises(ConfigError, match=message):
        build_module(cfg, instantiate(cfg.data))
