"""LitData shards: ganforge-prepare, data=stream / stream_unpaired, and s3:// against a local moto server.

Every test image is one flat colour whose value names it (image ``g`` has value ``6 g``), so a
streamed batch says which images it holds and in what order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_lightning import Callback

from ganforge.config import ConfigError
from ganforge.data.folders import ImageFolderDataset
from ganforge.data.stream import StreamDataModule, StreamUnpairedDataModule, shards_digest
from ganforge.prepare import main as prepare_main
from ganforge.prepare import prepare
from ganforge.train import train
from ganforge.utils.checkpoint import load_checkpoint
from tests.conftest import compose_tiny

BUCKET = "ganforge-test"


def write_flat_images(folder: Path, first: int, n: int, size=(20, 26), mode="RGB") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for g in range(first, first + n):
        Image.new(mode, size, (6 * g,) * len(mode) if mode != "L" else 6 * g).save(folder / f"{g:03d}.png")


def image_ids(images: torch.Tensor) -> list[int]:
    """The names of a batch's flat images (their value / 6), uint8 or scaled to [-1, 1]."""
    values = images[:, 0, 0, 0].double()
    return (values / 6 if images.dtype == torch.uint8 else (values + 1) * 127.5 / 6).round().int().tolist()


class BatchRecorder(Callback):
    """Records the image ids and dtypes of every training batch (instantiated from the config by name)."""

    seen: list[list[int]] = []
    dtypes: list[torch.dtype] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        BatchRecorder.seen.append(image_ids(batch[0]))
        BatchRecorder.dtypes.append(batch[0].dtype)


class KillAt(Callback):
    """Stops a run the hard way at one batch, as a lost node would (after the last save)."""

    def __init__(self, batch_idx: int):
        self.batch_idx = batch_idx

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.batch_idx:
            raise RuntimeError("killed")


@pytest.fixture
def s3_endpoint(monkeypatch):
    """A moto S3 server on 127.0.0.1 (a free port) with an empty bucket, stopped after the test."""
    from moto.server import ThreadedMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(scope="module")
def labeled(tmp_path_factory):
    """40 images in two class folders, prepared at 32 px: 32 train, 8 val."""
    root = tmp_path_factory.mktemp("labeled")
    write_flat_images(root / "images" / "circles", 0, 20)
    write_flat_images(root / "images" / "squares", 20, 20, size=(40, 34))
    manifest = prepare(
        root / "images", str(root / "shards"), img_size=32, workers=2, val_fraction=0.2, progress=False
    )
    return root, manifest


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory):
    """trainA 12, trainB 8 (grey files, converted), testA 3, testB 3, prepared at 16 px."""
    root = tmp_path_factory.mktemp("unpaired")
    write_flat_images(root / "h2z" / "trainA", 0, 12)
    write_flat_images(root / "h2z" / "trainB", 12, 8, mode="L")
    write_flat_images(root / "h2z" / "testA", 20, 3)
    write_flat_images(root / "h2z" / "testB", 23, 3)
    prepare(root / "h2z", str(root / "shards"), img_size=16, workers=2, progress=False)
    return root / "shards"


def stream_overrides(shards, cache: Path) -> list[str]:
    return [f"data.input_dir={shards}", "data.img_size=32", "data.num_workers=0", f"data.cache_dir={cache}"]


def test_prepare_writes_chunks_manifest_and_the_folder_datas_pixels(labeled):
    root, manifest = labeled
    shards = root / "shards"
    assert manifest["kind"] == "images" and manifest["classes"] == ["circles", "squares"]
    assert manifest["splits"]["train"]["count"] == 32 and manifest["splits"]["val"]["count"] == 8
    assert sum(manifest["splits"]["val"]["per_class"].values()) == 8
    assert json.loads((shards / "manifest.json").read_text()) == manifest
    assert manifest["digest"] == shards_digest(str(shards), ["train", "val"])
    assert list((shards / "train").glob("chunk-*.bin")) and (shards / "val" / "index.json").is_file()
    # the stored pixels are what data=image_folder computes from the same file
    dm = StreamDataModule(str(shards), img_size=32, batch_size=8)
    dm.setup("fit")
    image, label = dm.val_set[0]
    (gid,) = image_ids(image[None])
    path = next((root / "images").rglob(f"{gid:03d}.png"))
    expected, _ = ImageFolderDataset([path], [0], 32, 3)[0]
    assert torch.equal(image, expected) and label == int(gid >= 20)
    assert dm.num_classes == 2 and str(shards) in dm.dataset_id and manifest["digest"] in dm.dataset_id


@pytest.mark.parametrize("workers", [0, 2])
def test_the_stream_yields_uint8_batches_the_hook_scales_to_the_folder_datas_floats(labeled, workers):
    root, _ = labeled
    dm = StreamDataModule(str(root / "shards"), img_size=32, batch_size=8, num_workers=workers)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (8, 3, 32, 32) and labels.dtype == torch.int64
    scaled, same_labels = dm.on_after_batch_transfer((images, labels), 0)
    assert scaled.dtype == torch.float32 and same_labels is labels
    for image, label, gid in zip(scaled, labels, image_ids(images), strict=True):
        path = next((root / "images").rglob(f"{gid:03d}.png"))
        expected, _ = ImageFolderDataset([path], [0], 32, 3)[0]  # data=image_folder's per-image path
        assert torch.equal(image, expected) and label == int(gid >= 20)
    dm.setup("fit")
    val = next(iter(dm.val_dataloader()))  # held out, read by index: float already, passed unchanged
    assert val[0].dtype == torch.float32 and dm.on_after_batch_transfer(val, 0) is val


def test_each_epoch_is_a_new_shuffle_drawn_from_the_seed(labeled):
    shards = str(labeled[0] / "shards")

    def orders(seed: int) -> list[list[int]]:
        loader = StreamDataModule(shards, seed=seed, img_size=32, batch_size=8).train_dataloader()
        return [sum((image_ids(images) for images, _ in loader), []) for _ in range(2)]

    first, again, other = orders(1), orders(1), orders(2)
    assert sorted(first[0]) == sorted(first[1]) and len(set(first[0])) == 32  # every train image once
    assert first[0] != first[1] and first == again and first != other


def test_metric_reals_stream_the_val_split_in_stored_order(labeled):
    dm = StreamDataModule(str(labeled[0] / "shards"), img_size=32, batch_size=8)
    reals = torch.cat(list(dm.metric_reals("val")))
    assert reals.shape == (8, 3, 32, 32) and reals.min() >= -1
    assert image_ids(reals) == image_ids(torch.cat(list(dm.metric_reals("val"))))
    assert len(set(image_ids(reals))) == 8


def test_conditional_gan_trains_from_shards(tiny_cfg, tmp_path, labeled):
    cfg = tiny_cfg(
        [
            "model=sngan_cond",
            "model.num_classes=2",
            "loss=hinge",
            "data=stream",
            *stream_overrides(labeled[0] / "shards", tmp_path / "cache"),
            "+callbacks.recorder._target_=tests.test_stream.BatchRecorder",
        ]
    )
    BatchRecorder.seen, BatchRecorder.dtypes = [], []
    metrics = train(cfg)
    assert np.isfinite(metrics["train/d_loss"]) and len(BatchRecorder.seen) == 2
    assert BatchRecorder.dtypes == [torch.float32] * 2  # the training step sees scaled images
    ckpt = load_checkpoint(tmp_path / "run/checkpoints/last.ckpt")
    (state,) = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]  # the stream's position
    assert state["num_samples_yielded"] == 16


def test_cyclegan_trains_from_unpaired_shards(tiny_cfg, tmp_path, unpaired):
    dm = StreamUnpairedDataModule(str(unpaired), img_size=16, load_size=18, channels=3, batch_size=4)
    batch = next(iter(dm.train_dataloader()))
    assert batch["A"].shape == batch["B"].shape == (4, 3, 16, 16) and (batch["A_label"] == -1).all()
    assert set(image_ids(dm.held_out("A"))) == {20, 21, 22} and len(dm.train_dataloader()) == 3
    cfg = tiny_cfg(
        [
            "model=cyclegan",
            "loss=cyclegan",
            "optimizer=adam_linear_decay",
            "callbacks=image2image",
            "data=stream_unpaired",
            f"data.input_dir={unpaired}",
            "data.img_size=16",
            "data.load_size=16",
            "data.num_workers=0",
            "model.generator.n_blocks=1",
            "model.discriminator.n_layers=1",  # 16 px leaves no room for PatchGAN's three stride-2 layers
            "data.batch_size=4",
        ]
    )
    metrics = train(cfg)
    assert np.isfinite(metrics["train/g_loss"]) and (tmp_path / "run/panels/last.png").is_file()


def test_bad_inputs_name_what_to_fix(tmp_path, labeled, unpaired, capsys):
    with pytest.raises(FileNotFoundError, match=f"input_dir={tmp_path}.*no manifest.json.*ganforge-prepare"):
        StreamDataModule(str(tmp_path), img_size=32)
    with pytest.raises(ConfigError, match="unpaired shards.*use data=stream_unpaired"):
        StreamDataModule(str(unpaired), img_size=16)
    with pytest.raises(ConfigError, match="data.img_size=64 but .* hold img_size 32"):
        StreamDataModule(str(labeled[0] / "shards"), img_size=64)
    with pytest.raises(SystemExit):
        prepare_main([f"input={tmp_path / 'nowhere'}", f"out={tmp_path / 'out'}"])
    assert f"input folder does not exist: {tmp_path / 'nowhere'}" in capsys.readouterr().err


@pytest.mark.slow
def test_prepare_cli_refuses_unknown_keys_listing_the_valid_ones():
    done = subprocess.run(
        [sys.executable, "-m", "ganforge.prepare", "input=x", "out=y", "size=64"],
        capture_output=True,
        text=True,
    )
    assert (
        done.returncode == 2 and "unknown argument 'size=64'. Valid keys: input, out, img_size" in done.stderr
    )


@pytest.mark.slow
def test_s3_prepare_train_killed_mid_epoch_and_resumed(tmp_path, labeled, s3_endpoint):
    url, options = f"s3://{BUCKET}/labeled32", {"endpoint_url": s3_endpoint}
    manifest = prepare(
        labeled[0] / "images",
        url,
        img_size=32,
        workers=2,
        val_fraction=0.2,
        storage_options=options,
        progress=False,
    )
    assert manifest["digest"] == labeled[1]["digest"]  # the same chunks as the local shards
    reference = StreamDataModule(
        url, seed=42, img_size=32, batch_size=8, storage_options=options, cache_dir=str(tmp_path / "ref")
    )
    expected = [image_ids(images) for images, _ in reference.train_dataloader()]  # epoch 1 of seed 42
    assert len(expected) == 4

    def run(name: str, *extra: str):
        cfg = compose_tiny(
            tmp_path / name,
            [
                "data=stream",
                *stream_overrides(url, tmp_path / f"cache-{name}"),
                f"++data.storage_options.endpoint_url='{s3_endpoint}'",
                "++trainer.limit_train_batches=1.0",  # the whole epoch: 4 batches of 8
                "callbacks.last_checkpoint.every_n_iters=2",
                "+callbacks.recorder._target_=tests.test_stream.BatchRecorder",
                *extra,
            ],
        )
        return train(cfg)

    BatchRecorder.seen = []
    with pytest.raises(RuntimeError, match="killed"):
        run("first", "+callbacks.kill._target_=tests.test_stream.KillAt", "+callbacks.kill.batch_idx=2")
    ckpt = tmp_path / "first/run/checkpoints/last.ckpt"
    assert (
        load_checkpoint(ckpt)["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["num_samples_yielded"]
        == 16
    )
    killed, BatchRecorder.seen = BatchRecorder.seen, []
    run("resumed", f"ckpt_path={ckpt}")
    # the killed run trained batches 0 and 1 (and met 2); the resumed one sees 2 and 3, as an unbroken run
    assert killed == expected[:3] and BatchRecorder.seen == expected[2:]
    # ... with the same noise: the scheme restores the random states LitData's loader does not keep
    run("straight")
    weights = [
        load_checkpoint(tmp_path / name / "run/checkpoints/last.ckpt")["state_dict"]
        for name in ("straight", "resumed")
    ]
    for key in (k for k in weights[0] if k.startswith(("generator.", "generator_ema."))):
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=0, atol=1e-6, msg=key)
