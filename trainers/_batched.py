r"""The computations of a batched population: K members' forward as one, and one optimizer step
for all of them.

**Forward.** Activations are `K x b x ...` (member first). A model whose ``torch.fx`` graph is
made of layers this module knows is run layer by layer without ``vmap``:

* ``Linear``: one ``baddbmm`` over the members (`K x b x in` times `K x in x out`);
* ``Conv1d`` / ``Conv2d``, BatchNorm, pooling: the members are laid side by side as channel
  groups (`b x (K C) x ...`) and the layer runs once with ``groups = K`` (BatchNorm's per-channel
  statistics are then per member: its running buffers are the stacked `K x C` buffers seen as
  `K C`, updated in place);
* elementwise layers and functions (ReLU, SiLU, ``+``...) and ``Flatten`` as they are.

Chained convolutions keep the side-by-side layout (a transposed view), so a conv net pays one
copy into it and one out. Any other model is run under ``torch.func.vmap`` (correct, slower:
measured 2x slower on the MNIST-1D CNN on 2 CPU cores); ``batched_forward`` picks.

**Update.** All of a member's parameters are one row of a `K x P` tensor (``FlatUpdate``); the
optimizer state likewise, and every hyperparameter is a `K x 1` column, so one step is a handful
of tensor operations whatever the number of layers: torch's ``foreach`` SGD and Adam(W) written
for that layout.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.func import functional_call, vmap

#: ``forward(params, buffers, x, train, shared_input) -> K x b x ...``: params and buffers by
#: name, each `K x ...`; ``x`` is `K x b x ...`, or `b x ...` for every member when
#: ``shared_input``.
BatchedForward = Callable[[dict[str, Tensor], dict[str, Tensor], Tensor, bool, bool], Tensor]

_ELEMENTWISE_MODULES = (
    nn.ReLU,
    nn.SiLU,
    nn.GELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.LeakyReLU,
    nn.ELU,
    nn.Identity,
    nn.Softplus,
)
_ELEMENTWISE_FUNCTIONS = {
    F.relu,
    torch.relu,
    F.silu,
    F.gelu,
    torch.tanh,
    torch.sigmoid,
    F.leaky_relu,
    operator.add,
    operator.mul,
    operator.sub,
    torch.add,
    torch.mul,
}


def batched_forward(module: nn.Module) -> tuple[BatchedForward, str]:
    """The members' forward for ``module``'s architecture, and how it runs (``"layers"``: the
    layer-by-layer path; ``"vmap"``: ``torch.func.vmap`` over ``functional_call``)."""
    layers = _layer_program(module)
    if layers is not None:
        return layers, "layers"
    return _vmap_forward(module), "vmap"


# =============================================================================================
# The layer-by-layer path
# =============================================================================================


def _layer_program(module: nn.Module) -> BatchedForward | None:
    """The forward as a list of batched layers, or ``None`` when a layer is unknown (or the
    model cannot be traced)."""
    try:
        graph = fx.symbolic_trace(module).graph
    except Exception:  # noqa: BLE001 - any tracing failure means: use vmap
        return None
    modules = dict(module.named_modules())
    steps: list[tuple[fx.Node, Callable[..., Tensor]]] = []
    for node in graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "call_module":
            layer = _batched_layer(str(node.target), modules[str(node.target)])
            if layer is None or len(node.args) != 1 or node.kwargs:
                return None
            steps.append((node, layer))
        elif node.op == "call_function" and node.target in _ELEMENTWISE_FUNCTIONS:
            steps.append((node, node.target))  # type: ignore[arg-type]
        else:
            return None
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    (output,) = [n for n in graph.nodes if n.op == "output"]
    if len(placeholders) != 1 or not isinstance(output.args[0], fx.Node):
        return None
    x_node, out_node = placeholders[0], output.args[0]

    def forward(
        params: dict[str, Tensor],
        buffers: dict[str, Tensor],
        x: Tensor,
        train: bool,
        shared_input: bool,
    ) -> Tensor:
        k = next(iter(params.values())).shape[0]
        env: dict[fx.Node, Any] = {x_node: x.expand(k, *x.shape) if shared_input else x}
        tensors = {**params, **buffers}
        for node, fn in steps:
            args = fx.node.map_arg(node.args, lambda n: env[n])
            if node.op == "call_module":
                env[node] = fn(args[0], tensors, train)
            else:
                env[node] = fn(*args, **node.kwargs)
        return env[out_node]

    return forward


def _batched_layer(name: str, layer: nn.Module) -> Callable[..., Tensor] | None:
    """``fn(x, tensors, train)`` computing ``layer`` for every member, or ``None``."""
    p = f"{name}." if name else ""
    if isinstance(layer, _ELEMENTWISE_MODULES):
        return lambda x, tensors, train: layer(x)
    if isinstance(layer, nn.Dropout) and layer.p == 0:
        return lambda x, tensors, train: x
    if isinstance(layer, nn.Flatten):
        start, end = layer.start_dim, layer.end_dim
        if start < 1:
            return None
        return lambda x, tensors, train: x.flatten(start + 1, end if end < 0 else end + 1)
    if isinstance(layer, nn.Linear):

        def linear(x: Tensor, tensors: dict[str, Tensor], train: bool) -> Tensor:
            w = tensors[p + "weight"]  # K x out x in
            flat = x.reshape(x.shape[0], -1, x.shape[-1])
            if layer.bias is None:
                out = torch.bmm(flat, w.transpose(1, 2))
            else:
                out = torch.baddbmm(tensors[p + "bias"].unsqueeze(1), flat, w.transpose(1, 2))
            return out.view(*x.shape[:-1], w.shape[1])

        return linear
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            return None
        conv = F.conv1d if isinstance(layer, nn.Conv1d) else F.conv2d
        stride, padding, dilation, groups = (
            layer.stride,
            layer.padding,
            layer.dilation,
            layer.groups,
        )

        def convolution(x: Tensor, tensors: dict[str, Tensor], train: bool) -> Tensor:
            w = tensors[p + "weight"]  # K x out x in/groups x kernel
            k = w.shape[0]
            bias = tensors[p + "bias"].reshape(-1) if layer.bias is not None else None
            return _side_by_side(
                x,
                lambda xg: conv(
                    xg, w.reshape(-1, *w.shape[2:]), bias, stride, padding, dilation, k * groups
                ),
            )

        return convolution
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if layer.momentum is None:  # the cumulative average needs each member's own count
            return None

        def batch_norm(x: Tensor, tensors: dict[str, Tensor], train: bool) -> Tensor:
            use_batch = train or not layer.track_running_stats
            mean = tensors.get(p + "running_mean")
            var = tensors.get(p + "running_var")
            if train and layer.track_running_stats:
                tensors[p + "num_batches_tracked"].add_(1)
            return _side_by_side(
                x,
                lambda xg: F.batch_norm(
                    xg,
                    None if mean is None else mean.view(-1),
                    None if var is None else var.view(-1),
                    tensors[p + "weight"].reshape(-1) if layer.affine else None,
                    tensors[p + "bias"].reshape(-1) if layer.affine else None,
                    use_batch,
                    layer.momentum,  # type: ignore[arg-type]
                    layer.eps,
                ),
            )

        return batch_norm
    if isinstance(
        layer,
        (
            nn.AdaptiveAvgPool1d,
            nn.AdaptiveAvgPool2d,
            nn.MaxPool1d,
            nn.MaxPool2d,
            nn.AvgPool1d,
            nn.AvgPool2d,
        ),
    ):
        return lambda x, tensors, train: _side_by_side(x, layer)
    return None


def _side_by_side(x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """``fn`` on the members laid side by side as channel groups: `K x b x C x ...` becomes
    `b x (K C) x ...` (a view when ``x`` came out of this function), and back."""
    k, b = x.shape[:2]
    grouped = x.transpose(0, 1).reshape(b, -1, *x.shape[3:])
    out = fn(grouped)
    return out.view(b, k, -1, *out.shape[2:]).transpose(0, 1)


# =============================================================================================
# The vmap path
# =============================================================================================


def _vmap_forward(module: nn.Module) -> BatchedForward:
    def one(tensors: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(module, tensors, (x,))

    batched, shared = vmap(one), vmap(one, in_dims=(0, None))

    def forward(
        params: dict[str, Tensor],
        buffers: dict[str, Tensor],
        x: Tensor,
        train: bool,
        shared_input: bool,
    ) -> Tensor:
        module.train(train)
        try:
            return (shared if shared_input else batched)({**params, **buffers}, x)
        finally:
            module.train()

    return forward


# =============================================================================================
# The update
# =============================================================================================


class FlatUpdate:
    r"""torch's ``foreach`` SGD or Adam(W) step for K members whose parameters are the rows of
    one `K x P` tensor.

    Hyperparameters are `K x 1` columns (each member's own lr, momentum, betas, weight decay,
    eps); Adam's bias corrections use each member's step count. The operations and their order
    are those of ``torch.optim``'s ``_multi_tensor_sgd`` / ``_multi_tensor_adam``.

    Args:
        kind: ``torch.optim.SGD``, ``torch.optim.Adam`` or ``torch.optim.AdamW``.
        groups: Each member's param group (its hyperparameters).
        device: Where the columns live.
    """

    def __init__(
        self,
        kind: type[torch.optim.Optimizer],
        groups: Sequence[dict[str, Any]],
        device: torch.device,
    ) -> None:
        self.adam = kind is not torch.optim.SGD
        self.decoupled = kind is torch.optim.AdamW

        def col(values: list[float]) -> Tensor | float:
            """A `K x 1` column, or a Python float when every member has the same value (a
            scalar operand is the cheaper kernel)."""
            if all(v == values[0] for v in values):
                return values[0]
            return torch.tensor(values, dtype=torch.float32, device=device).unsqueeze(1)

        self.device = device
        self.lrs = [float(g["lr"]) for g in groups]
        decay = [float(g["weight_decay"]) for g in groups]
        self.weight_decay = col(decay) if any(decay) else None
        if self.adam:
            self.beta1 = [float(g["betas"][0]) for g in groups]
            self.beta2 = [float(g["betas"][1]) for g in groups]
            self.one_minus_beta1 = col([1 - b for b in self.beta1])
            self.beta2_col = col(self.beta2)
            self.one_minus_beta2 = col([1 - b for b in self.beta2])
            self.eps = col([float(g["eps"]) for g in groups])
            self.decay_factor = col([1 - lr * wd for lr, wd in zip(self.lrs, decay)])
        else:
            momentum = [float(g["momentum"]) for g in groups]
            self.uses_momentum = [m != 0 for m in momentum]
            self.momentum = col(momentum) if any(momentum) else None
            self.dampening = col([1 - float(g["dampening"]) for g in groups])
            self.neg_lr = torch.tensor(
                [-lr for lr in self.lrs], dtype=torch.float32, device=device
            ).unsqueeze(1)
            self.nesterov = bool(groups[0]["nesterov"])

    def step(self, flat: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        """One step of every member: ``flat`` (`K x P`) in place, with ``grad`` (`K x P`) and
        the state ``FlatUpdate`` keeps in ``state`` (``exp_avg``, ``exp_avg_sq``, ``step``; or
        ``momentum_buffer`` and ``fresh``)."""
        if self.adam:
            self._adam(flat, grad, state)
        else:
            self._sgd(flat, grad, state)

    def _sgd(self, flat: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        if self.weight_decay is not None:
            grad = grad + self.weight_decay * flat
        if self.momentum is not None:
            buf, fresh = state["momentum_buffer"], state["fresh"]
            if any(fresh):  # a member's first step: its buffer is the gradient itself
                mask = torch.tensor(fresh, device=flat.device).unsqueeze(1)
                buf.copy_(torch.where(mask, grad, buf * self.momentum + grad * self.dampening))
                state["fresh"] = [False] * len(fresh)
            elif isinstance(self.dampening, float):
                buf.mul_(self.momentum).add_(grad, alpha=self.dampening)
            else:
                buf.mul_(self.momentum).addcmul_(grad, self.dampening)
            direction = grad + self.momentum * buf if self.nesterov else buf
            if not all(self.uses_momentum):  # torch keeps no buffer for momentum 0
                use = torch.tensor(self.uses_momentum, device=flat.device).unsqueeze(1)
                direction = torch.where(use, direction, grad)
            grad = direction
        flat.addcmul_(grad, self.neg_lr)

    def _adam(self, flat: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        steps = state["step"] = [s + 1 for s in state["step"]]
        if self.weight_decay is not None:
            if self.decoupled:
                flat.mul_(self.decay_factor)
            else:
                grad = grad + self.weight_decay * flat
        m, v = state["exp_avg"], state["exp_avg_sq"]
        # the bias corrections, in float64 on the host as torch computes them
        step_size = [-(lr / (1 - b1**s)) for lr, b1, s in zip(self.lrs, self.beta1, steps)]
        bc2_sqrt = [(1 - b2**s) ** 0.5 for b2, s in zip(self.beta2, steps)]
        m.lerp_(grad, self.one_minus_beta1)
        v.mul_(self.beta2_col)
        if isinstance(self.one_minus_beta2, float):
            v.addcmul_(grad, grad, value=self.one_minus_beta2)
        else:
            v.addcmul_(grad, grad * self.one_minus_beta2)
        denom = v.sqrt()
        if all(b == bc2_sqrt[0] for b in bc2_sqrt):
            denom.div_(bc2_sqrt[0])
        else:
            denom.div_(_column(bc2_sqrt, self.device))
        denom.add_(self.eps).div_(_column(step_size, self.device))
        flat.addcdiv_(m, denom)


def _column(values: list[float], device: torch.device) -> Tensor:
    """A `K x 1` float32 column on ``device`` (copied without waiting on the device)."""
    return torch.tensor(values, dtype=torch.float32).to(device, non_blocking=True).unsqueeze(1)


def member_losses(loss_fn: Callable[[Tensor, Tensor], Tensor], out: Tensor, y: Tensor) -> Tensor:
    """Each member's mean loss (a `K` vector) of `K x b x ...` outputs against `K x b ...`
    targets: cross-entropy as one call over all members, any other loss under ``vmap``."""
    if loss_fn is F.cross_entropy and y.ndim == 2:
        k = out.shape[0]
        per_example = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none")
        return per_example.view(k, -1).mean(1)
    return vmap(loss_fn)(out, y)
