r"""``Population``: K networks of one architecture trained as one batched computation.

A population method (PBT's members, random search's branches, Hyperdyn's branches) trains K
copies of one network with different seeds or hyperparameters. One after another, each small
network leaves most of the hardware idle; stacked, the K forwards and backwards are one
computation (``trainers._batched``): a minibatch is `K x b x ...` (each member's own slice of its
own permutation), the layers run once for all members, and all parameters are the rows of one
`K x P` tensor updated in one step with a per-member lr (and momentum, betas, weight decay).

The members stay ordinary ``Trainer``\ s: ``train_epoch`` reads their weights, buffers,
optimizer state, hyperparameters and data-order streams, trains all of them for one epoch, and
writes everything back, so ``snapshot`` / ``restore``, checkpoints and the ``Recorder`` work on
each member as before (PBT's exploit is still a ``restore``). Reading and writing the state
costs a copy of the weights and optimizer state per epoch: small beside an epoch.

What batches (``batching_obstacle`` says why not, and ``make_population`` then falls back to
training the members one after another, saying so once per reason):

* ``DataSplits`` on the device (not ``StreamingSplits``), no ``Augment``, no gradient penalty;
* no active dropout (its masks come from each trainer's own random stream, which a batched
  forward cannot reproduce);
* BatchNorm in train mode batches exactly: each member's running statistics are its own row of
  the stacked buffers, updated in place;
* optimizers ``SGD`` (momentum, dampening, Nesterov, weight decay) and ``Adam`` / ``AdamW``
  (not ``amsgrad``, ``maximize``, ``fused`` or ``capturable``), one param group.

Numerics: the update is torch's ``foreach`` update written for the `K x P` layout; the batched
forward and backward sum in another order than one network's (a grouped convolution, a batched
matmul), so results agree with the sequential path to float rounding (~1e-7 relative per step on
CPU), not bit for bit. Training amplifies such differences exactly as it amplifies any 1e-7
perturbation of the weights (measured: the same growth in the sequential path), so long runs
of chaotic networks drift apart while their statistics agree.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.func import vmap

from trainers._batched import FlatUpdate, batched_forward, member_losses
from trainers._data import DataSplits
from trainers._trainer import EpochResult, EvalResult, Trainer, epoch_mean_loss

_logger = logging.getLogger(__name__)


class Members(Protocol):
    """What a strategy drives: K trainers trained an epoch at a time, batched or not."""

    trainers: list[Trainer]
    batched: bool

    def train_epoch(self, lrs: Sequence[float | None] | None = None) -> list[EpochResult]:
        """One epoch of every member, at ``lrs[k]`` (``None``: the member's current lr)."""
        ...

    def evaluate(self, split: str = "val") -> list[EvalResult]:
        """Every member's loss and score on ``split``."""
        ...


def batching_obstacle(trainers: Sequence[Trainer]) -> str | None:
    """Why ``trainers`` cannot be trained as one batched population; ``None`` when they can.

    Returns:
        A sentence naming the obstacle (for the fallback's message), or ``None``.
    """
    if not trainers:
        return "there are no members"
    t0 = trainers[0]
    if not isinstance(t0.data, DataSplits):
        return "the data stream from a DataLoader (StreamingSplits)"
    for t in trainers:
        if t.data is not t0.data:
            return "the members do not share one copy of the data"
        if t.augment is not None:
            return "minibatches are augmented (each member draws its own augmentation)"
        if t.penalty is not None:
            return "a gradient penalty is attached (Distancing)"
        if t.device != t0.device or t.batch_size != t0.batch_size:
            return "the members differ in device or batch size"
        if type(t.model) is not type(t0.model) or [p.shape for p in t.model.parameters()] != [
            p.shape for p in t0.model.parameters()
        ]:
            return "the members are not one architecture"
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in t0.model.modules()):
        return (
            "the model has dropout (each member's masks come from its own random stream, "
            "which a batched forward cannot reproduce)"
        )
    return _update_obstacle([t.optimizer for t in trainers])


class SequentialPopulation:
    """The members trained one after another: the fallback, and the reference the batched
    path is tested against."""

    batched = False

    def __init__(self, trainers: Sequence[Trainer]) -> None:
        self.trainers = list(trainers)

    def train_epoch(self, lrs: Sequence[float | None] | None = None) -> list[EpochResult]:
        lrs = _check_lrs(lrs, len(self.trainers))
        return [t.train_epoch(lr) for t, lr in zip(self.trainers, lrs)]

    def evaluate(self, split: str = "val") -> list[EvalResult]:
        return [t.evaluate(split) for t in self.trainers]


class Population:
    r"""K trainers' networks trained as one batched computation.

    Args:
        trainers: The members: trainers of one architecture on one ``DataSplits`` (e.g.
            ``Trainer.clone``\ s), each with its own seed, weights, optimizer state and
            hyperparameters.

    Raises:
        ValueError: The members cannot be batched (``batching_obstacle`` names why).

    Example:
        >>> import torch
        >>> from trainers import Population, Trainer, build_model, load_dataset
        >>> data = load_dataset("digits")
        >>> model = build_model("mlp", data.input_shape, data.num_classes)
        >>> t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), data, device="cpu")
        >>> members = [t] + [t.clone(seed=s, reinitialize=True) for s in (1, 2, 3)]
        >>> results = Population(members).train_epoch([0.3, 0.1, 0.03, 0.01])
        >>> len(results), members[2].lr, members[2].counters.epochs
        (4, 0.03, 1)
    """

    batched = True

    def __init__(self, trainers: Sequence[Trainer]) -> None:
        reason = batching_obstacle(trainers)
        if reason is not None:
            raise ValueError(f"Population: the members cannot be batched: {reason}.")
        self.trainers = list(trainers)
        module = self.trainers[0].model
        named = list(module.named_parameters())
        self._names = [n for n, _ in named]
        self._shapes = [p.shape for _, p in named]
        self._sizes = [p.numel() for _, p in named]
        self._buffer_names = [n for n, _ in module.named_buffers()]
        self._forward, self.path = batched_forward(module)
        self._kind = type(self.trainers[0].optimizer)

    def __len__(self) -> int:
        return len(self.trainers)

    # ------------------------------------------------------------------ training

    def train_epoch(self, lrs: Sequence[float | None] | None = None) -> list[EpochResult]:
        """Train every member for one pass over the training split, as one computation.

        Args:
            lrs: Member ``k``'s lr (a float >= 0, set on its optimizer as ``train_epoch`` does),
                or ``None`` for its current lr; ``None`` for all current lrs.

        Returns:
            Each member's ``EpochResult`` (its loss and metric over its own minibatches; its
            ``seconds`` is the batched epoch's wall time divided by K).
        """
        lrs = _check_lrs(lrs, len(self.trainers))
        for t, lr in zip(self.trainers, lrs):
            if lr is not None:
                t.set_hyperparameters(lr=float(lr))
        trainers, data, t0 = self.trainers, self.trainers[0].data, self.trainers[0]
        assert isinstance(data, DataSplits)
        k = len(trainers)
        start = time.perf_counter()
        flat = self._gather_params().requires_grad_()
        buffers = self._gather_buffers()
        update = FlatUpdate(self._kind, [t.optimizer.param_groups[0] for t in trainers], t0.device)
        state = self._gather_state()
        perms = torch.stack([t.epoch_order() for t in trainers])  # K x n
        n, bs = data.num_train, t0.batch_size
        steps = -(-n // bs)
        targets = data.y_train[perms]  # K x n
        losses = torch.empty(k, steps, device=perms.device)
        outputs: Tensor | None = None
        for j in range(steps):
            rows = slice(j * bs, (j + 1) * bs)
            flat.grad = None
            with t0._autocast():  # the members' precision (bf16 on CUDA when asked)
                out = self._forward(
                    self._views(flat), buffers, data.x_train[perms[:, rows]], True, False
                )
                loss = member_losses(t0.loss.fn, out, targets[:, rows])
            loss.sum().backward()
            with torch.no_grad():
                assert flat.grad is not None
                update.step(flat, flat.grad, state)
            losses[:, j] = loss.detach()
            if outputs is None:
                outputs = out.new_empty((k, n, *out.shape[2:]))
            outputs[:, rows] = out.detach()
        assert outputs is not None
        with torch.no_grad():
            flat.grad = None
            self._scatter_params(flat.detach())
            self._scatter_buffers(buffers)
            self._scatter_state(state)
        mean_losses = epoch_mean_loss(losses, n, bs).tolist()
        seconds = (time.perf_counter() - start) / k
        results = []
        for i, t in enumerate(trainers):
            score = mean_losses[i] if t.metric.fn is None else t.metric(outputs[i], targets[i])
            t.record_work(steps=steps, examples=n, seconds=seconds)
            lr = t.lr
            results.append(
                EpochResult(
                    loss=mean_losses[i],
                    score=score,
                    steps=steps,
                    examples=n,
                    seconds=seconds,
                    lr_mean=lr,
                    lr_min=lr,
                    lr_max=lr,
                )
            )
        return results

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, split: str = "val") -> list[EvalResult]:
        """Every member's loss and score on ``"val"``, ``"test"`` or ``"train"``, in one
        batched pass per evaluation minibatch (NaN for an empty split)."""
        trainers, data, t0 = self.trainers, self.trainers[0].data, self.trainers[0]
        n = data.split_size(split)
        if n == 0:
            return [EvalResult(math.nan, math.nan) for _ in trainers]
        params = self._views(self._gather_params())
        buffers = self._gather_buffers()
        total = vmap(t0.loss.total, in_dims=(0, None))
        loss_sum = torch.zeros(len(trainers), device=data.device)
        outputs: Tensor | None = None
        i = 0
        for x, y in data.eval_batches(split, t0.eval_batch_size):
            with t0._autocast():  # the members' precision (bf16 on CUDA when asked)
                out = self._forward(params, buffers, x, False, True)
            loss_sum += total(out, y)
            if outputs is None:
                outputs = out.new_empty((len(trainers), n, *out.shape[2:]))
            outputs[:, i : i + len(y)] = out
            i += len(y)
        assert outputs is not None
        losses = (loss_sum / n).tolist()
        targets = data.targets(split)
        return [
            EvalResult(
                loss=losses[k],
                score=losses[k] if t.metric.fn is None else t.metric(outputs[k], targets),
            )
            for k, t in enumerate(trainers)
        ]

    # ------------------------------------------------------------------ the stacked state

    def _views(self, flat: Tensor) -> dict[str, Tensor]:
        """Each parameter, stacked (`K x ...`), as a view of the `K x P` rows."""
        k = flat.shape[0]
        parts = torch.split(flat, self._sizes, dim=1)
        return {
            name: part.view(k, *shape)
            for name, part, shape in zip(self._names, parts, self._shapes)
        }

    def _gather_params(self) -> Tensor:
        return torch.stack(
            [
                torch.cat([p.detach().reshape(-1) for p in t.model.parameters()])
                for t in self.trainers
            ]
        )

    def _scatter_params(self, flat: Tensor) -> None:
        for row, t in zip(flat, self.trainers):
            params: list[Tensor] = list(t.model.parameters())
            parts = torch.split(row, self._sizes)
            torch._foreach_copy_(params, [v.view(p.shape) for v, p in zip(parts, params)])

    def _gather_buffers(self) -> dict[str, Tensor]:
        members = [dict(t.model.named_buffers()) for t in self.trainers]
        return {n: torch.stack([m[n].detach() for m in members]) for n in self._buffer_names}

    def _scatter_buffers(self, buffers: dict[str, Tensor]) -> None:
        for k, t in enumerate(self.trainers):
            for name, buf in t.model.named_buffers():
                buf.copy_(buffers[name][k])

    def _gather_state(self) -> dict[str, Any]:
        """The optimizer state as `K x P` rows (zeros where a member has none yet)."""
        states = [(t.optimizer.state, list(t.model.parameters())) for t in self.trainers]

        def rows(key: str) -> tuple[Tensor, list[bool]]:
            out, fresh = [], []
            for state, params in states:
                values = [state.get(p, {}).get(key) for p in params]
                fresh.append(values[0] is None)
                out.append(
                    torch.cat(
                        [
                            (torch.zeros_like(p) if v is None else v.detach()).reshape(-1)
                            for v, p in zip(values, params)
                        ]
                    )
                )
            return torch.stack(out), fresh

        if self._kind is torch.optim.SGD:
            if all(t.optimizer.param_groups[0]["momentum"] == 0 for t in self.trainers):
                return {}
            buf, fresh = rows("momentum_buffer")
            return {"momentum_buffer": buf, "fresh": fresh}
        exp_avg, _ = rows("exp_avg")
        exp_avg_sq, _ = rows("exp_avg_sq")
        steps = []
        for state, params in states:
            step = state.get(params[0], {}).get("step")
            steps.append(0.0 if step is None else float(step))
        return {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "step": steps}

    def _scatter_state(self, state: dict[str, Any]) -> None:
        adam = self._kind is not torch.optim.SGD
        for k, t in enumerate(self.trainers):
            if not adam and (t.optimizer.param_groups[0]["momentum"] == 0 or state["fresh"][k]):
                continue  # torch's SGD keeps no state without momentum
            params = list(t.model.parameters())
            keys = ("exp_avg", "exp_avg_sq") if adam else ("momentum_buffer",)
            parts = {key: torch.split(state[key][k], self._sizes) for key in keys}
            for i, p in enumerate(params):
                p_state = t.optimizer.state[p]
                if adam:
                    step = p_state.get("step")
                    if isinstance(step, Tensor):
                        step.fill_(state["step"][k])
                    else:
                        p_state["step"] = torch.tensor(state["step"][k], dtype=_scalar_dtype())
                for key in keys:
                    _put(p_state, key, parts[key][i].view(p.shape))


def make_population(trainers: Sequence[Trainer], *, batched: bool = True) -> Members:
    """The members as one batched ``Population`` when they can be, else trained one after
    another (``SequentialPopulation``), with the reason logged once per process and reason.

    Args:
        trainers: The members.
        batched: Try the batched path (``False``: always one after another).
    """
    if batched:
        reason = batching_obstacle(trainers)
        if reason is None:
            return Population(trainers)
        if reason not in _ANNOUNCED:
            _ANNOUNCED.add(reason)
            _logger.warning(
                "trainers: training %d members one after another, not batched: %s.",
                len(trainers),
                reason,
            )
    return SequentialPopulation(trainers)


#: Fallback reasons already logged in this process ("saying so once", like ``warnings``'
#: default filter).
_ANNOUNCED: set[str] = set()


# =============================================================================================
# The batched optimizer update
# =============================================================================================


def _update_obstacle(optimizers: Sequence[torch.optim.Optimizer]) -> str | None:
    kind = type(optimizers[0])
    if kind not in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
        return f"the optimizer {kind.__name__} has no batched update (SGD, Adam, AdamW have)"
    for opt in optimizers:
        if type(opt) is not kind:
            return "the members' optimizers differ in class"
        if len(opt.param_groups) != 1:
            return "an optimizer has several param groups"
        g = opt.param_groups[0]
        for flag in ("amsgrad", "maximize", "fused", "capturable", "differentiable"):
            if g.get(flag):
                return f"the optimizer's {flag}=True has no batched update"
        if kind is torch.optim.SGD and g["nesterov"] != optimizers[0].param_groups[0]["nesterov"]:
            return "the members differ in Nesterov momentum"
        if isinstance(g["lr"], Tensor):
            return "a tensor lr"
    return None


def _put(p_state: dict[str, Any], key: str, value: Tensor) -> None:
    cur = p_state.get(key)
    if isinstance(cur, Tensor) and cur.shape == value.shape and cur.dtype == value.dtype:
        cur.copy_(value)
    else:
        p_state[key] = value.clone()


def _scalar_dtype() -> torch.dtype:
    """The dtype torch's Adam keeps its ``step`` in."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _check_lrs(lrs: Sequence[float | None] | None, k: int) -> list[float | None]:
    if lrs is None:
        return [None] * k
    lrs = list(lrs)
    if len(lrs) != k:
        raise ValueError(f"`lrs` must give one lr per member ({k}), but got {len(lrs)}.")
    for lr in lrs:
        if lr is not None and (not isinstance(lr, (int, float)) or not lr >= 0):
            raise ValueError(f"`lrs` must be floats >= 0 (or None), but got {lr!r}.")
    return lrs
