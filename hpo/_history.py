"""``History``: what a strategy did, epoch by epoch, and why.

Every epoch records the task's metric on the training pass and on the validation split
(``train_score``, ``val_score``: accuracy by default, a fraction in [0, 1]; printed tables show
it in percent) with its direction (``History.maximize``). ``history.column("val_acc")`` (or
``"val_mse"``...: ``val_`` + the metric's key) reads the score under its own name, as MLflow
logs it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("running", "finished", "diverged", "failed", "pruned", "interrupted")


@dataclass(frozen=True)
class Decision:
    """One decision a strategy took.

    Attributes:
        epoch: The epoch the decision was taken at (decisions at the end of epoch ``t`` carry
            ``t``; a decision before the first epoch carries 0).
        lr: The learning rate chosen (or tried).
        accepted: Whether the candidate was taken (e.g. Hyperdyn kept the BO suggestion, a
            PBT member exploited another, SGD-SA accepted a step).
        reason: Why, in words a user can read in a log.
        details: Numbers behind the decision (EI, keep-probability, ...).
    """

    epoch: int
    lr: float
    accepted: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class EpochRecord:
    """The state of a run after one epoch of its kept trajectory.

    Attributes:
        epoch: Epochs of the kept trajectory so far (1 after the first).
        lr: Mean lr of this epoch's steps on the kept trajectory.
        lr_min: Smallest lr used this epoch.
        lr_max: Largest lr used this epoch.
        train_loss: Mean training loss over the epoch's minibatches.
        train_score: The metric over the epoch's training pass (accuracy by default).
        val_loss: Validation loss of the weights at the end of the epoch.
        val_score: The metric on the validation split (accuracy by default, a fraction).
        steps: Optimizer steps of the kept trajectory so far.
        examples: Examples of the kept trajectory so far.
        spent_steps: All optimizer steps spent so far, discarded work included.
        spent_examples: All examples spent so far.
        wall_time: Seconds since the run started, everything included.
        decisions: The decisions taken during or at the end of this epoch.
        metrics: Strategy-specific signals (``bo_ei``, ``acceptance_rate``, ...).
    """

    epoch: int
    lr: float
    lr_min: float
    lr_max: float
    train_loss: float
    train_score: float
    val_loss: float
    val_score: float
    steps: int
    examples: int
    spent_steps: int
    spent_examples: int
    wall_time: float
    decisions: list[Decision] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        """True when the training or validation loss is not finite."""
        return not (math.isfinite(self.train_loss) and math.isfinite(self.val_loss))


@dataclass(eq=False)
class History:
    """Everything a strategy's run produced, as plain data (JSON round-trips).

    Attributes:
        strategy: The strategy's registered name.
        config: The strategy's config as a dict.
        task: The task's params (filled in by ``hpo.run``).
        records: One ``EpochRecord`` per epoch of the kept trajectory.
        decisions: Decisions taken before the first epoch (e.g. Hyperdyn's random start).
        status: One of ``running``, ``finished``, ``diverged``, ``failed``, ``pruned``,
            ``interrupted``.
        diverged_epoch: The epoch at which the run diverged, if it did.
        diverged_reason: Why it counts as diverged (``hpo.DivergenceRule``): a non-finite
            loss, a loss that exploded, or accuracy back at chance after the run had learned.
        error: The exception's text when the run failed.
        test_loss: Test loss of the final weights.
        test_score: Test score (the metric) of the final weights.
        best_epoch: The epoch with the best validation score (earliest on ties).
        best_test_loss: Test loss of the weights of ``best_epoch``.
        best_test_score: Test score of the weights of ``best_epoch``.
        info: Free-form strategy output (PBT lineage, ensemble accuracies, ...).
        metric: The key of the task's metric (``acc``, ``mse``...): ``column("val_" + metric)``
            and the MLflow metric ``val_<metric>`` are the validation score.
        maximize: Whether a higher score is better.

    Example:
        >>> h = History(strategy="constant", config={"lr": 0.1})
        >>> History.from_json(h.to_json()) == h
        True
    """

    strategy: str
    config: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)
    records: list[EpochRecord] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    status: str = "running"
    diverged_epoch: int | None = None
    diverged_reason: str | None = None
    error: str | None = None
    test_loss: float = math.nan
    test_score: float = math.nan
    best_epoch: int | None = None
    best_test_loss: float = math.nan
    best_test_score: float = math.nan
    info: dict[str, Any] = field(default_factory=dict)
    metric: str = "acc"
    maximize: bool = True
    #: Figures the strategy drew of its run (``name -> matplotlib Figure``); logged as MLflow
    #: artifacts ``plots/<name>.png``, never serialised.
    figures: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __eq__(self, other: object) -> bool:
        # Compared as serialised data so that NaN fields (no test score yet) compare equal.
        if not isinstance(other, History):
            return NotImplemented
        return self.to_json(sort_keys=True) == other.to_json(sort_keys=True)

    # ---------------------------------------------------------------- views

    def __len__(self) -> int:
        return len(self.records)

    @property
    def epochs(self) -> int:
        """Epochs of the kept trajectory."""
        return len(self.records)

    @property
    def final(self) -> EpochRecord | None:
        """The last epoch's record."""
        return self.records[-1] if self.records else None

    @property
    def best(self) -> EpochRecord | None:
        """The record of ``best_epoch``."""
        return None if self.best_epoch is None else self.records[self.best_epoch - 1]

    def signed(self, score: float) -> float:
        """``score`` when higher is better, else ``-score``: larger always means better."""
        return score if self.maximize else -score

    def is_better(self, a: float, b: float) -> bool:
        """Whether score ``a`` beats ``b`` in the metric's direction (a NaN never does)."""
        return not math.isnan(a) and (math.isnan(b) or self.signed(a) > self.signed(b))

    @property
    def all_decisions(self) -> list[Decision]:
        """Every decision, those before the first epoch first."""
        return [*self.decisions, *(d for r in self.records for d in r.decisions)]

    def column(self, name: str) -> list[Any]:
        """One field (or strategy metric) of every record, e.g. ``history.column("val_acc")``:
        ``train_<key>`` / ``val_<key>`` name the score by the metric's key."""
        name = self._field(name)
        if name in _RECORD_FIELDS:
            return [getattr(r, name) for r in self.records]
        return [r.metrics.get(name, math.nan) for r in self.records]

    def _field(self, name: str) -> str:
        for split in ("train", "val"):
            if name == f"{split}_{self.metric}" and f"{split}_{self.metric}" not in (
                "train_loss",
                "val_loss",
            ):
                return f"{split}_score"
        return name

    def to_frame(self) -> pd.DataFrame:
        """One row per epoch: the record's fields and its strategy metrics as columns."""
        import pandas as pd

        rows = []
        renamed = {"train_score": f"train_{self.metric}", "val_score": f"val_{self.metric}"}
        for r in self.records:
            row = {
                renamed.get(f, f): getattr(r, f)
                for f in _RECORD_FIELDS
                if f not in ("decisions", "metrics")
            }
            row.update(r.metrics)
            row["decisions"] = "; ".join(d.reason for d in r.decisions)
            rows.append(row)
        return pd.DataFrame(rows)

    # ---------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        out = asdict(replace(self, figures={}))  # figures are not data: leave them out
        del out["figures"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        data = dict(data)
        for old in ("test_acc", "best_test_acc"):  # written before the task owned its metric
            if old in data:
                data[old.replace("_acc", "_score")] = data.pop(old)
        data["decisions"] = [Decision(**d) for d in data.get("decisions", [])]
        records = []
        for r in data.get("records", []):
            r = dict(r)
            for split in ("train", "val"):  # written before the task owned its metric
                if f"{split}_acc" in r:
                    r[f"{split}_score"] = r.pop(f"{split}_acc")
            r["decisions"] = [Decision(**d) for d in r.get("decisions", [])]
            records.append(EpochRecord(**r))
        data["records"] = records
        return cls(**data)

    def to_json(self, **kwargs: Any) -> str:
        """JSON text (NaN and infinities are written as JavaScript does: ``NaN``/``Infinity``)."""
        return json.dumps(self.to_dict(), default=_json_default, **kwargs)

    @classmethod
    def from_json(cls, text: str) -> History:
        return cls.from_dict(json.loads(text))


_RECORD_FIELDS = tuple(f.name for f in fields(EpochRecord))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    return str(obj)
