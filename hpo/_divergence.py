"""When a run has diverged: a non-finite loss, a finite loss that exploded, or a network that
fell back to chance after it had learned."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpo._validation import check_range

if TYPE_CHECKING:
    from trainers import Trainer


@dataclass(frozen=True, kw_only=True)
class DivergenceRule:
    r"""The three ways a run counts as diverged.

    With :math:`L_0` the validation loss of the initial weights, :math:`c` the metric's chance
    score (accuracy: always predicting the validation split's most frequent class; MSE:
    always predicting the mean) and :math:`s^*` its ideal score (1 for accuracy, 0 for MSE),
    write the progress of a score :math:`s` as :math:`u(s) = (s - c) / (s^* - c)` (0 at chance,
    1 when perfect, whichever way the metric points). An epoch has diverged when

    1. its training or validation loss is not finite;
    2. its mean training loss exceeds ``loss_factor`` :math:`\cdot L_0` (a finite loss that
       exploded: Adam at lr 1e6 ends with losses around 1e27 and accuracy at chance);
    3. :math:`u` of its validation score has been at most ``chance_margin`` for
       ``chance_epochs`` epochs in a row after the run had learned: after its best validation
       score reached :math:`u \ge` ``learned``.

    Rule 3 never fires on a run that has not learned yet (a slow start is not a divergence),
    nor on one that falls to chance for an epoch and recovers: SGD-SA at the paper's
    temperature can do that and still end at 94 %. It needs a metric with a known chance and
    ideal score (accuracy, error, MSE, MAE, R²; not the loss or a user's metric without them).

    Args:
        loss_factor: How many times the initial validation loss the training loss may reach,
            > 1; ``inf`` turns rule 2 off.
        chance_margin: How close to chance counts as "at chance", as progress :math:`u`, >= 0
            (0.02: within 2 % of the way from chance to perfect).
        learned: The progress the best score must have reached for rule 3 to apply, in
            (0, 1]; ``1`` all but turns it off.
        chance_epochs: How many epochs in a row at chance rule 3 waits for, >= 1.

    Example:
        >>> rule = DivergenceRule()
        >>> rule.reason(train_loss=3e27, val_loss=3e27, score=0.1, best=0.1,
        ...             initial_loss=2.3, chance=0.1, ideal=1.0)
        'training loss 3e+27 exploded (> 10 x the initial 2.3)'
        >>> why = rule.reason(train_loss=2.3, val_loss=2.3, score=0.11, best=0.85,
        ...                   initial_loss=2.3, chance=0.1, ideal=1.0, epochs_at_chance=3)
        >>> why.split(" (")[0]
        'validation score back at chance for 3 epochs'
    """

    loss_factor: float = 10.0
    chance_margin: float = 0.02
    learned: float = 0.25
    chance_epochs: int = 3

    def __post_init__(self) -> None:
        owner = "DivergenceRule"
        check_range(owner, "loss_factor", self.loss_factor, 1.0, low_closed=False, allow_inf=True)
        check_range(owner, "chance_margin", self.chance_margin, 0.0, 1.0)
        check_range(owner, "learned", self.learned, 0.0, 1.0, low_closed=False)
        check_range(owner, "chance_epochs", self.chance_epochs, 1, integer=True)

    def at_chance(self, score: float, best: float, chance: float, ideal: float) -> bool:
        """Whether an epoch counts toward rule 3: at chance, after the run had learned."""
        span = ideal - chance
        if not (math.isfinite(span) and span != 0 and math.isfinite(best)):
            return False
        return (
            (best - chance) / span >= self.learned
            and math.isfinite(score)
            and (score - chance) / span <= self.chance_margin
        )

    def reason(
        self,
        *,
        train_loss: float,
        val_loss: float,
        score: float,
        best: float,
        initial_loss: float,
        chance: float,
        ideal: float,
        epochs_at_chance: int = 1,
    ) -> str | None:
        """Why an epoch diverged, in words; ``None`` when it did not.

        Args:
            train_loss: The epoch's mean training loss.
            val_loss: The validation loss after the epoch.
            score: The validation score (the metric) after the epoch.
            best: The best validation score of the run before this epoch (NaN if none).
            initial_loss: The validation loss of the initial weights (NaN: rule 2 is off).
            chance: The metric's chance score (NaN: rule 3 is off).
            ideal: The metric's ideal score (NaN: rule 3 is off).
            epochs_at_chance: Epochs in a row, this one included, that were ``at_chance``.
        """
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            return "non-finite loss"
        if math.isfinite(initial_loss) and train_loss > self.loss_factor * initial_loss:
            return (
                f"training loss {train_loss:.3g} exploded "
                f"(> {self.loss_factor:g} x the initial {initial_loss:.3g})"
            )
        if epochs_at_chance >= self.chance_epochs and self.at_chance(score, best, chance, ideal):
            return (
                f"validation score back at chance for {epochs_at_chance} epochs "
                f"({score:.4g}, chance {chance:.4g}) after reaching {best:.4g}"
            )
        return None


class DivergenceMonitor:
    """Applies a ``DivergenceRule`` to one trajectory, epoch after epoch.

    It measures the initial validation loss and the metric's chance score of ``trainer`` when
    built (one evaluation; the trainer's weights and random streams are untouched), then
    ``check(...)`` is called with each epoch's losses and validation score.

    Args:
        trainer: The trainer, on its initial weights.
        rule: The rule (default ``DivergenceRule()``).
        initial_loss: The initial validation loss when it is known (a resumed run): then
            nothing is evaluated.

    Example:
        >>> import hpo
        >>> monitor = DivergenceMonitor(hpo.testing.boring_task().build_trainer())
        >>> monitor.check(train_loss=1.5, val_loss=1.4, score=0.6) is None
        True
        >>> monitor.check(train_loss=float("nan"), val_loss=float("nan"), score=float("nan"))
        'non-finite loss'
    """

    def __init__(
        self,
        trainer: Trainer,
        rule: DivergenceRule | None = None,
        *,
        initial_loss: float | None = None,
    ) -> None:
        metric = trainer.metric
        self.rule = DivergenceRule() if rule is None else rule
        self.initial_loss = trainer.evaluate().loss if initial_loss is None else initial_loss
        self.chance = metric.chance_score(trainer.data.targets("val"))
        self.ideal = math.nan if metric.ideal is None else metric.ideal
        self.maximize = metric.maximize
        self.best = math.nan
        self.epochs_at_chance = 0

    def state_dict(self) -> dict[str, float | int]:
        """The monitor's memory (the initial loss, the best score, the epochs at chance)."""
        return {
            "initial_loss": self.initial_loss,
            "best": self.best,
            "epochs_at_chance": self.epochs_at_chance,
        }

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        """Continue from a ``state_dict()`` (a resumed run)."""
        self.initial_loss = float(state["initial_loss"])
        self.best = float(state["best"])
        self.epochs_at_chance = int(state["epochs_at_chance"])

    def reset(self) -> None:
        """Forget the best score seen (a new trajectory from the same initial weights)."""
        self.best = math.nan
        self.epochs_at_chance = 0

    def check(self, *, train_loss: float, val_loss: float, score: float) -> str | None:
        """The reason this epoch diverged, or ``None``; a sound epoch updates the best score
        seen."""
        at_chance = self.rule.at_chance(score, self.best, self.chance, self.ideal)
        self.epochs_at_chance = self.epochs_at_chance + 1 if at_chance else 0
        why = self.rule.reason(
            train_loss=train_loss,
            val_loss=val_loss,
            score=score,
            best=self.best,
            initial_loss=self.initial_loss,
            chance=self.chance,
            ideal=self.ideal,
            epochs_at_chance=self.epochs_at_chance,
        )
        if why is None and math.isfinite(score):
            signed = score if self.maximize else -score
            if math.isnan(self.best) or signed > (self.best if self.maximize else -self.best):
                self.best = score
        return why
