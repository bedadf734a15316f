from __future__ import annotations

import optuna
import pytest

import hpo
from hpo.testing import StrategyTestSuite
from strategies.nos import NOSEvaluation, NOSPruner, NOSSampler, genome_of, named_genome

optuna.logging.set_verbosity(optuna.logging.WARNING)
SGD = named_genome("sgd").to_json()
ADAM = named_genome("adam").to_json()


class TestNOSEvaluation(StrategyTestSuite):
    @pytest.fixture
    def strategy(self):
        return NOSEvaluation(genome=ADAM, sweep_lrs=(0.03, 0.003), sweep_epochs=1)


def run_trial(boring_data, evaluation: NOSEvaluation, pruner: optuna.pruners.BasePruner):
    study = optuna.create_study(direction="maximize", pruner=pruner)
    objective = hpo.objective(
        hpo.testing.boring_task(epochs=6),
        lambda t: evaluation,
        "val_acc",
        report="train_acc",
        tracking=False,
        data=boring_data,
    )
    study.optimize(objective, n_trials=1)
    return study.trials[0]


def test_the_sweep_picks_the_lr_and_the_final_run_reports_training_accuracy(boring_data):
    evaluation = NOSEvaluation(genome=ADAM, sweep_lrs=(0.03, 0.01, 1e-6), sweep_epochs=2)
    # the boring task's 500 examples: a lower bar than the paper's 25 % after two epochs
    pruner = NOSPruner(sweep_steps=3, sweep_threshold=0.15, final_warmup=4, final_threshold=0.0)
    trial = run_trial(boring_data, evaluation, pruner)
    assert trial.state == optuna.trial.TrialState.COMPLETE
    values = trial.intermediate_values
    assert sorted(values) == list(range(3 + 1 + 6))[:3] + list(range(4, 10))
    sweep = [values[s] for s in range(3)]
    assert sweep[2] < max(sweep[:2])  # 1e-6 learns nothing
    assert trial.value == trial.user_attrs["value_so_far"]


def test_a_candidate_whose_sweep_never_reaches_25_percent_is_pruned(boring_data):
    evaluation = NOSEvaluation(genome=SGD, sweep_lrs=(1e-6, 1e-5), sweep_epochs=1)
    trial = run_trial(boring_data, evaluation, NOSPruner(sweep_steps=2))
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert max(trial.intermediate_values.values()) < 0.25 and len(trial.intermediate_values) == 2


def test_a_final_run_below_the_bar_is_pruned_and_keeps_its_best_score(boring_data):
    evaluation = NOSEvaluation(genome=ADAM, sweep_lrs=(0.03,), sweep_epochs=2)
    pruner = NOSPruner(sweep_steps=1, sweep_threshold=0.15, final_warmup=2, final_threshold=0.99)
    trial = run_trial(boring_data, evaluation, pruner)
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert max(trial.intermediate_values) == 1 + 3  # stopped at the 3rd final epoch
    assert 0.0 < trial.user_attrs["value_so_far"] <= 1.0  # what the GA ranks it by


def test_search_end_to_end_with_the_sampler_and_the_pruner(boring_data):
    sampler = NOSSampler(population=2, mutations=1, init_size=2, seed=0)
    study = optuna.create_study(
        direction="maximize", sampler=sampler, pruner=NOSPruner(sweep_steps=2, final_warmup=1)
    )
    task = hpo.testing.boring_task(epochs=2)
    objective = hpo.objective(
        task,
        lambda t: NOSEvaluation(
            genome=genome_of(t).to_json(), sweep_lrs=(1.0, 0.01), sweep_epochs=1
        ),
        "val_acc",
        report="train_acc",
        tracking=False,
        data=boring_data,
    )
    study.optimize(objective, n_trials=4)
    assert len(study.trials) == 4 and sampler.phase(study) == "evolving"
    assert {t.system_attrs["nos:role"] for t in study.trials} == {"init", "child"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"genome": "{}"}, "`genome` must be a Genome's JSON", id="genome"),
        pytest.param({"sweep_lrs": ()}, "`sweep_lrs` must not be empty", id="empty"),
        pytest.param({"sweep_epochs": 0}, r"`sweep_epochs` must be in \[1, inf\)", id="epochs"),
        pytest.param(
            {"sweep_threshold": 2.0}, r"`sweep_threshold` must be in \[0.0, 1.0\]", id="threshold"
        ),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NOSEvaluation(**{"genome": SGD, **kwargs})
