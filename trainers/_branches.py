"""``Branches``: branches of one trainer, one epoch each from its state, one of them kept."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from trainers._population import Members, make_population
from trainers._trainer import Counters, EpochResult, EvalResult, Snapshot, Trainer


class Branches:
    """Branches of one trainer: one epoch each from the trainer's current state, with
    different hyperparameters, batched when the architecture allows (random search's
    candidates, Hyperdyn's branches).

    Branch 0 is the trainer itself; the others are clones that restart from its snapshot at
    every ``train``. Their work is charged to the trainer's ``spent``, as if the trainer had
    trained every branch itself; ``keep(j)`` makes branch ``j`` the trainer's state.

    Args:
        trainer: The trainer to branch.
        size: The most branches one ``train`` call trains, >= 1.
        batched: Try the batched path (``make_population``).
    """

    def __init__(self, trainer: Trainer, size: int, *, batched: bool = True) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"Branches: `size` must be an int >= 1, but got size={size!r}.")
        self.trainer = trainer
        self.trainers = [trainer] + [trainer.clone(seed=trainer.seed) for _ in range(size - 1)]
        self._batched = batched
        self._populations: dict[int, Members] = {}
        self._start: Snapshot | None = None
        self._kept: Snapshot | None = None

    @property
    def batched(self) -> bool:
        """Whether the branches train as one batched computation."""
        return self._population(len(self.trainers)).batched

    def train(
        self,
        lrs: Sequence[float],
        prepare: Callable[[Trainer, int], None] | None = None,
    ) -> list[tuple[EpochResult, EvalResult | None]]:
        """Train branch ``j`` one epoch at ``lrs[j]`` from the trainer's current state.

        Args:
            lrs: One lr per branch (at most ``size``).
            prepare: ``prepare(branch_trainer, j)`` sets branch ``j``'s other hyperparameters
                (momentum, betas) before the epoch.

        Returns:
            Each branch's epoch result and validation result (``None`` when it diverged).
        """
        k = len(lrs)
        if not 1 <= k <= len(self.trainers):
            raise ValueError(
                f"Branches.train: `lrs` must give 1..{len(self.trainers)} lrs, but got {k}."
            )
        branches = self.trainers[:k]
        if k > 1:
            self._start = self.trainer.snapshot(out=self._start)
            for branch in branches[1:]:
                branch.restore(self._start)
        if prepare is not None:
            for j, branch in enumerate(branches):
                prepare(branch, j)
        population = self._population(k)
        results = population.train_epoch(list(lrs))
        vals = population.evaluate()
        for branch in branches[1:]:
            self.trainer.spent.add(branch.spent)
            branch.spent = Counters()
        return [(r, None if r.diverged else v) for r, v in zip(results, vals)]

    def keep(self, j: int) -> None:
        """Make branch ``j`` of the last ``train`` the trainer's state (weights, optimizer
        state and hyperparameters, data order, counters)."""
        if j:
            self._kept = self.trainers[j].snapshot(out=self._kept)
            self.trainer.restore(self._kept)

    def _population(self, k: int) -> Members:
        if k not in self._populations:
            self._populations[k] = make_population(self.trainers[:k], batched=self._batched)
        return self._populations[k]
