from __future__ import annotations

import pytest
import torch

from trainers import DEFAULT_LRS, OPTIMIZERS, build_optimizer
from trainers._lr_free import has_modes

FOREACH = {
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "adadelta",
    "rmsprop",
    "adam",
    "adamw",
    "schedulefree-adamw",
    "schedulefree-sgd",
}


def quadratic_run(name: str, steps: int = 50) -> tuple[float, float]:
    torch.manual_seed(0)
    w = torch.randn(10, requires_grad=True)
    opt = build_optimizer(name, [w], lr=DEFAULT_LRS[name])
    start = float((w.detach() ** 2).sum())
    if has_modes(opt):  # Schedule-Free: steps in train mode, the result read in eval mode
        opt.train()
    for _ in range(steps):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    if has_modes(opt):
        opt.eval()
    return start, float((w.detach() ** 2).sum())


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_descends_a_quadratic_at_its_default_lr(name):
    start, end = quadratic_run(name)
    assert end < start


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_foreach_is_used_where_torch_offers_it(name):
    opt = build_optimizer(name, [torch.zeros(2, requires_grad=True)], lr=0.1)
    assert opt.defaults.get("foreach") is (True if name in FOREACH else None)


@pytest.mark.parametrize(
    ("name", "cls", "extra"),
    [
        ("sgd", torch.optim.SGD, {"momentum": 0, "nesterov": False}),
        ("momentum", torch.optim.SGD, {"momentum": 0.9, "nesterov": False}),
        ("nesterov", torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
        ("adagrad", torch.optim.Adagrad, {}),
        ("adadelta", torch.optim.Adadelta, {}),
        ("rmsprop", torch.optim.RMSprop, {"alpha": 0.99}),
        ("adam", torch.optim.Adam, {"betas": (0.9, 0.999)}),
        ("adamw", torch.optim.AdamW, {"weight_decay": 0.01}),
    ],
)
def test_names_map_to_the_textbook_settings(name, cls, extra):
    opt = build_optimizer(name, [torch.zeros(2, requires_grad=True)], lr=0.1)
    assert type(opt) is cls
    for k, v in extra.items():
        assert opt.defaults[k] == v


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"name": "lion"}, "Unknown optimizer 'lion'.*sgd, momentum", id="name"),
        pytest.param({"lr": 0.0}, r"lr.*\(0.0, inf\)", id="lr-0"),
        pytest.param({"weight_decay": -1.0}, r"weight_decay.*\[0.0, inf\)", id="wd"),
        pytest.param({"momentum": 1.0}, r"momentum.*\[0.0, 1.0\)", id="momentum-1"),
        pytest.param({"name": "adam", "momentum": 0.9}, "momentum.*not to 'adam'", id="mom-adam"),
        pytest.param({"name": "sgd", "betas": (0.9, 0.9)}, "betas.*not to 'sgd'", id="betas-sgd"),
    ],
)
def test_bad_optimizer_arguments(kwargs, match):
    args = {"name": "momentum", "lr": 0.1, **kwargs}
    name = args.pop("name")
    with pytest.raises(ValueError, match=match):
        build_optimizer(name, [torch.zeros(2, requires_grad=True)], **args)
