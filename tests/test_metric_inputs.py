"""What the metrics are fed: real-statistics cache keys that follow the files, one colour-to-grey."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge import evaluate
from ganforge.data.digest import folder_digest
from ganforge.data.embedded import load_mnist5k_arrays
from ganforge.data.folders import ImageFolderDataModule
from ganforge.data.index import find_images
from ganforge.metrics.evaluator import MetricEvaluator
from ganforge.networks.classifier import DigitClassifier
from ganforge.utils.colour import rgb_to_grey


def write_digits(folder: Path, start: int, n: int, tint: tuple[float, float, float] | None = None) -> Path:
    """mnist5k digits ``start .. start + n`` as 28 px PNGs, grey or multiplied by an RGB ``tint``."""
    pixels, _ = load_mnist5k_arrays()
    folder.mkdir(parents=True, exist_ok=True)
    for i, digit in enumerate(pixels[start : start + n].reshape(-1, 28, 28)):
        if tint is None:
            Image.fromarray(digit.astype(np.uint8), "L").save(folder / f"{i:03d}.png")
        else:
            rgb = (digit[..., None] * np.asarray(tint)).round().astype(np.uint8)
            Image.fromarray(rgb, "RGB").save(folder / f"{i:03d}.png")
    return folder


# ----------------------------------------------------------------------------- cache keys
def test_folder_digest_follows_names_sizes_times_and_added_files(tmp_path):
    root = write_digits(tmp_path / "d", 0, 3)
    digest = lambda: folder_digest(root, find_images(root))  # noqa: E731
    first = digest()
    assert digest() == first and len(first) == 16
    target = root / "001.png"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = digest()
    assert touched != first
    target.write_bytes(target.read_bytes() + b"\0")  # one more byte, the time set back
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert digest() not in (first, touched)
    target.write_bytes(target.read_bytes()[:-1])
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert digest() == first  # same names, sizes and times: the same key
    write_digits(tmp_path / "d" / "more", 10, 1)
    assert digest() != first


def test_image_folder_dataset_id_changes_when_images_are_replaced_or_added(tmp_path):
    root = write_digits(tmp_path / "d", 0, 4)
    data = ImageFolderDataModule(root=str(root), img_size=28, channels=1)
    before = data.dataset_id
    assert before.startswith("image_folder|img28|c1|") and "|files=" in before
    stat = (root / "000.png").stat()
    write_digits(root, 100, 4)  # the same names, other digits
    for path in root.iterdir():
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    replaced = data.dataset_id
    write_digits(tmp_path / "d" / "extra", 0, 1)
    assert len({before, replaced, data.dataset_id}) == 3


def test_eval_cli_recomputes_after_the_real_images_are_replaced(tmp_path):
    real, fake, cache = tmp_path / "real", write_digits(tmp_path / "fake", 100, 60), tmp_path / "cache"
    write_digits(real, 0, 60)

    def fid(out: str) -> float:
        argv = [f"real={real}", f"fake={fake}", f"cache_dir={cache}", f"out={tmp_path / out}", "names=fid"]
        assert evaluate.main(argv) == 0
        return json.loads((tmp_path / out).read_text())["results"]["val/fid"]

    first = fid("a.json")
    noise = np.random.default_rng(0).integers(0, 256, (60, 28, 28), dtype=np.uint8)
    for i, image in enumerate(noise):  # the same names, other content and a later time
        path = real / f"{i:03d}.png"
        Image.fromarray(image, "L").save(path)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = fid("b.json")
    assert len(list(cache.glob("real-*.pt"))) == 2  # a cache miss: a second entry was written
    assert second > 10 * max(first, 1.0)  # noise is far from digits; the stale entry gave `first` again


# ----------------------------------------------------------------------------- colour to grey
def test_rgb_to_grey_is_pillows_luma_on_uint8_and_bt601_on_floats():
    rgb = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    pil = np.asarray(Image.fromarray(rgb.permute(1, 2, 0).numpy(), "RGB").convert("L"))
    assert torch.equal(rgb_to_grey(rgb)[0], torch.from_numpy(pil.copy()))
    x = rgb.double() / 127.5 - 1
    expected = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    assert torch.allclose(rgb_to_grey(x)[0], expected, atol=1e-12)
    assert torch.equal(rgb_to_grey(rgb.expand(2, 3, 64, 64).clone())[1], rgb_to_grey(rgb))  # batched
    grey = torch.full((1, 3, 2, 2), 77, dtype=torch.uint8)
    assert torch.equal(rgb_to_grey(grey), grey[:, :1])  # equal channels stay themselves
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_grey(torch.zeros(1, 4, 2, 2))
    # The digit classifier makes float colour input grey the same way.
    small = x[None, :, :28, :28].float()
    assert torch.equal(DigitClassifier().prepare(small), rgb_to_grey(small))


def test_tinted_digits_give_the_same_features_in_folder_evaluation_and_training(tmp_path):
    folder = write_digits(tmp_path / "tinted", 0, 50, tint=(1.0, 0.55, 0.15))
    evaluator = MetricEvaluator(names=["fid"], n_fake=50, cache_dir=None)
    size, channels = evaluate.folder_format(folder)
    assert (size, channels) == (28, 3)  # folder evaluation reads the colour files as RGB
    by_folder = torch.cat(
        [evaluator.embed(b)[0] for b in evaluate.folder_batches(folder, 20, size, channels)]
    )
    data = ImageFolderDataModule(root=str(folder), img_size=28, channels=1, val_fraction=0.0, in_memory=True)
    by_training = torch.cat([evaluator.embed(b)[0] for b in data.metric_reals("train")])
    assert torch.equal(by_folder, by_training)
