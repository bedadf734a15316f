"""``history``: a hand-made History for the table and anytime tests."""

from __future__ import annotations

from hpo import EpochRecord, History


def history(
    accs: list[float],
    *,
    steps_per_epoch: int = 10,
    cost: int = 1,
    start: int = 0,
    status: str = "finished",
    best_test: float = 0.5,
) -> History:
    """One epoch per accuracy (as training and validation accuracy; loss 1 / epoch), of
    ``steps_per_epoch`` steps each; ``cost`` x those steps spent per epoch after ``start`` steps
    spent first (a search paid before its answer). A diverged history diverged at its last
    epoch."""
    records = [
        EpochRecord(
            epoch=e,
            lr=0.1,
            lr_min=0.1,
            lr_max=0.1,
            train_loss=1.0 / e,
            train_score=a,
            val_loss=1.0 / e,
            val_score=a,
            steps=steps_per_epoch * e,
            examples=100 * e,
            spent_steps=start + cost * steps_per_epoch * e,
            spent_examples=cost * 100 * e,
            wall_time=float(e),
        )
        for e, a in enumerate(accs, start=1)
    ]
    h = History(strategy="x", records=records, status=status, best_test_score=best_test)
    if status == "diverged":
        h.diverged_epoch = len(records)
    return h
