"""The learning-rate-free optimizers inside the trainer: modes, BatchNorm, d, snapshots."""

from __future__ import annotations

import pytest
import torch

import hpo
from strategies import Constant, LrFree
from trainers import DEFAULT_LRS, LR_FREE

SCHEDULE_FREE = ("schedulefree-adamw", "schedulefree-sgd")
ADAPTIVE = ("prodigy", "dadapt-adam", "dadapt-sgd")


class ModeSpy:
    """Records (model in train mode?, optimizer in train mode?) at every forward."""

    def __init__(self, trainer) -> None:
        self.calls: list[tuple[bool, bool]] = []
        self.trainer = trainer
        trainer.model.register_forward_hook(self.hook)

    def hook(self, module, args, output) -> None:
        group = self.trainer.optimizer.param_groups[0]
        self.calls.append((module.training, bool(group.get("train_mode", True))))


@pytest.mark.parametrize("name", SCHEDULE_FREE)
@pytest.mark.parametrize("model", ["cnn", "convnet"])
def test_schedule_free_steps_in_train_mode_and_is_evaluated_in_eval_mode(name, model, device):
    """Every evaluation the Recorder makes scores Schedule-Free's ``eval()`` point; every
    training step runs in ``train()`` mode (the optimizer itself raises otherwise)."""
    options = {"base": 8} if model == "convnet" else {}
    task = hpo.testing.boring_task(
        optimizer=name, model=model, epochs=3, device=device, model_options=options
    )
    trainer = task.build_trainer()
    spy = ModeSpy(trainer)
    history = Constant().run(trainer, task.budget())
    evaluations = [opt_train for model_train, opt_train in spy.calls if not model_train]
    assert len(evaluations) >= 3  # one evaluation per epoch at least
    assert not any(evaluations)  # never scored at the training point
    assert history.status == "finished"


def test_evaluation_scores_the_averaged_point_and_leaves_training_as_it_was(boring_data):
    task = hpo.testing.boring_task(
        optimizer="schedulefree-adamw", model="convnet", model_options={"base": 8}
    )
    trainer = task.build_trainer(boring_data)
    trainer.train_epoch()
    buffers = [b.clone() for b in trainer.model.buffers()]
    first = trainer.evaluate()
    assert trainer.optimizer.param_groups[0]["train_mode"] is False
    # BatchNorm's statistics were recomputed at the eval point and put back afterwards
    assert all(torch.equal(a, b) for a, b in zip(buffers, trainer.model.buffers()))
    assert trainer.evaluate() == first  # an evaluation has no side effect
    trainer.optimizer.train()  # the training point scores differently
    trainer.model.eval()
    with torch.no_grad():
        x, y = boring_data.split("val")
        at_y = (trainer.model(x).argmax(1) == y).float().mean().item()
    trainer.model.train()
    assert at_y != pytest.approx(first.score, abs=1e-9)


@pytest.mark.parametrize("name", ADAPTIVE)
def test_adaptive_optimizers_log_d_and_the_lr_they_use(name):
    task = hpo.testing.boring_task(optimizer=name, epochs=3)
    history = hpo.run(task, Constant(), tracking=False, progress=False)
    assert history.column("lr") == [1.0, 1.0, 1.0]  # "no tuning": the documented default
    ds = [r.metrics["d"] for r in history.records]
    assert ds[0] > 1e-6  # d grew from its initial estimate d0 = 1e-6
    assert all(r.metrics["effective_lr"] == pytest.approx(r.metrics["d"]) for r in history.records)


class _Crash(hpo.Callback):
    def on_epoch_end(self, history, record):
        if record.epoch == 2:
            raise RuntimeError("crash at epoch 2")


@pytest.mark.parametrize("name", LR_FREE)
def test_every_lr_free_optimizer_survives_a_crash_and_resume_bit_identically(name, tmp_path):
    """Schedule-Free's mode and step count, Prodigy's and D-Adaptation's d, their state: all
    saved with the weights (a BatchNorm model, so Schedule-Free's recompute is exercised)."""
    task = hpo.testing.boring_task(
        optimizer=name, epochs=4, model="convnet", model_options={"base": 8, "dropout": 0.0}
    )
    full = hpo.run(task, Constant(), tracking=False, progress=False)
    with pytest.raises(RuntimeError, match="crash at epoch 2"):
        hpo.run(
            task,
            Constant(),
            tracking=False,
            progress=False,
            checkpoint_dir=tmp_path,
            callbacks=[_Crash()],
        )
    resumed = hpo.run(
        task, Constant(), tracking=False, progress=False, checkpoint_dir=tmp_path, resume=True
    )
    assert resumed.column("val_acc") == full.column("val_acc")
    assert resumed.column("train_loss") == full.column("train_loss")


@pytest.mark.parametrize("name", LR_FREE)
def test_the_lr_free_strategy_swaps_in_the_optimizer_at_its_default(name, boring_data):
    task = hpo.testing.boring_task(optimizer="adam", epochs=2)
    trainer = task.build_trainer(boring_data)
    history = LrFree(optimizer=name).run(trainer, task.budget())
    assert history.column("lr") == [DEFAULT_LRS[name]] * 2
    assert type(trainer.optimizer).__module__.split(".")[0] in (
        "schedulefree",
        "prodigyopt",
        "dadaptation",
    )


def test_lr_free_strategy_refuses_an_unknown_optimizer():
    with pytest.raises(ValueError, match=r"LrFreeConfig.`optimizer` must be one of"):
        LrFree(optimizer="adam")
