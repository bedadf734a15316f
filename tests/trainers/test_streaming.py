from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

import hpo
from trainers import DataSplits, StreamingSplits, as_splits

SPLITS = ("train", "val", "test")


def datasets(data: DataSplits) -> tuple[TensorDataset, ...]:
    return tuple(TensorDataset(*data.split(s)) for s in SPLITS)


def recorded_batches(trainer, epochs: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def step(x, y):
        seen.append((x.clone(), y.clone()))
        stats = trainer.forward_backward(x, y)
        trainer.apply_update(0.01)
        return stats

    for _ in range(epochs):
        trainer.run_epoch(step)
    return seen


def test_the_streaming_path_gives_the_in_memory_batches_in_the_same_order(boring_data):
    task = hpo.testing.boring_task()
    memory = recorded_batches(task.build_trainer(boring_data))
    stream = task.replace(
        data=datasets(boring_data), streaming=True, train_size=None
    ).build_trainer()
    assert isinstance(stream.data, StreamingSplits)
    streamed = recorded_batches(stream)
    assert len(memory) == len(streamed)
    for (x1, y1), (x2, y2) in zip(memory, streamed):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_streaming_trains_and_scores_exactly_as_in_memory(boring_data):
    task = hpo.testing.boring_task(epochs=2)
    a = task.build_trainer(boring_data)
    b = task.replace(data=datasets(boring_data), streaming=True, train_size=None).build_trainer()
    for t in (a, b):
        t.train_epoch(0.01)
        t.train_epoch(0.01)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    assert a.evaluate() == b.evaluate() and a.test() == b.test()


def test_a_resumed_streaming_run_ends_with_the_same_weights(boring_data, tmp_path):
    task = hpo.testing.boring_task().replace(
        data=datasets(boring_data), streaming=True, train_size=None
    )
    straight = task.build_trainer()
    for _ in range(3):
        straight.train_epoch(0.01)
    first = task.build_trainer()
    for _ in range(2):
        first.train_epoch(0.01)
    first.save_checkpoint(tmp_path / "ckpt.pt")
    resumed = task.build_trainer()
    resumed.load_checkpoint(tmp_path / "ckpt.pt")
    resumed.train_epoch(0.01)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def test_a_snapshot_replays_the_same_streamed_epoch(boring_data):
    task = hpo.testing.boring_task().replace(
        data=datasets(boring_data), streaming=True, train_size=None
    )
    trainer = task.build_trainer()
    snap = trainer.snapshot()
    first = trainer.train_epoch(0.01)
    trainer.restore(snap)
    again = trainer.train_epoch(0.01)
    assert (again.loss, again.score) == (first.loss, first.score)


def test_datasets_that_fit_take_the_in_memory_path(boring_data):
    splits = as_splits(datasets(boring_data))
    assert isinstance(splits, DataSplits)
    assert torch.equal(splits.x_train, boring_data.x_train)
    assert splits.num_classes == boring_data.num_classes
    assert isinstance(as_splits(datasets(boring_data), max_bytes=1), StreamingSplits)


def test_a_missing_validation_split_is_held_out_of_train():
    x, y = torch.randn(100, 3), torch.arange(100) % 4
    tensors = as_splits({"train": (x, y)}, val_fraction=0.2)
    assert tensors.num_train == 80 and tensors.split_size("val") == 20
    assert tensors.split_size("test") == 0
    stream = as_splits([TensorDataset(x, y), None], val_fraction=0.2, streaming=True)
    assert stream.num_train == 80 and stream.split_size("val") == 20


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        pytest.param({"val": None}, ValueError, "needs 'train'", id="no-train"),
        pytest.param({"train": 3}, TypeError, "pair of tensors", id="not-a-pair"),
        pytest.param(42, TypeError, "`data` must be DataSplits", id="number"),
        pytest.param(
            {"train": (torch.zeros(3, 2), torch.zeros(4))}, ValueError, "differ", id="lengths"
        ),
        pytest.param(
            {"train": (torch.zeros(4, 2), torch.tensor([0, 1, -1, 0]))},
            ValueError,
            "labels must be >= 0",
            id="labels",
        ),
    ],
)
def test_bad_data(data, error, match):
    with pytest.raises(error, match=match):
        as_splits(data)
