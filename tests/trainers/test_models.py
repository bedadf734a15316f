from __future__ import annotations

import pytest
import torch

from trainers import MODELS, build_model, build_optimizer, load_dataset

SMALL = {"convnet": {"base": 8}, "resnet20": {"width": 4}}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Every dataset: the two offline ones for real, the torchvision ones from tiny files."""
    pytest.importorskip("torchvision")
    from tests.trainers.conftest import write_cifar, write_fashion_mnist

    root = tmp_path_factory.mktemp("tv")
    mp = pytest.MonkeyPatch()
    rng = __import__("numpy").random.default_rng(0)
    write_fashion_mnist(root, rng)
    write_cifar(root, rng, mp, 10)
    write_cifar(root, rng, mp, 100)
    out = {
        name: load_dataset(name, data_dir=root, train_size=16)
        for name in ("mnist1d", "digits", "fashion_mnist", "cifar10", "cifar100")
    }
    mp.undo()
    return out


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dataset", ["mnist1d", "digits", "fashion_mnist", "cifar10", "cifar100"])
def test_every_model_builds_for_every_dataset_and_trains_one_step(datasets, dataset, model):
    data = datasets[dataset]
    torch.manual_seed(0)
    options = SMALL.get(model, {})
    net = build_model(model, data.input_shape, data.num_classes, **options)
    opt = build_optimizer("sgd", net.parameters(), lr=0.01)
    x, y = data.x_train[:4], data.y_train[:4]
    out = net(x)
    assert out.shape == (4, data.num_classes)
    before = [p.detach().clone() for p in net.parameters()]
    torch.nn.functional.cross_entropy(out, y).backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize(
    ("model", "shape", "options", "count"),
    [
        pytest.param("cnn", (1, 40), {}, 5210, id="mnist1d-cnn"),  # Greydanus: ~5k
        pytest.param("mlp", (1, 40), {}, 15210, id="mnist1d-mlp"),
        pytest.param("convnet", (3, 32, 32), {"base": 48}, 211_594, id="nos-convnet-48"),
        pytest.param("resnet20", (3, 32, 32), {}, 269_722, id="resnet20"),  # He et al.: 0.27M
    ],
)
def test_parameter_counts_match_the_papers(model, shape, options, count):
    net = build_model(model, shape, 10, **options)
    assert sum(p.numel() for p in net.parameters()) == count


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown model 'resnet50'.*" + ", ".join(MODELS)):
        build_model("resnet50", (3, 32, 32), 10)


def test_unknown_model_option_is_named():
    with pytest.raises(ValueError, match=r"'cnn' takes the options \['channels'\].*'width'"):
        build_model("cnn", (1, 40), 10, width=3)


def test_input_rank_is_checked():
    with pytest.raises(ValueError, match="input_shape"):
        build_model("cnn", (40,), 10)
