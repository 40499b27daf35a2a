"""The offline domain network: shipped weights, their hash, accuracy and deterministic training."""

from __future__ import annotations

import json

import pytest
import torch

from ganforge.data.base import split_indices
from ganforge.metrics.domain import (
    DEFAULT_WEIGHTS,
    DomainNetworkError,
    accuracy,
    load_digit_classifier,
    mnist5k_tensors,
    predict_digits,
    train_digit_classifier,
    weights_sha256,
)


def test_shipped_weights_match_their_hash_and_classify_held_out_digits():
    model = load_digit_classifier()
    assert model.weights_sha256 == json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())["sha256"]
    images, labels = mnist5k_tensors()
    _, val_idx = split_indices(len(images), 0.1, 0)
    assert accuracy(model, images[val_idx], labels[val_idx]) >= 0.97
    # Any size and 3 channels: a 32 px RGB copy classifies like the original.
    rgb32 = torch.nn.functional.interpolate(images[val_idx[:200]], size=32, mode="bilinear").expand(
        -1, 3, -1, -1
    )
    agree = (predict_digits(model, rgb32) == predict_digits(model, images[val_idx[:200]])).float().mean()
    assert agree >= 0.9  # the 28 -> 32 -> 28 round trip blurs thin strokes
    assert model.features(images[:4]).shape == (4, model.num_features)


def test_training_is_deterministic_for_a_seed(tmp_path):
    a = train_digit_classifier(tmp_path / "a.pt", seed=3, epochs=1)
    b = train_digit_classifier(tmp_path / "b.pt", seed=3, epochs=1)
    assert a["sha256"] == b["sha256"] == weights_sha256(torch.load(tmp_path / "a.pt", weights_only=True))
    assert a["val_accuracy"] > 0.5  # one epoch already learns digits


def test_tampered_or_missing_weights_are_refused(tmp_path):
    with pytest.raises(DomainNetworkError, match="not found"):
        load_digit_classifier(tmp_path / "none.pt")
    weights = tmp_path / "w.pt"
    state = torch.load(DEFAULT_WEIGHTS, weights_only=True)
    state["head.bias"] = state["head.bias"] + 1e-3
    torch.save(state, weights)
    weights.with_suffix(".json").write_text(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    with pytest.raises(DomainNetworkError, match="SHA-256"):
        load_digit_classifier(weights)
    weights.write_bytes(b"not a checkpoint")
    with pytest.raises(DomainNetworkError, match="not a readable"):
        load_digit_classifier(weights)
