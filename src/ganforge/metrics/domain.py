"""The offline domain network: a digit classifier trained on the embedded MNIST subset.

``ganforge-features`` trains it (deterministically for a seed, single-threaded on the CPU) and
writes its weights with their SHA-256; the package ships the weights of seed 0 and their hash,
so FID/KID/IS on digit data, Stacked MNIST mode counts and label-preservation accuracy need no
network. :func:`load_digit_classifier` refuses weights whose hash differs from the recorded one,
so every metric names exactly the network that produced it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.data.base import split_indices, to_unit_range
from ganforge.networks.classifier import DigitClassifier

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "digit_classifier.pt"
VAL_FRACTION, SPLIT_SEED = 0.1, 0  # the same held-out split as data=mnist5k


class DomainNetworkError(FileNotFoundError):
    """The domain network's weights are missing or are not the recorded ones; names the file."""


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """Hex SHA-256 of a state dict's names, dtypes, shapes and values.

    It hashes the weights themselves rather than the file, whose bytes also depend on its name
    (``torch.save`` names the archive after the file).
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def mnist5k_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """The embedded MNIST subset as ``(images (5000, 1, 28, 28) in [-1, 1], labels)``."""
    from ganforge.data.embedded import load_mnist5k_arrays

    pixels, labels = load_mnist5k_arrays()
    images = to_unit_range(torch.as_tensor(pixels, dtype=torch.float32).view(-1, 1, 28, 28), 255.0)
    return images, torch.as_tensor(labels, dtype=torch.long)


def _random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` px (background -1), so the classifier does not
    depend on the exact centring of MNIST digits that generated digits may lack."""
    n, _, h, w = images.shape
    padded = F.pad(images, [max_shift] * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1).expand(n, 1, h, w + 2 * max_shift)
    out = padded.gather(2, rows)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w).expand(n, 1, h, w)
    return out.gather(3, cols)


@torch.no_grad()
def accuracy(
    model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500
) -> float:
    """Share of ``images`` whose predicted class equals ``labels``."""
    model.eval()
    correct = sum(
        (model(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum().item()
        for i in range(0, len(images), batch_size)
    )
    return correct / max(1, len(images))


def train_digit_classifier(
    out: str | Path = DEFAULT_WEIGHTS, seed: int = 0, epochs: int = 12, batch_size: int = 64, lr: float = 2e-3
) -> dict:
    """Train the classifier on the 4,500 training digits of ``mnist5k`` and save it.

    Training runs single-threaded with deterministic algorithms, so the same seed and torch
    build give the same bytes. Writes ``out`` (the state dict) and ``out.with_suffix('.json')``
    (hash, held-out accuracy, settings); returns that record.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        images, labels = mnist5k_tensors()
        train_idx, val_idx = split_indices(len(images), VAL_FRACTION, SPLIT_SEED)
        model = DigitClassifier()
        steps_per_epoch = len(train_idx) // batch_size
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=epochs * steps_per_epoch)
        for _ in range(epochs):
            model.train()
            order = train_idx[torch.randperm(len(train_idx), generator=generator)]
            for step in range(steps_per_epoch):
                idx = order[step * batch_size : (step + 1) * batch_size]
                x = _random_shift(images[idx], 2, generator)
                loss = F.cross_entropy(model(x), labels[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
        val_acc = accuracy(model, images[val_idx], labels[val_idx])
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    record = {
        "file": out.name,
        "sha256": weights_sha256(model.state_dict()),
        "val_accuracy": round(val_acc, 4),
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "data": f"mnist5k train split ({len(train_idx)} digits; held out: {len(val_idx)}, split_seed {SPLIT_SEED})",
        "torch": torch.__version__,
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def load_digit_classifier(
    path: str | Path | None = None, device: str | torch.device = "cpu"
) -> DigitClassifier:
    """The trained classifier in eval mode, after checking its weights' hash.

    Args:
        path: weights file; defaults to the shipped ``digit_classifier.pt``. Its record
            ``<path>.json`` (written by ``ganforge-features``) holds the expected hash.

    Raises:
        DomainNetworkError: the file or its record is missing, or the hash differs.
    """
    path = Path(path or DEFAULT_WEIGHTS).expanduser()
    record_path = path.with_suffix(".json")
    if not path.is_file():
        raise DomainNetworkError(
            f"digit classifier weights not found: {path}; create them with `ganforge-features out={path}`"
        )
    if not record_path.is_file():
        raise DomainNetworkError(
            f"{record_path} (the hash record of {path}) is missing; rerun `ganforge-features out={path}`"
        )
    expected = json.loads(record_path.read_text())["sha256"]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DomainNetworkError(f"{path} is not a readable weights file: {err}") from err
    actual = weights_sha256(state)
    if actual != expected:
        raise DomainNetworkError(
            f"{path} has weights SHA-256 {actual[:12]}..., but its record says {expected[:12]}..."
        )
    model = DigitClassifier()
    model.load_state_dict(state)
    model.weights_sha256 = actual
    return model.to(device).eval().requires_grad_(False)


@torch.no_grad()
def predict_digits(model: DigitClassifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted class of each image (any size, 1 or 3 channels, in [-1, 1])."""
    device = next(model.parameters()).device
    preds = [
        model(images[i : i + batch_size].to(device)).argmax(1).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def predict_channel_digits(model: DigitClassifier, images: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` predicted class of each channel of each image, read one channel at a time
    (Stacked MNIST's protocol: a digit per colour channel)."""
    return torch.stack([predict_digits(model, images[:, c : c + 1]) for c in range(images.shape[1])], dim=1)
