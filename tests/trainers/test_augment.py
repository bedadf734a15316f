from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hpo
from trainers import Augment


def augmented_batches(trainer) -> list[tuple[torch.Tensor, torch.Tensor]]:
    seen = []

    def step(x, y):
        seen.append((x.clone(), y.clone()))
        stats = trainer.forward_backward(x, y)
        trainer.apply_update(0.01)
        return stats

    trainer.run_epoch(step)
    return seen


def digits_task(**changes):
    base = {"dataset": "digits", "model": "cnn", "batch_size": 64, "epochs": 1, "device": "cpu"}
    return hpo.Task(**{**base, **changes})


def test_the_same_seed_gives_the_same_crops_and_another_seed_others():
    task = digits_task(augment="crop-flip")
    data = task.load_data()
    a = augmented_batches(task.build_trainer(data))
    b = augmented_batches(task.build_trainer(data))
    c = augmented_batches(task.build_trainer(data, seed=1))
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b))
    plain = augmented_batches(digits_task().build_trainer(data))
    assert any(not torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, plain))
    assert not torch.equal(a[0][0], c[0][0])


def test_augmentation_keeps_each_example_with_its_label():
    task = digits_task()
    data = task.load_data()
    plain = augmented_batches(task.build_trainer(data))
    crop = augmented_batches(digits_task(augment="crop-flip").build_trainer(data))
    for (x0, y0), (x1, y1) in zip(plain, crop):
        assert torch.equal(y0, y1)  # same examples, same order, labels untouched
        padded = F.pad(x0, (1, 1, 1, 1), mode="reflect")
        for i in range(len(x0)):  # each output is a window of its own padded example
            windows = [padded[i, :, r : r + 8, c : c + 8] for r in range(3) for c in range(3)]
            assert any(torch.equal(x1[i], w) or torch.equal(x1[i], w.flip(-1)) for w in windows)


def test_signals_are_shifted_windows_of_themselves():
    x = torch.arange(40.0).reshape(1, 1, 40).repeat(16, 1, 1)
    torch.manual_seed(0)
    out = Augment("crop", padding=5)(x)
    padded = F.pad(x, (5, 5), mode="reflect")
    shifts = set()
    for i in range(16):
        matches = [s for s in range(11) if torch.equal(out[i], padded[i, :, s : s + 40])]
        assert matches
        shifts.add(matches[0])
    assert len(shifts) > 1


def test_augmentation_is_off_in_evaluation():
    task = digits_task(augment="crop-flip")
    trainer = task.build_trainer()
    plain = digits_task().build_trainer(trainer.data)
    assert trainer.evaluate() == plain.evaluate()


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        pytest.param(
            {"dataset": "mnist1d", "augment": "crop-flip"}, "1-D signals: use 'crop'", id="flip-1d"
        ),
        pytest.param({"augment": "crop", "augment_padding": 8}, "smaller than", id="padding"),
        pytest.param({"augment": "rotate"}, r"Task.`augment` must be one of", id="kind"),
    ],
)
def test_bad_augmentation(changes, match):
    with pytest.raises(ValueError, match=match):
        digits_task(**changes).build_trainer()
