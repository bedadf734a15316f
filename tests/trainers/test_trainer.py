from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import hpo
from trainers import OPTIMIZERS, StepStats, Trainer

OPTIMIZER_CASES = list(OPTIMIZERS)


def make_trainer(data, *, optimizer="adam", model="cnn", seed=0, device="cpu", **model_options):
    task = hpo.testing.boring_task(
        optimizer=optimizer, model=model, seed=seed, device=device, model_options=model_options
    )
    return task.build_trainer(data)


def params_of(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


def state_of(trainer: Trainer) -> list[torch.Tensor]:
    out = [b.clone() for b in trainer.model.buffers()]
    for p in trainer.model.parameters():
        for k in sorted(trainer.optimizer.state.get(p, {})):
            v = trainer.optimizer.state[p][k]
            out.append(v.clone() if isinstance(v, torch.Tensor) else torch.tensor(v))
    return out


def assert_identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


# ---------------------------------------------------------------------------------------------
# snapshot / restore
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZER_CASES)
@pytest.mark.parametrize("model", ["cnn", "convnet"])  # convnet: BatchNorm buffers and dropout
def test_snapshot_restore_replays_an_epoch_bit_identically(boring_data, optimizer, model):
    options = {"base": 8} if model == "convnet" else {}
    trainer = make_trainer(boring_data, optimizer=optimizer, model=model, **options)
    trainer.train_epoch()  # optimizer state exists now
    snap = trainer.snapshot()
    first = trainer.train_epoch()
    weights, state, val = params_of(trainer), state_of(trainer), trainer.evaluate()
    trainer.restore(snap)
    second = trainer.train_epoch()
    assert first.loss == second.loss and first.score == second.score
    assert_identical(weights, params_of(trainer))
    assert_identical(state, state_of(trainer))
    assert trainer.evaluate() == val


def test_clone_of_a_nos_trainer_copies_hyperparameters_without_state_and_trains(boring_data):
    trainer = make_trainer(boring_data, optimizer="nos:opt6")
    trainer.train_epoch(0.01)  # the optimizer holds state (and its flat layout) now
    weights = params_of(trainer)
    clone = trainer.clone(seed=3, reinitialize=True)
    assert type(clone.optimizer) is type(trainer.optimizer)
    assert clone.hyperparameters() == trainer.hyperparameters()
    assert not clone.optimizer.state
    mine = {id(p) for p in clone.model.parameters()}
    assert mine == {id(p) for g in clone.optimizer.param_groups for p in g["params"]}
    initial = params_of(clone)
    assert not any(torch.equal(a, b) for a, b in zip(initial, weights))  # reinitialised
    result = clone.train_epoch(0.01)
    assert math.isfinite(result.loss) and clone.counters.steps == clone.steps_per_epoch
    assert not any(torch.equal(a, b) for a, b in zip(initial, params_of(clone)))
    assert_identical(weights, params_of(trainer))  # the original is left alone


def test_restore_to_before_the_first_step_matches_a_fresh_trainer(boring_data):
    trainer = make_trainer(boring_data, optimizer="adam")
    snap = trainer.snapshot()  # no optimizer state yet
    trainer.train_epoch(0.05)
    trainer.restore(snap)
    assert not trainer.optimizer.state
    trainer.train_epoch(0.05)
    fresh = make_trainer(boring_data, optimizer="adam")
    fresh.train_epoch(0.05)
    assert_identical(params_of(fresh), params_of(trainer))


def test_snapshot_into_an_old_snapshot_reuses_its_buffers(boring_data):
    trainer = make_trainer(boring_data, optimizer="momentum")
    trainer.train_epoch(0.05)
    snap = trainer.snapshot()
    pointers = [t.data_ptr() for t in (*snap.params, *snap.opt_tensors)]
    trainer.train_epoch(0.05)
    again = trainer.snapshot(out=snap)
    assert again is snap
    assert pointers == [t.data_ptr() for t in (*snap.params, *snap.opt_tensors)]
    assert_identical(snap.params, params_of(trainer))


def test_restore_rewinds_counters_and_hyperparameters_but_not_spent_work(boring_data):
    trainer = make_trainer(boring_data)
    snap = trainer.snapshot()
    trainer.train_epoch(0.123)
    assert trainer.lr == 0.123
    trainer.restore(snap)
    assert trainer.counters.steps == 0 and trainer.counters.epochs == 0
    assert trainer.spent.steps == trainer.steps_per_epoch and trainer.spent.epochs == 1
    assert trainer.lr != 0.123


def test_restore_rejects_a_snapshot_of_another_model(boring_data):
    a = make_trainer(boring_data, model="cnn")
    b = make_trainer(boring_data, model="mlp", depth=1)
    with pytest.raises(ValueError, match="another model"):
        b.restore(a.snapshot())


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


def test_training_lowers_the_loss_and_counts_the_work(boring_data):
    trainer = make_trainer(boring_data)
    before = trainer.evaluate()
    results = [trainer.train_epoch(0.01) for _ in range(3)]
    after = trainer.evaluate()
    assert after.loss < before.loss and after.score > before.score
    assert results[-1].loss < results[0].loss
    n, spe = trainer.data.num_train, trainer.steps_per_epoch
    assert trainer.counters.steps == 3 * spe and trainer.counters.examples == 3 * n
    assert trainer.counters.epochs == 3 and trainer.counters.seconds > 0
    assert trainer.spent == trainer.counters


def test_per_step_lr_callback_gets_the_global_step_and_sets_each_step(boring_data):
    trainer = make_trainer(boring_data, optimizer="sgd")
    seen: list[int] = []

    def lr_at(step: int) -> float:
        seen.append(step)
        return 0.01 * (step + 1)

    trainer.train_epoch(lr_at)
    result = trainer.train_epoch(lr_at)
    spe = trainer.steps_per_epoch
    assert seen == list(range(2 * spe))
    assert result.lr_min == pytest.approx(0.01 * (spe + 1))
    assert result.lr_max == pytest.approx(0.01 * 2 * spe)
    assert trainer.lr == pytest.approx(0.01 * 2 * spe)


def test_train_epoch_without_lr_keeps_the_optimizer_lr(boring_data):
    trainer = make_trainer(boring_data, optimizer="sgd")
    trainer.set_hyperparameters(lr=0.07)
    result = trainer.train_epoch()
    assert result.lr_mean == 0.07 and trainer.lr == 0.07


def test_per_minibatch_path_reproduces_train_epoch(boring_data):
    """forward_backward + apply_update inside run_epoch is the same as train_epoch."""
    a, b = make_trainer(boring_data), make_trainer(boring_data)
    ra = a.train_epoch(0.02)

    def step(x: torch.Tensor, y: torch.Tensor) -> StepStats:
        stats = b.forward_backward(x, y)
        b.apply_update(0.02)
        return stats

    rb = b.run_epoch(step)
    assert ra.loss == rb.loss and ra.score == rb.score
    assert_identical(params_of(a), params_of(b))


def test_loss_on_is_the_eval_mode_loss_of_the_current_weights(boring_data):
    trainer = make_trainer(boring_data, model="convnet", base=8)
    x, y = boring_data.x_val[:64], boring_data.y_val[:64]
    trainer.model.eval()
    with torch.no_grad():
        expected = F.cross_entropy(trainer.model(x), y)
    trainer.model.train()
    assert torch.equal(trainer.loss_on(x, y), expected)
    assert trainer.model.training


def test_evaluate_matches_a_hand_computed_accuracy(boring_data):
    trainer = make_trainer(boring_data)
    trainer.train_epoch(0.01)
    trainer.model.eval()
    with torch.no_grad():
        logits = trainer.model(boring_data.x_val)
    trainer.model.train()
    result = trainer.evaluate("val")
    assert result.score == pytest.approx(
        (logits.argmax(1) == boring_data.y_val).float().mean().item()
    )
    assert result.loss == pytest.approx(
        F.cross_entropy(logits, boring_data.y_val).item(), rel=1e-5
    )
    assert 0.0 <= trainer.test().score <= 1.0


def test_training_leaves_the_global_rng_alone(boring_data):
    trainer = make_trainer(boring_data, model="convnet", base=8)  # has dropout
    state = torch.get_rng_state()
    trainer.train_epoch(0.01)
    assert torch.equal(state, torch.get_rng_state())


def test_a_huge_lr_is_reported_as_diverged(boring_data):
    trainer = make_trainer(boring_data, optimizer="sgd")
    result = trainer.train_epoch(1e8)
    assert result.diverged and not math.isfinite(result.loss)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"batch_size": 0}, ValueError, r"batch_size.*\[1, inf\)", id="batch-0"),
        pytest.param({"batch_size": 2.5}, TypeError, r"batch_size.*an int", id="batch-float"),
        pytest.param({"precision": "fp8"}, ValueError, r"precision.*'fp32'", id="precision"),
        pytest.param({"device": "tpu"}, ValueError, r"device", id="device"),
    ],
)
def test_trainer_rejects_bad_arguments(boring_data, kwargs, error, match):
    model = torch.nn.Linear(40, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    args = {"batch_size": 10, "device": "cpu", **kwargs}
    with pytest.raises(error, match=match):
        Trainer(model, opt, boring_data, **args)


def test_cuda_is_refused_when_absent(boring_data):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    model = torch.nn.Linear(40, 10)
    with pytest.raises(ValueError, match="CUDA is not available"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), boring_data, device="cuda")


def test_set_hyperparameters_names_what_the_optimizer_has(boring_data):
    trainer = make_trainer(boring_data, optimizer="adam")
    trainer.set_hyperparameters(betas=(0.5, 0.99))
    assert trainer.hyperparameters()["betas"] == (0.5, 0.99)
    with pytest.raises(ValueError, match="no hyperparameter 'momentum'.*betas"):
        trainer.set_hyperparameters(momentum=0.9)


def test_train_epoch_rejects_a_negative_lr(boring_data):
    with pytest.raises(ValueError, match=r"lr.*\[0.0, inf\)"):
        make_trainer(boring_data).train_epoch(-0.1)


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("optimizer", "model"), [("adam", "cnn"), ("nesterov", "convnet"), ("rmsprop", "mlp")]
)
def test_resumed_run_ends_with_the_same_weights(boring_data, tmp_path, optimizer, model):
    options = {"base": 8} if model == "convnet" else {}
    lrs = [0.01, 0.005, 0.02, 0.001]
    straight = make_trainer(boring_data, optimizer=optimizer, model=model, **options)
    for lr in lrs:
        straight.train_epoch(lr)

    first = make_trainer(boring_data, optimizer=optimizer, model=model, **options)
    for lr in lrs[:2]:
        first.train_epoch(lr)
    path = tmp_path / "ckpt.pt"
    first.save_checkpoint(path, strategy_state={"next": 2})
    del first  # the run is "killed" after epoch 2

    resumed = make_trainer(boring_data, optimizer=optimizer, model=model, seed=123, **options)
    extra = resumed.load_checkpoint(path)
    assert extra == {"strategy_state": {"next": 2}}
    for lr in lrs[extra["strategy_state"]["next"] :]:
        resumed.train_epoch(lr)
    assert_identical(params_of(straight), params_of(resumed))
    assert resumed.counters.epochs == 4 and resumed.counters.steps == straight.counters.steps


# ---------------------------------------------------------------------------------------------
# devices
# ---------------------------------------------------------------------------------------------


def test_trains_on_every_device(device):
    task = hpo.testing.boring_task(device=device)
    trainer = task.build_trainer()
    assert trainer.device.type == device
    snap = trainer.snapshot()
    a = trainer.train_epoch(0.01)
    trainer.restore(snap)
    b = trainer.train_epoch(0.01)
    assert math.isfinite(a.loss)
    if device == "cpu":
        assert a.loss == b.loss
    else:
        assert a.loss == pytest.approx(b.loss, rel=1e-4)


@pytest.mark.cuda
def test_bf16_autocast_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    trainer = hpo.testing.boring_task(device="cuda", precision="bf16").build_trainer()
    result = trainer.train_epoch(0.01)
    assert math.isfinite(result.loss) and trainer.evaluate().score > 0.0


# ---------------------------------------------------------------------------------------------
# memory format and compilation
# ---------------------------------------------------------------------------------------------


def _image_task(**changes):
    return hpo.testing.boring_task(dataset="digits", model="resnet20", train_size=200, **changes)


def test_channels_last_trains_the_same_network_in_the_other_layout(device):
    task = _image_task(optimizer="momentum", device=device, model_options={"width": 4})
    data = task.load_data()
    plain = _image_task(
        optimizer="momentum", device=device, channels_last=False, model_options={"width": 4}
    ).build_trainer(data)
    last = _image_task(
        optimizer="momentum", device=device, channels_last=True, model_options={"width": 4}
    ).build_trainer(data)
    conv = next(p for p in last.model.parameters() if p.dim() == 4)
    assert last.channels_last and conv.is_contiguous(memory_format=torch.channels_last)
    a, b = plain.train_epoch(0.05), last.train_epoch(0.05)
    assert b.loss == pytest.approx(a.loss, rel=1e-4)
    for p, q in zip(plain.model.parameters(), last.model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5)
    assert last.evaluate().score == pytest.approx(plain.evaluate().score, abs=0.01)
    clone = last.clone(seed=1)
    assert clone.channels_last


def test_channels_last_defaults_to_cuda_conv_nets_only(boring_data):
    assert not hpo.testing.boring_task().build_trainer(boring_data).channels_last  # CPU


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"channels_last": "yes"}, "channels_last"), ({"compile": 1}, "compile")],
)
def test_bad_memory_format_and_compile_flags(kwargs, match):
    with pytest.raises(TypeError, match=match):
        hpo.testing.boring_task(**kwargs)


@pytest.mark.slow  # compiles (tens of seconds, needs a C++ compiler on CPU)
def test_compiled_model_trains_like_the_eager_one(boring_data):
    eager = hpo.testing.boring_task(model="mlp").build_trainer(boring_data)
    compiled = hpo.testing.boring_task(model="mlp", compile=True).build_trainer(boring_data)
    assert compiled.compiled
    a, b = eager.train_epoch(0.01), compiled.train_epoch(0.01)
    assert b.loss == pytest.approx(a.loss, rel=1e-4)
    assert compiled.evaluate().score == pytest.approx(eager.evaluate().score, abs=0.01)
    snap = compiled.snapshot()
    first = compiled.train_epoch(0.01)
    compiled.restore(snap)
    assert compiled.train_epoch(0.01).loss == first.loss  # restore works through the wrapper
