from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tests.trainers.conftest import N_TEST, N_TRAIN
from trainers import DATASETS, load_dataset
from trainers._data import _mnist1d

TORCHVISION = {
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
}


def test_mnist1d_is_generated_offline_with_the_canonical_sizes():
    data = load_dataset("mnist1d")
    assert data.input_shape == (1, 40) and data.num_classes == 10
    assert data.num_train + len(data.y_val) == 4000 and len(data.y_test) == 1000
    assert len(data.y_val) == 400
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert set(data.y_train.unique().tolist()) == set(range(10))


def test_mnist1d_generation_leaves_the_global_random_state_alone():
    _mnist1d.cache_clear()
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    load_dataset("mnist1d")
    assert np.array_equal(np.random.get_state()[1], np_state) and random.getstate() == py_state


def test_digits_comes_from_scikit_learn():
    data = load_dataset("digits")
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert data.num_train + len(data.y_val) + len(data.y_test) == 1797


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_datasets_load_from_their_on_disk_format(torchvision_root, name):
    data = load_dataset(name, data_dir=torchvision_root)
    shape, classes = TORCHVISION[name]
    assert data.input_shape == shape and data.num_classes == classes
    assert data.num_train + len(data.y_val) == N_TRAIN and len(data.y_test) == N_TEST
    # standardised with the training split's statistics, per channel
    dims = (0, 2, 3)
    assert torch.allclose(data.x_train.mean(dim=dims), torch.zeros(shape[0]), atol=1e-4)
    assert torch.allclose(data.x_train.std(dim=dims), torch.ones(shape[0]), atol=1e-2)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_a_missing_torchvision_dataset_says_how_to_get_it(tmp_path, name):
    with pytest.raises(RuntimeError, match="download=True"):
        load_dataset(name, data_dir=tmp_path)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown dataset 'mnist'.*" + ", ".join(DATASETS)):
        load_dataset("mnist")


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.25])
def test_validation_split_is_held_out_of_train(fraction):
    data = load_dataset("digits", val_fraction=fraction)
    full = load_dataset("digits", val_fraction=0.1)
    n = full.num_train + len(full.y_val)
    assert len(data.y_val) == round(fraction * n) and data.num_train + len(data.y_val) == n
    # the same validation examples whatever the training seed: the split is fixed
    again = load_dataset("digits", val_fraction=fraction)
    assert torch.equal(data.x_val, again.x_val)


def test_train_size_keeps_a_subset():
    data = load_dataset("mnist1d", train_size=300)
    assert data.num_train == 300 and len(data.y_val) == 400


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"val_fraction": 0.0}, r"val_fraction.*\(0.0, 1.0\)", id="val-0"),
        pytest.param({"val_fraction": 1.0}, r"val_fraction.*\(0.0, 1.0\)", id="val-1"),
        pytest.param({"train_size": 0}, r"train_size.*\[1, inf\)", id="train-size-0"),
    ],
)
def test_bad_split_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset("digits", **kwargs)


def test_splits_move_between_devices_without_copying_when_already_there():
    data = load_dataset("digits")
    assert data.to("cpu") is data
