"""``BaseStrategy``: the config plumbing that every strategy shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import optuna

    from hpo._budget import Budget
    from hpo._callbacks import Callback
    from hpo._history import History
    from trainers import Trainer


class BaseStrategy:
    """Optional base class of strategies: builds and validates the config.

    A subclass sets ``name`` and ``config_class`` (a frozen dataclass) and implements ``run``.
    It is constructed from a config object or from the config's fields as keyword arguments::

        Constant(ConstantConfig(lr=0.1)) == Constant(lr=0.1)

    Raises:
        TypeError: Both a config and keyword arguments, a config of the wrong class, or an
            unknown keyword argument.
        ValueError: The config rejects a value.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    #: Whether ``run`` marks its epoch boundaries with ``rec.checkpoint(...)`` and continues
    #: from ``rec.resumed``: then ``hpo.run(..., checkpoint_dir=...)`` can save and resume it.
    checkpointing: ClassVar[bool] = False

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        cls = self.config_class
        if config is not None and kwargs:
            raise TypeError(
                f"{type(self).__name__}: pass either a {cls.__name__} or its fields as keyword "
                f"arguments, not both (got config and {sorted(kwargs)})."
            )
        if config is None:
            fields = set(cls.__dataclass_fields__)
            unknown = set(kwargs) - fields
            if unknown:
                raise TypeError(
                    f"{type(self).__name__} got unknown option(s) {sorted(unknown)}; "
                    f"{cls.__name__} has {sorted(fields)}."
                )
            config = cls(**kwargs)
        elif not isinstance(config, cls):
            raise TypeError(
                f"{type(self).__name__}: `config` must be a {cls.__name__}, "
                f"but got {type(config).__name__}."
            )
        self.config = config

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in asdict(self.config).items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config == self.config  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.config))

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        raise NotImplementedError

    def resolved_config(self, trainer: Trainer) -> dict[str, Any]:
        """The config as it runs on ``trainer``: what MLflow's params and the History show.

        Defaults that depend on the task are filled in (``lr=None`` becomes the optimizer's
        lr); a strategy with more of them (Hyperdyn's relative lr range, SGD-SA's set of lrs)
        overrides this.
        """
        if not is_dataclass(self.config):
            return {}
        out = asdict(self.config)  # type: ignore[arg-type]
        if "lr" in out and out["lr"] is None:
            out["lr"] = trainer.lr
        return out

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> BaseStrategy:
        """Draw this strategy's own hyperparameters from an Optuna trial (its search space).

        ``hpo study --strategy NAME`` and ``hpo.objective(task, Strategy.suggest)`` use it.

        Raises:
            NotImplementedError: The strategy declares no search space.
        """
        raise NotImplementedError(f"{cls.__name__} declares no Optuna search space.")
