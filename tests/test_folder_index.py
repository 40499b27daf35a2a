"""Lazy image folders: the cached folder index, once per node, corrupt files met in training."""

from __future__ import annotations

import io
import os
import threading
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from ganforge.data import index as index_module
from ganforge.data.aligned import AlignedFolderDataModule
from ganforge.data.digest import folder_digest
from ganforge.data.folders import ImageFolderDataModule, decode_all
from ganforge.data.index import find_images, folder_index, list_images
from ganforge.data.transforms import ImageLoadError
from ganforge.data.unaligned import UnalignedFolderDataModule
from tests.helpers import write_images
from tests.test_translation_data import SIZES, aligned_root, unaligned_root


def truncated_jpeg(path, size=24):
    """A JPEG whose header reads but whose pixels stop half way (decoding fails)."""
    buffer = io.BytesIO()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    scan = data.index(b"\xff\xda")  # start of the entropy-coded pixels, after the header
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: scan + (len(data) - scan) // 2])
    return path


@pytest.fixture
def decodes(monkeypatch):
    """Counts pixel decodes (``ImageFile.load``: what every file-backed PIL image decodes with)."""
    calls = []
    original = ImageFile.ImageFile.load

    def counting_load(self):
        calls.append(getattr(self, "filename", None))
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    return calls


@pytest.fixture
def header_reads(monkeypatch):
    """Counts the header pass's reads, file by file."""
    calls = []
    original = index_module.read_header

    def counting(path):
        calls.append(path)
        return original(path)

    monkeypatch.setattr(index_module, "read_header", counting)
    return calls


def folder(tmp_path, n=6):
    root = tmp_path / "imgs"
    write_images(root / "cats", n=n // 2)
    write_images(root / "dogs", n=n - n // 2, suffix=".jpg")
    return root


# ----------------------------------------------------------------------------- the index
def test_index_lists_in_path_order_and_reads_headers_without_decoding(tmp_path, decodes):
    root = folder(tmp_path)
    (root / "notes.txt").write_text("not an image")
    index = folder_index(root, tmp_path / "cache")
    assert index.files == find_images(root) and len(index.names) == 6
    assert index.names[0] == "cats/img_000.png" and index.headers[-1] == [20, 20, "RGB"]
    assert index.digest == folder_digest(root, find_images(root))  # the metric cache key is unchanged
    assert index.class_labels() == (["cats", "dogs"], [0, 0, 0, 1, 1, 1])
    assert decodes == []


def test_listing_keeps_the_order_of_sorted_paths(tmp_path):
    write_images(tmp_path / "a", n=1)
    write_images(tmp_path, n=1, suffix=".jpg")
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")  # "a.png" < "a/..." as strings, not as paths
    assert [tmp_path / e[0] for e in list_images(tmp_path)] == sorted(find_images(tmp_path))
    assert [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)][:2] == [
        "a/img_000.png",
        "a.png",
    ]


def test_second_build_reads_the_cache_without_the_header_pass(tmp_path, header_reads):
    root, cache = folder(tmp_path), tmp_path / "cache"
    first = folder_index(root, cache)
    assert len(header_reads) == 6 and len(list(cache.glob("index-*.json"))) == 1
    again = folder_index(root, cache)
    assert len(header_reads) == 6 and again == first


def test_changed_added_or_removed_file_gives_a_new_key(tmp_path, header_reads):
    root, cache = folder(tmp_path), tmp_path / "cache"
    folder_index(root, cache)
    target = root / "cats" / "img_001.png"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = folder_index(root, cache)
    assert touched.mtimes[1] == stat.st_mtime_ns + 10**9
    Image.new("L", (9, 5)).save(root / "dogs" / "new.png")
    added = folder_index(root, cache)
    assert "dogs/new.png" in added.names and added.headers[added.names.index("dogs/new.png")] == [9, 5, "L"]
    (root / "cats" / "img_000.png").unlink()
    removed = folder_index(root, cache)
    assert "cats/img_000.png" not in removed.names
    assert len({touched.digest, added.digest, removed.digest}) == 3
    assert len(list(cache.glob("index-*.json"))) == 4 and len(header_reads) == 6 + 6 + 7 + 6


def test_unreadable_cache_file_is_rebuilt_with_a_warning(tmp_path):
    root, cache = folder(tmp_path), tmp_path / "cache"
    built = folder_index(root, cache)
    (path,) = cache.glob("index-*.json")
    path.write_text('{"version": 1, "names": [')  # cut short
    with pytest.warns(UserWarning, match="rebuilding the unreadable folder index"):
        assert folder_index(root, cache) == built
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert folder_index(root, cache) == built  # rewritten whole: read back quietly


def test_concurrent_builders_take_turns_and_build_once(tmp_path, monkeypatch):
    root, cache, built = folder(tmp_path), tmp_path / "cache", []
    original = index_module.build_index

    def slow_build(root, entries, read_headers=True, workers=None):
        if read_headers:
            built.append(1)
            time.sleep(0.2)
        return original(root, entries, read_headers, workers)

    monkeypatch.setattr(index_module, "build_index", slow_build)
    results = []
    ranks = [threading.Thread(target=lambda: results.append(folder_index(root, cache))) for _ in range(3)]
    for rank in ranks:
        rank.start()
    for rank in ranks:
        rank.join()
    assert len(built) == 1 and len(results) == 3 and results[0] == results[1] == results[2]


# ----------------------------------------------------------------------------- once per node
def test_prepare_data_builds_and_setup_on_every_rank_only_reads(tmp_path, header_reads):
    root, cache = folder(tmp_path), str(tmp_path / "cache")
    settings = {"root": str(root), "img_size": 16, "channels": 3, "index_cache": cache, "in_memory": False}
    ImageFolderDataModule(**settings).prepare_data()  # local rank 0 of the node
    assert len(header_reads) == 6
    for _ in range(2):  # two ranks, each with its own data module
        rank = ImageFolderDataModule(**settings)
        rank.setup("fit")
        assert len(rank.train_set) + len(rank.val_set) == 6
    assert len(header_reads) == 6
    alone = ImageFolderDataModule(**{**settings, "index_cache": str(tmp_path / "elsewhere")})
    alone.setup("fit")  # setup without prepare_data builds the index itself
    assert len(header_reads) == 12


def test_dataset_id_is_the_listing_digest_before_and_after_setup(tmp_path):
    root = folder(tmp_path)
    data = ImageFolderDataModule(root=str(root), img_size=16, channels=3, in_memory=False)
    before = data.dataset_id
    data.setup("fit")
    assert data.dataset_id == before and before.endswith(f"|files={folder_digest(root, find_images(root))}")


# ----------------------------------------------------------------------------- corrupt files
def test_setup_decodes_nothing_and_a_corrupt_file_stops_training_naming_it(tmp_path, decodes):
    root = folder(tmp_path)
    broken = truncated_jpeg(root / "dogs" / "broken.jpg")
    data = ImageFolderDataModule(
        root=str(root), img_size=16, channels=3, batch_size=7, val_fraction=0.0, in_memory=False
    )
    data.setup("fit")
    assert decodes == [] and len(data.train_set) == 7  # its header reads: found only when decoded
    with pytest.raises(ImageLoadError, match=r"broken\.jpg.*data\.skip_corrupt=true"):
        next(iter(data.train_dataloader()))
    assert str(broken) in decodes


def test_skip_corrupt_warns_once_naming_the_file_and_keeps_batches_full(tmp_path):
    root = folder(tmp_path)
    truncated_jpeg(root / "cats" / "broken.jpg")  # index 0: cats/broken.jpg < cats/img_000.png
    data = ImageFolderDataModule(
        root=str(root), class_subfolders=True, skip_corrupt=True, img_size=16, channels=3,
        batch_size=7, val_fraction=0.0, in_memory=False,
    )  # fmt: skip
    data.setup("fit")
    with pytest.warns(UserWarning, match=r"skipping .*broken\.jpg") as caught:
        batches = [batch for _ in range(2) for batch in data.train_dataloader()]
    assert len([w for w in caught if "broken.jpg" in str(w.message)]) == 1  # once per file
    assert [len(images) for images, _ in batches] == [7, 7]
    image, label = data.train_set[0]  # the next readable file stands in, with its label
    expected, expected_label = data.train_set[1]
    assert torch.equal(image, expected) and label == expected_label == 0


def test_not_an_image_is_named_from_its_header_or_met_in_training_without_headers(tmp_path):
    root = folder(tmp_path)
    (root / "cats" / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n junk")
    settings = {"root": str(root), "img_size": 16, "channels": 3, "val_fraction": 0.0, "in_memory": False}
    with pytest.raises(ImageLoadError, match=r"junk\.png.*skip_corrupt"):
        ImageFolderDataModule(**settings).setup()  # the header pass finds it before training
    data = ImageFolderDataModule(**settings, read_headers=False)
    data.setup()
    with pytest.raises(ImageLoadError, match=r"junk\.png.*skip_corrupt"):
        [data.train_set[i] for i in range(len(data.train_set))]
    labelled = ImageFolderDataModule(**settings, class_subfolders=True, skip_corrupt=True)
    with pytest.warns(UserWarning, match=r"skipping .*junk\.png"):
        labelled.setup()  # dropped from the index: the labels of the others stay theirs
    assert [labelled.train_set[i][1] for i in range(6)] == [0, 0, 0, 1, 1, 1]


def test_decode_all_is_the_eager_check(tmp_path):
    root = folder(tmp_path)
    decode_all(find_images(root), 3)
    truncated_jpeg(root / "dogs" / "broken.jpg")
    with pytest.raises(ImageLoadError, match=r"broken\.jpg"):
        decode_all(find_images(root), 3)


# ----------------------------------------------------------------------------- translation layouts
def test_unaligned_folders_are_lazy_and_name_a_corrupt_file_when_met(tmp_path, decodes, header_reads):
    root = unaligned_root(tmp_path)
    truncated_jpeg(root / "trainA" / "broken.jpg")
    settings = {"root": str(root), "index_cache": str(tmp_path / "cache"), **SIZES}
    UnalignedFolderDataModule(**settings).prepare_data()
    reads = len(header_reads)
    data = UnalignedFolderDataModule(**settings)
    data.setup()
    assert decodes == [] and len(header_reads) == reads  # setup read the cache; nothing decoded
    with pytest.raises(ImageLoadError, match=r"broken\.jpg.*skip_corrupt"):
        data.train_set[0]
    skipping = UnalignedFolderDataModule(**settings, skip_corrupt=True)
    skipping.setup()
    with pytest.warns(UserWarning, match=r"broken\.jpg"):
        item = skipping.train_set[0]
    assert item["A"].shape == (3, 16, 16)


def test_aligned_pairs_are_lazy_and_name_a_corrupt_file_when_met(tmp_path, decodes):
    root = aligned_root(tmp_path)
    broken = truncated_jpeg(root / "train" / "broken.jpg", size=40)
    data = AlignedFolderDataModule(root=str(root), **SIZES)
    data.setup()
    assert decodes == [] and len(data.train_set) == 4
    with pytest.raises(ImageLoadError, match=r"broken\.jpg.*skip_corrupt"):
        data.train_set[data.train_set.pairs.files.index(broken)]
    skipping = AlignedFolderDataModule(root=str(root), skip_corrupt=True, **SIZES)
    skipping.setup()
    with pytest.warns(UserWarning, match=r"broken\.jpg"):
        batches = list(skipping.train_dataloader())
    assert [len(batch["A"]) for batch in batches] == [2, 2]
