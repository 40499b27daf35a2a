"""Training from LitData shards: ``data=stream`` (generation) and ``data=stream_unpaired`` (translation).

``ganforge-prepare`` (:mod:`ganforge.prepare`) resizes a folder of images once and writes LitData
chunks plus a ``manifest.json`` into a local folder or an ``s3://`` prefix. These data modules read
them through LitData's ``StreamingDataset`` and ``StreamingDataLoader``: every epoch is a fresh
shuffle drawn from ``(run seed, epoch)``, LitData splits the chunks between DDP ranks, nodes and
loader workers, and remote chunks pass through a bounded local cache. The loader is stateful, so
Lightning stores its position in the checkpoint and a resumed run continues the stream.

For generation the training stream stays uint8 up to the training process, as in FFCV, DALI and
stylegan2-ada's loader: workers only read (``format=uint8``) or decode (png/jpeg) each image and
collate a uint8 batch, a quarter of float32's bytes to move between processes, and
:meth:`StreamDataModule.on_after_batch_transfer` scales the whole batch to [-1, 1] once, after
Lightning has moved it to the device (on a GPU, there), with the values the per-image transform
gives. Held-out splits (``val``; ``testA``/``testB``) are read by index, in their stored order, as
float images in [-1, 1] for the metrics and the panels. The two modules follow the contracts of :class:`GANDataModule` and
:class:`TranslationDataModule`; which one a run needs follows from the scheme, so each has its own
config and a manifest of the other kind is refused with the option to use.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset
from torchvision.io import decode_image
from torchvision.transforms import v2

from ganforge.config import ConfigError
from ganforge.data.base import GANDataModule
from ganforge.data.transforms import image_transform
from ganforge.data.translation import TranslationDataModule, UnpairedDataset, crop_and_flip

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


# -- where shards live ---------------------------------------------------------------
def is_remote(path: str) -> bool:
    """Whether ``path`` is an object-store URL (``s3://bucket/prefix``) rather than a folder."""
    return "://" in str(path)


def join(root: str, *parts: str) -> str:
    """``root/part/...`` for a folder or a URL (URLs always use ``/``)."""
    if is_remote(root):
        return "/".join([str(root).rstrip("/"), *parts])
    return str(Path(root).expanduser().joinpath(*parts))


def allow_plain_http(storage_options: dict | None) -> None:
    """Let LitData reach an ``http://`` S3-compatible endpoint (MinIO, Ceph, moto on a private network).

    LitData 0.2.7x moves chunks through obstore, whose HTTP client refuses plain-http endpoints
    unless told otherwise; LitData does not pass that option. It is set on LitData's shared obstore
    client options only when the configured endpoint is ``http://`` (https endpoints are untouched).
    Objects that cross into worker processes call this again when they are unpickled.
    """
    endpoint = (storage_options or {}).get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL", "")
    if str(endpoint).startswith("http://"):
        from litdata.streaming import downloader

        downloader._OBSTORE_CLIENT_OPTIONS["allow_http"] = "true"


def _s3(storage_options: dict | None):
    import boto3

    return boto3.client("s3", **(storage_options or {}))


def _bucket_key(url: str) -> tuple[str, str]:
    scheme, _, rest = url.partition("://")
    if scheme != "s3":
        raise ValueError(f"{url}: ganforge reads and writes shards in local folders or s3:// only")
    bucket, _, key = rest.partition("/")
    return bucket, key


def read_text(path: str, storage_options: dict | None = None) -> str:
    """A small text file from a folder or an ``s3://`` URL.

    Raises:
        FileNotFoundError: the file (or its bucket) does not exist.
    """
    if not is_remote(path):
        return Path(path).read_text()
    from botocore.exceptions import ClientError

    bucket, key = _bucket_key(path)
    try:
        return _s3(storage_options).get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchBucket", "404"):
            raise FileNotFoundError(path) from err
        raise


def write_text(path: str, text: str, storage_options: dict | None = None) -> None:
    """Write a small text file into a folder or an ``s3://`` URL."""
    if not is_remote(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
        return
    bucket, key = _bucket_key(path)
    _s3(storage_options).put_object(Bucket=bucket, Key=key, Body=text.encode())


def read_manifest(input_dir: str, storage_options: dict | None = None) -> dict[str, Any]:
    """The manifest ``ganforge-prepare`` wrote last into ``input_dir``.

    Raises:
        FileNotFoundError: no manifest there (not prepared, or preparation did not finish).
    """
    path = join(input_dir, MANIFEST)
    try:
        manifest = json.loads(read_text(path, storage_options))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"data.input_dir={input_dir} holds no {MANIFEST} (looked for {path}): write shards there first "
            f"with ganforge-prepare input=<image folder> out={input_dir}"
        ) from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"{path} has format_version {manifest.get('format_version')}; re-run ganforge-prepare"
        )
    return manifest


def shards_digest(root: str, splits: list[str], storage_options: dict | None = None) -> str:
    """16 hex digits of SHA-256 over each split's chunk index (files, sizes, item counts, data format).

    The index's ``updated_at`` time is left out: the same images written twice give the same digest.
    """
    entries = {}
    for split in sorted(splits):
        index = json.loads(read_text(join(root, split, "index.json"), storage_options))
        entries[split] = {"chunks": index["chunks"], "config": index.get("config")}
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()[:16]


# -- items ----------------------------------------------------------------------------
def scale_transform() -> v2.Compose:
    """The scaling tail of :func:`image_transform` (uint8 -> [-1, 1]); prepare applied its geometry.

    It works on one ``(C, H, W)`` image or a ``(N, C, H, W)`` batch, on any device.
    """
    steps = image_transform(8).transforms
    return v2.Compose([t for t in steps if isinstance(t, (v2.ToDtype, v2.Normalize))])


_SCALE = scale_transform()


def scale_batch(images: torch.Tensor) -> torch.Tensor:
    """A uint8 ``(N, C, H, W)`` batch as float32 in [-1, 1], in one pass over the batch.

    The operations are those :func:`image_transform` applies to each image (to float times 1/255,
    then normalise with mean and std 0.5), so the values are exactly the per-image path's.
    """
    return _SCALE(images)


class DecodeItem:
    """A stored item ``{"image": PNG/JPEG bytes or uint8 (C, H, W), "label": int}`` to ``(image, label)``.

    Args:
        storage_options: the object-store options, so a spawned worker can re-allow http endpoints.
        scale: return float images in [-1, 1]; ``False`` returns the uint8 pixels (decoded from
            PNG/JPEG, untouched for ``format=uint8``), for :func:`scale_batch` to scale a batch later.
    """

    def __init__(self, storage_options: dict | None = None, scale: bool = True):
        self.storage_options = storage_options
        self.scale = scale_transform() if scale else None

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        allow_plain_http(self.storage_options)

    def __call__(self, item: dict) -> tuple[torch.Tensor, int]:
        image = item["image"]
        if isinstance(image, (bytes, bytearray, memoryview)):
            image = decode_image(torch.frombuffer(bytearray(image), dtype=torch.uint8))
        return (self.scale(image) if self.scale else image), int(item["label"])


class Shards:
    """Where one prepared data set lives and how to open its splits.

    Args:
        input_dir: the folder or ``s3://`` prefix ``ganforge-prepare`` wrote.
        storage_options: passed to LitData and boto3 (``endpoint_url``, keys, region).
        cache_dir: local cache of remote chunks; ``None`` = LitData's (``$LITDATA_CACHE_DIR`` or
            ``~/.lightning/chunks``). Local shards are read in place, without a copy.
        max_cache_size: cache budget per node, e.g. ``"50GB"``; chunks are deleted after use once the
            node's share of the data exceeds it.
    """

    def __init__(self, input_dir: str, storage_options=None, cache_dir=None, max_cache_size="50GB"):
        self.input_dir = str(input_dir) if is_remote(str(input_dir)) else str(Path(input_dir).expanduser())
        if isinstance(storage_options, DictConfig):
            storage_options = OmegaConf.to_container(storage_options, resolve=True)
        self.storage_options = dict(storage_options or {})
        self.cache_dir, self.max_cache_size = cache_dir, max_cache_size
        allow_plain_http(self.storage_options)
        self.manifest = read_manifest(self.input_dir, self.storage_options)

    def count(self, split: str) -> int:
        return int(self.manifest["splits"].get(split, {}).get("count", 0))

    def dataset(self, split: str, shuffle: bool, seed: int = 0, scale: bool = True):
        """A LitData ``StreamingDataset`` of one split, decoding to ``(image, label)``; float images in
        [-1, 1], or uint8 ones without ``scale`` (see :class:`DecodeItem`)."""
        from litdata import StreamingDataset

        return StreamingDataset(
            join(self.input_dir, split),
            cache_dir=self.cache_dir,
            shuffle=shuffle,
            seed=seed,
            drop_last=shuffle,
            max_cache_size=self.max_cache_size,
            storage_options=self.storage_options or None,
            transform=DecodeItem(self.storage_options, scale),
        )

    def loader(self, dataset, batch_size: int, num_workers: int, pin_memory: bool):
        return shard_loader(dataset, batch_size, num_workers, pin_memory)

    @property
    def id(self) -> str:
        return f"{self.input_dir}|shards={self.manifest['digest']}"

    def check_kind(self, kind: str, option: str) -> None:
        if self.manifest["kind"] != kind:
            other = "stream_unpaired" if self.manifest["kind"] == "unpaired" else "stream"
            raise ConfigError(
                f"data.input_dir={self.input_dir} holds {self.manifest['kind']} shards, not {kind}: "
                f"use data={other} instead of data={option}"
            )


def shard_loader(dataset, batch_size: int, num_workers: int, pin_memory: bool):
    """A ``StreamingDataLoader`` whose checkpointed position survives a move to another cache folder.

    LitData records the local cache folder of remote shards in the loader state and refuses a
    state whose folder differs, although the shards are the same: a job resumed on another node,
    or under another ``$TMPDIR``, would not start. For a state of the same remote URL the recorded
    folders are replaced by this process's before LitData checks them.
    """
    from litdata import StreamingDataLoader, StreamingDataset

    class ShardLoader(StreamingDataLoader):
        def load_state_dict(self, obj: dict[str, Any]) -> None:
            datasets = getattr(self.dataset, "_datasets", [self.dataset])
            states = (
                [obj["dataset"]] if isinstance(self.dataset, StreamingDataset) else obj["dataset"].values()
            )
            for dataset, state in zip(datasets, states, strict=True):
                if state.get("input_dir_url") and state["input_dir_url"] == dataset.input_dir.url:
                    state["input_dir_path"], state["cache_dir_path"] = (
                        dataset.input_dir.path,
                        dataset.cache_dir.path,
                    )
            super().load_state_dict(obj)

    return ShardLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory, drop_last=True
    )


class ShardSplit(Dataset):
    """One split read by index in its stored order (held-out images for metrics and panels)."""

    def __init__(self, shards: Shards, split: str):
        self.shards, self.split, self._dataset = shards, split, None

    def __len__(self) -> int:
        return self.shards.count(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self._dataset is None:
            self._dataset = self.shards.dataset(self.split, shuffle=False)
        return self._dataset[int(i)]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dataset": None}  # each worker opens its own reader


# -- generation -----------------------------------------------------------------------
class StreamDataModule(GANDataModule):
    """Images (and class labels) from shards, for the GAN scheme.

    The training loader yields uint8 batches; the training step sees them as float in [-1, 1]
    (the contract of :class:`GANDataModule`), scaled by :meth:`on_after_batch_transfer`. Code that
    iterates :meth:`train_dataloader` itself scales with :func:`scale_batch`.

    Args:
        input_dir: folder or ``s3://`` prefix written by ``ganforge-prepare``.
        seed: seed of the per-epoch shuffles (the run seed).
        storage_options, cache_dir, max_cache_size: see :class:`Shards`.
        img_size, channels: must equal the manifest's (the images were resized when prepared).
        **kwargs: batch_size, num_workers, pin_memory (see :class:`GANDataModule`).
    """

    name = "stream"

    def __init__(
        self,
        input_dir: str,
        seed: int = 0,
        storage_options: dict | None = None,
        cache_dir: str | None = None,
        max_cache_size: str | int = "50GB",
        img_size: int = 64,
        channels: int = 3,
        **kwargs,
    ):
        self.shards = Shards(input_dir, storage_options, cache_dir, max_cache_size)
        self.shards.check_kind("images", "stream")
        manifest = self.shards.manifest
        for key, value in (("img_size", img_size), ("channels", channels)):
            if value != manifest[key]:
                raise ConfigError(
                    f"data.{key}={value} but the shards in {input_dir} hold {key} {manifest[key]}: "
                    f"set data.{key}={manifest[key]}, or prepare again with {key}={value}"
                )
        super().__init__(img_size=img_size, channels=channels, val_fraction=0.0, in_memory=False, **kwargs)
        self.seed, self.classes = seed, list(manifest["classes"])
        self.num_classes = len(self.classes)

    @property
    def dataset_id(self) -> str:
        return f"{self.name}|{self.shards.id}|img{self.img_size}|c{self.channels}"

    def build_dataset(self) -> Dataset:
        return ShardSplit(self.shards, "train")  # sized for setup's checks; training streams it

    def build_val_dataset(self) -> Dataset | None:
        return ShardSplit(self.shards, "val") if self.shards.count("val") else None

    def train_dataloader(self):
        """The training stream: uint8 ``(images, labels)`` batches, scaled by :meth:`on_after_batch_transfer`."""
        # Built here, after the strategy has set up DDP, so LitData sees every rank.
        dataset = self.shards.dataset("train", shuffle=True, seed=self.seed, scale=False)
        return self.shards.loader(dataset, self.batch_size * self.pack, self.num_workers, self.pin_memory)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Scale a uint8 training batch to float in [-1, 1] once, on the device (see :func:`scale_batch`).

        Lightning calls this for every training and validation batch, after moving it to the device
        and after the precision plugin's input conversion, which leaves uint8 alone, so that
        conversion (``16-true``, ``bf16-true``) is applied here to the scaled images. Validation
        batches (read by index) are float already and pass unchanged.
        """
        images, labels = batch
        if images.dtype != torch.uint8:
            return batch
        images = scale_batch(images)
        if self.trainer is not None:
            images = self.trainer.precision_plugin.convert_input(images)
        return images, labels


# -- unpaired translation -------------------------------------------------------------
class CropPair:
    """Random crop and flip of an (A, B) pair of stream items, drawn from LitData's resumable generator."""

    def __init__(self, load_size: int, img_size: int, flip: bool):
        self.load_size, self.img_size, self.flip = load_size, img_size, flip

    def __call__(self, samples: tuple, rngs: dict) -> dict:
        (a, label), (b, _) = samples
        seed = int(torch.randint(0, 2**62, (), generator=rngs["torch"]))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            (a,) = crop_and_flip([a], self.load_size, self.img_size, self.flip, True)
            (b,) = crop_and_flip([b], self.load_size, self.img_size, self.flip, True)
        return {"A": a, "B": b, "A_label": label}


class StreamUnpairedDataModule(TranslationDataModule):
    """Two domains from unpaired shards (``trainA``/``trainB``, held out ``testA``/``testB``).

    Training zips two independently shuffled streams (seeds ``seed`` and ``seed + 1``, so pairs
    change every epoch) with LitData's ``ParallelStreamingDataset``; an epoch has as many pairs as
    the larger domain, the smaller one cycling, as in CycleGAN.

    Args:
        input_dir: folder or ``s3://`` prefix written by ``ganforge-prepare`` from trainA/trainB folders.
        seed: seed of the shuffles (the run seed).
        storage_options, cache_dir, max_cache_size: see :class:`Shards`.
        img_size: crop side; load_size: side stored images are resized to before the crop.
        **kwargs: channels, flip, batch_size, num_workers, pin_memory (see :class:`TranslationDataModule`).
    """

    name = "stream_unpaired"

    def __init__(
        self,
        input_dir: str,
        seed: int = 0,
        storage_options: dict | None = None,
        cache_dir: str | None = None,
        max_cache_size: str | int = "50GB",
        **kwargs,
    ):
        self.shards = Shards(input_dir, storage_options, cache_dir, max_cache_size)
        self.shards.check_kind("unpaired", "stream_unpaired")
        super().__init__(**kwargs)
        if self.channels != self.shards.manifest["channels"]:
            raise ConfigError(
                f"data.channels={self.channels} but the shards in {input_dir} hold "
                f"{self.shards.manifest['channels']}-channel images"
            )
        self.seed = seed

    def settings_id(self) -> str:
        return f"-load{self.load_size}-{self.shards.id}"

    def build_sets(self) -> tuple[UnpairedDataset, UnpairedDataset]:
        def pair(a: str, b: str, train: bool) -> UnpairedDataset:
            split_a, split_b = ShardSplit(self.shards, a), ShardSplit(self.shards, b)
            return UnpairedDataset(
                split_a, split_b, self.load_size, self.img_size, self.flip and train, train
            )

        # The training pair is read by index only for mean_target(); training streams it.
        return pair("trainA", "trainB", True), pair("testA", "testB", False)

    def train_dataloader(self):
        from litdata import ParallelStreamingDataset

        a = self.shards.dataset("trainA", shuffle=True, seed=self.seed)
        b = self.shards.dataset("trainB", shuffle=True, seed=self.seed + 1)
        per_rank = max(d.get_len(self.num_workers, self.batch_size) for d in (a, b))
        pairs = ParallelStreamingDataset(
            [a, b],
            length=per_rank,
            transform=CropPair(self.load_size, self.img_size, self.flip),
            seed=self.seed,
        )
        return self.shards.loader(pairs, self.batch_size, self.num_workers, self.pin_memory)
