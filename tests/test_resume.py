"""Mid-epoch resume: the loader's place and random states in the checkpoint, and iteration checkpoints."""

from __future__ import annotations

import pytest
import torch
from omegaconf import open_dict
from torch.utils.data import Dataset, TensorDataset

from ganforge.callbacks.checkpoints import IterationCheckpoint
from ganforge.config import ConfigError
from ganforge.data.base import seeded_loader
from ganforge.train import train
from ganforge.utils.checkpoint import load_checkpoint


class RandomCrops(Dataset):
    """Items drawn from the global torch generator, as random crops and flips are."""

    def __len__(self) -> int:
        return 40

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i), torch.rand(()).item()])


def batches(loader, n: int | None = None) -> list[torch.Tensor]:
    out = []
    for batch in loader:
        out.append(batch[0] if isinstance(batch, (tuple, list)) else batch)
        if n is not None and len(out) == n:
            break
    return out


def make_loader(dataset: Dataset, num_workers: int, epoch: int = 3):
    loader = seeded_loader(
        dataset, batch_size=4, shuffle=True, drop_last=True, num_workers=num_workers, pin_memory=False
    )
    loader.sampler.set_epoch(epoch)
    return loader


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("data", ["tensors", "random_items"])
def test_loader_state_resumes_at_the_next_unseen_batch_in_order(num_workers, data):
    dataset = TensorDataset(torch.arange(40.0), torch.zeros(40)) if data == "tensors" else RandomCrops()
    torch.manual_seed(0)
    whole = batches(make_loader(dataset, num_workers))
    assert len(whole) == 10

    torch.manual_seed(0)
    first = make_loader(dataset, num_workers)
    seen = batches(first, 4)
    state = first.state_dict()
    assert (state["epoch"], state["batches"]) == (3, 4)
    torch.manual_seed(123)  # the resumed process's generators start elsewhere: the state restores them
    resumed = make_loader(dataset, num_workers)
    resumed.load_state_dict(state)
    rest = batches(resumed)
    assert len(rest) == 6
    for expected, got in zip(whole, seen + rest, strict=True):
        assert torch.equal(expected, got)
    assert resumed.state_dict()["batches"] == 10
    # the next epoch starts at its first batch, in its own order
    resumed.sampler.set_epoch(4)
    following = batches(resumed)
    assert len(following) == 10 and not torch.equal(following[0], whole[0])


def test_state_of_a_finished_epoch_is_ignored_by_the_next():
    dataset = TensorDataset(torch.arange(40.0), torch.zeros(40))
    loader = make_loader(dataset, 0, epoch=2)
    batches(loader, 10)
    resumed = make_loader(dataset, 0, epoch=3)
    resumed.load_state_dict(loader.state_dict())
    assert len(batches(resumed)) == 10


def test_every_n_iters_counts_iterations_not_optimizer_steps(tiny_cfg, monkeypatch):
    saved: list[int] = []
    original = IterationCheckpoint._save_checkpoint

    def record(self, trainer, filepath):
        saved.append(trainer.lightning_module.iteration)
        original(self, trainer, filepath)

    monkeypatch.setattr(IterationCheckpoint, "_save_checkpoint", record)
    cfg = tiny_cfg(["data=digits", "callbacks.last_checkpoint.every_n_iters=2", "trainer.max_epochs=2"])
    with open_dict(cfg):
        cfg.trainer.limit_train_batches = 5
    train(cfg)
    # inside an epoch every 2 iterations; the epoch's last batch is saved once, by the epoch-end save
    assert saved == [2, 4, 5, 6, 8, 10]
    ckpt = load_checkpoint(f"{cfg.paths.output_dir}/checkpoints/last.ckpt")
    assert (
        ckpt["ganforge"]["iteration"] == 10 and ckpt["global_step"] == 20
    )  # 2 optimizer steps per iteration


def test_every_n_iters_refuses_bad_values():
    with pytest.raises(ConfigError, match="every_n_iters"):
        IterationCheckpoint(every_n_iters=0)
    with pytest.raises(ConfigError, match="every_n_iters instead"):
        IterationCheckpoint(every_n_train_steps=10)
