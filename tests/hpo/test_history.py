from __future__ import annotations

import math

import pytest

import hpo
from hpo import Decision, EpochRecord, History


def record(epoch: int, val_acc: float, **kw) -> EpochRecord:
    base = dict(
        epoch=epoch,
        lr=0.1,
        lr_min=0.1,
        lr_max=0.1,
        train_loss=1.0,
        train_score=0.5,
        val_loss=1.0,
        val_score=val_acc,
        steps=10 * epoch,
        examples=100 * epoch,
        spent_steps=20 * epoch,
        spent_examples=200 * epoch,
        wall_time=float(epoch),
    )
    base.update(kw)
    return EpochRecord(**base)


@pytest.fixture
def history() -> History:
    h = History(strategy="x", config={"lr": 0.1, "milestones": (0.3, 0.7)})
    h.decisions.append(Decision(0, 0.1, True, "random start"))
    h.records = [
        record(1, 0.5, decisions=[Decision(1, 0.2, False, "kept 0.1", {"p": 0.4})]),
        record(2, 0.7, metrics={"bo_ei": 0.01}),
        record(3, math.nan, train_loss=math.inf, val_loss=math.nan),
    ]
    h.status, h.diverged_epoch, h.best_epoch = "diverged", 3, 2
    return h


def test_json_round_trip_keeps_nan_and_inf(history):
    again = History.from_json(history.to_json())
    assert again == history
    assert math.isinf(again.records[2].train_loss) and math.isnan(again.records[2].val_score)
    assert again.records[0].decisions[0].details == {"p": 0.4}


def test_columns_and_views(history):
    assert history.column("val_acc")[:2] == [0.5, 0.7]
    assert history.column("bo_ei")[1] == 0.01 and math.isnan(history.column("bo_ei")[0])
    assert history.best.epoch == 2 and history.final.epoch == 3 and len(history) == 3
    assert [d.reason for d in history.all_decisions] == ["random start", "kept 0.1"]
    assert history.records[2].diverged and not history.records[1].diverged


def test_to_frame_has_one_row_per_epoch(history):
    frame = history.to_frame()
    assert list(frame["epoch"]) == [1, 2, 3]
    assert "bo_ei" in frame.columns and frame.loc[0, "decisions"] == "kept 0.1"


def test_plot_history_draws_accuracy_and_lr(history, tmp_path):
    fig = hpo.plot_history(history)
    path = tmp_path / "h.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000
    assert [ax.get_ylabel() for ax in fig.axes] == ["accuracy (%)", "learning rate"]
