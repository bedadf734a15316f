from __future__ import annotations

import pytest

import hpo
from hpo.testing import StrategyTestSuite
from strategies import Constant, ConstantConfig
from trainers import DEFAULT_LRS


class TestConstant(StrategyTestSuite):
    @pytest.fixture
    def strategy(self):
        return Constant(lr=0.02)


def test_every_epoch_uses_the_lr():
    h = hpo.run(hpo.testing.boring_task(), Constant(lr=0.007), tracking=False)
    assert h.column("lr") == [0.007] * 3 and h.column("lr_max") == [0.007] * 3


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_no_lr_means_the_optimizers_default(optimizer):
    h = hpo.run(hpo.testing.boring_task(optimizer=optimizer, epochs=1), Constant(), tracking=False)
    assert h.column("lr") == [DEFAULT_LRS[optimizer]]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param(
            {"lr": 0.0}, ValueError, r"ConstantConfig.`lr` must be in \(0.0, inf\)", id="lr-0"
        ),
        pytest.param(
            {"lr": "0.1"}, TypeError, r"ConstantConfig.`lr` must be a real number", id="lr-str"
        ),
        pytest.param({"rate": 0.1}, TypeError, r"unknown option\(s\) \['rate'\]", id="unknown"),
    ],
)
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        Constant(**kwargs)


def test_config_and_keywords_are_exclusive():
    with pytest.raises(TypeError, match="not both"):
        Constant(ConstantConfig(lr=0.1), lr=0.2)
    assert Constant(ConstantConfig(lr=0.1)) == Constant(lr=0.1)
