from __future__ import annotations

import pytest
import torch

import hpo


def test_defaults_are_the_embedded_mnist1d_cnn():
    task = hpo.Task()
    assert (task.dataset, task.model, task.optimizer) == ("mnist1d", "cnn", "adam")
    assert task.budget() == hpo.Budget(epochs=task.epochs)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        pytest.param(
            {"dataset": "mnist"},
            ValueError,
            r"Task.`dataset` must be one of.*'mnist1d'",
            id="dataset",
        ),
        pytest.param(
            {"model": "resnet"}, ValueError, r"Task.`model` must be one of.*'cnn'", id="model"
        ),
        pytest.param(
            {"optimizer": "lion"}, ValueError, r"Task.`optimizer` must be one of", id="optimizer"
        ),
        pytest.param(
            {"batch_size": 0}, ValueError, r"Task.`batch_size` must be in \[1, inf\)", id="batch"
        ),
        pytest.param(
            {"epochs": 0},
            ValueError,
            r"Task.`epochs` must be in \[1, 1000000\], but got epochs=0",
            id="epochs",
        ),
        pytest.param(
            {"epochs": 2.0}, TypeError, r"Task.`epochs` must be an int", id="epochs-float"
        ),
        pytest.param({"seed": -1}, ValueError, r"Task.`seed`", id="seed"),
        pytest.param(
            {"device": "gpu"}, ValueError, r"Task.`device` must be 'auto', 'cpu'", id="device"
        ),
        pytest.param({"precision": "fp16"}, ValueError, r"Task.`precision`", id="precision"),
        pytest.param({"weight_decay": -0.1}, ValueError, r"Task.`weight_decay`", id="wd"),
        pytest.param(
            {"momentum": 0.9},
            ValueError,
            r"`momentum` applies to.*optimizer='adam'",
            id="momentum",
        ),
        pytest.param(
            {"val_fraction": 1.5},
            ValueError,
            r"Task.`val_fraction` must be in \(0.0, 0.9\]",
            id="val",
        ),
        pytest.param({"train_size": 0}, ValueError, r"Task.`train_size`", id="train-size"),
        pytest.param(
            {"dataset": 3}, TypeError, r"Task.`dataset` must be of type str", id="dataset-type"
        ),
        pytest.param({"model_options": [1]}, TypeError, r"model_options", id="options-type"),
    ],
)
def test_bad_fields_are_named(changes, error, match):
    with pytest.raises(error, match=match):
        hpo.Task(**changes)


def test_to_params_is_flat_and_names_model_options():
    params = hpo.Task(model="convnet", model_options={"base": 16}).to_params()
    assert params["model"] == "convnet" and params["model.base"] == 16
    assert "model_options" not in params
    assert all(not isinstance(v, dict) for v in params.values())


def test_same_seed_same_initial_weights_other_seed_other_weights(boring_data):
    task = hpo.testing.boring_task()
    a, b = task.build_trainer(boring_data), task.build_trainer(boring_data)
    c = task.build_trainer(boring_data, seed=1)
    pa, pb, pc = (list(t.model.parameters()) for t in (a, b, c))
    assert all(torch.equal(x, y) for x, y in zip(pa, pb))
    assert not all(torch.equal(x, y) for x, y in zip(pa, pc))


def test_building_a_trainer_leaves_the_global_rng_alone(boring_data):
    state = torch.get_rng_state()
    hpo.testing.boring_task().build_trainer(boring_data)
    assert torch.equal(state, torch.get_rng_state())


def test_trainers_built_from_one_data_share_its_tensors(boring_data):
    task = hpo.testing.boring_task()
    a, b = task.build_trainer(boring_data), task.build_trainer(boring_data)
    assert a.data.x_train.data_ptr() == b.data.x_train.data_ptr()


def test_replace_validates_again():
    with pytest.raises(ValueError, match="epochs"):
        hpo.Task().replace(epochs=-3)


def test_nos_optimizers_by_name_and_by_genome(boring_data):
    from strategies.nos import GraphOptimizer, ProgramOptimizer, named_genome

    trainer = hpo.testing.boring_task(optimizer="nos:opt6").build_trainer(boring_data)
    assert isinstance(trainer.optimizer, ProgramOptimizer)
    assert trainer.optimizer.total_steps == 3 * trainer.steps_per_epoch  # built for the run
    genome = named_genome("adam")
    trainer = hpo.testing.boring_task(optimizer="nos:genome:" + genome.to_json()).build_trainer(
        boring_data
    )
    assert isinstance(trainer.optimizer, GraphOptimizer) and trainer.optimizer.genome == genome


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        pytest.param(
            {"optimizer": "nos:lion"}, r"names no NOS optimizer; known: nos:opt1", id="name"
        ),
        pytest.param({"optimizer": "nos:genome:[1]"}, r"must carry a Genome's JSON", id="genome"),
        pytest.param(
            {"optimizer": "nos:opt1", "weight_decay": 0.1}, r"do not apply to NOS", id="wd"
        ),
    ],
)
def test_bad_nos_optimizers(changes, match):
    with pytest.raises(ValueError, match=match):
        hpo.Task(**changes)
