from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest

from strategies.nos import Genome, NOSPruner, NOSSampler, genome_of, sphere_losses

optuna.logging.set_verbosity(optuna.logging.WARNING)


def cheap_objective(trial: optuna.Trial) -> float:
    """The best sphere loss over the integrity check's lr ladder: lower is better."""
    losses = sphere_losses(genome_of(trial)).numpy()
    finite = losses[np.isfinite(losses)]
    return float(finite.min()) if finite.size else 1e9


def test_the_sampler_drives_a_study_and_the_particles_improve():
    sampler = NOSSampler(population=3, mutations=3, init_size=6, seed=0)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(cheap_objective, n_trials=6 + 3 * 3 * 3)
    assert sampler.phase(study) == "evolving"
    particles = sampler.particles(study)
    assert all(p["step"] >= 2 for p in particles)
    init = sorted(t.value for t in study.trials if t.system_attrs["nos:role"] == "init")[:3]
    last = [p["history"][p["step"] - 1]["fitness"] for p in particles]
    # fitness is -value for a minimised study; each particle's latest best child is at least
    # as good as the initial particles on average
    assert np.mean([-f for f in last]) <= np.mean(init) + 1e-12
    roles = [t.system_attrs["nos:role"] for t in study.trials]
    assert roles[:6] == ["init"] * 6 and set(roles[6:]) == {"child"}
    for t in study.trials:
        assert t.user_attrs["nos_equation"] == genome_of_frozen(t).equation()


def genome_of_frozen(t: optuna.trial.FrozenTrial) -> Genome:
    return Genome.from_json(t.system_attrs["nos:genome"])


def test_children_are_new_to_their_particle_and_descend_from_its_position():
    sampler = NOSSampler(population=2, mutations=2, init_size=4, seed=1)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(cheap_objective, n_trials=4 + 2 * 2 * 3)
    by_particle: dict[int, list[str]] = {}
    for t in study.trials:
        if t.system_attrs["nos:role"] == "child":
            by_particle.setdefault(t.system_attrs["nos:particle"], []).append(
                genome_of_frozen(t).equation()
            )
    for eqs in by_particle.values():
        assert len(eqs) == len(set(eqs))


def test_a_study_resumed_from_sqlite_continues_the_ga(tmp_path):
    storage = f"sqlite:///{tmp_path / 'nos.db'}"
    script = textwrap.dedent(f"""
        import optuna
        from tests.strategies.nos.test_sampler import cheap_objective
        from strategies.nos import NOSSampler
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(study_name="ga", storage="{storage}", direction="minimize",
                                    load_if_exists=True,
                                    sampler=NOSSampler(population=2, mutations=2, init_size=4,
                                                       seed=int(sys.argv[1])))
        study.optimize(cheap_objective, n_trials=8)
    """)
    script = "import sys\n" + script
    root = Path(__file__).resolve().parents[3]
    first = subprocess.run(
        [sys.executable, "-c", script, "0"], capture_output=True, text=True, cwd=root
    )
    assert first.returncode == 0, first.stderr
    before = optuna.load_study(study_name="ga", storage=storage)
    sampler = NOSSampler(population=2, mutations=2, init_size=4, seed=5)
    positions = [p["position"] for p in sampler.particles(before)]
    steps_before = [p["step"] for p in sampler.particles(before)]
    # a fresh process, another seed: it rebuilds the GA from the trials and continues
    second = subprocess.run(
        [sys.executable, "-c", script, "5"], capture_output=True, text=True, cwd=root
    )
    assert second.returncode == 0, second.stderr
    after = optuna.load_study(study_name="ga", storage=storage)
    roles = [t.system_attrs["nos:role"] for t in after.trials]
    assert len(roles) == 16 and roles.count("init") == 4  # no second initialisation
    particles = sampler.particles(after)
    assert sum(p["step"] for p in particles) > sum(steps_before)  # the GA went on
    # the particles started from the same initial positions, chosen in the first process
    assert [sampler._particles(sampler._rebuild(after))[i].genome for i in range(2)] == [
        sampler._particles(sampler._rebuild(before))[i].genome for i in range(2)
    ]
    assert all(p is not None for p in positions)


def test_threads_share_the_sampler():
    sampler = NOSSampler(population=2, mutations=2, init_size=4, seed=0)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(cheap_objective, n_trials=14, n_jobs=2)
    assert len(study.trials) == 14
    assert all("nos:genome" in t.system_attrs for t in study.trials)
    assert sampler.phase(study) == "evolving"


def test_other_parameters_go_to_the_independent_sampler_and_reseed_changes_the_stream():
    sampler = NOSSampler(population=1, mutations=1, init_size=2, seed=0)
    study = optuna.create_study(sampler=sampler)

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        return lr + 0.0 * cheap_objective(trial)

    study.optimize(objective, n_trials=3)
    assert all(1e-3 <= t.params["lr"] <= 1.0 for t in study.trials)
    a = NOSSampler(seed=3)
    b = NOSSampler(seed=3)
    b.reseed_rng()
    assert a._rng.random() != b._rng.random()


def test_genome_of_needs_a_nos_trial():
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match="has no NOS genome: create the study with a NOSSampler"):
        genome_of(trial)


@pytest.mark.parametrize(
    ("values", "pruned"),
    [
        pytest.param({0: 0.1, 1: 0.2, 2: 0.24}, True, id="sweep-all-below-25"),
        pytest.param({0: 0.1, 1: 0.3, 2: 0.2}, False, id="sweep-one-above"),
        pytest.param({0: 0.1, 1: 0.3}, False, id="sweep-not-over"),
        pytest.param({0: 0.3, 1: 0.3, 2: 0.3, 3: 0.2, 4: 0.3, 5: 0.3}, False, id="final-warmup"),
        pytest.param(
            {0: 0.3, 1: 0.3, 2: 0.3, 3: 0.5, 4: 0.5, 5: 0.5, 6: 0.39}, True, id="final-below-40"
        ),
        pytest.param(
            {0: 0.3, 1: 0.3, 2: 0.3, 3: 0.5, 4: 0.5, 5: 0.5, 6: 0.41}, False, id="final-above"
        ),
    ],
)
def test_nos_pruner_uses_the_papers_thresholds(values, pruned):
    pruner = NOSPruner(sweep_steps=3, final_warmup=2)
    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, intermediate_values=values
    )
    assert pruner.prune(optuna.create_study(), trial) is pruned


def test_bad_sampler_arguments():
    with pytest.raises(ValueError, match=r"NOSSampler.`population` must be in \[1, inf\)"):
        NOSSampler(population=0)
    with pytest.raises(ValueError, match=r"NOSSampler.`init_size` must be in \[4, inf\)"):
        NOSSampler(population=4, init_size=2)


def test_two_processes_search_one_storage_at_once(tmp_path):
    storage = f"journal:{tmp_path / 'nos.log'}"
    script = textwrap.dedent(f"""
        import optuna
        from hpo._optuna import make_storage
        from tests.strategies.nos.test_sampler import cheap_objective
        from strategies.nos import NOSSampler
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(study_name="ga", storage=make_storage("{storage}"),
                                    direction="minimize", load_if_exists=True,
                                    sampler=NOSSampler(population=2, mutations=2, init_size=3))
        study.optimize(cheap_objective, n_trials=7)
    """)
    root = Path(__file__).resolve().parents[3]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], cwd=root, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    from hpo._optuna import make_storage

    study = optuna.load_study(study_name="ga", storage=make_storage(storage))
    assert len(study.trials) == 14
    assert all("nos:genome" in t.system_attrs for t in study.trials)
    roles = [t.system_attrs["nos:role"] for t in study.trials]
    assert roles.count("init") >= 3 and roles.count("child") >= 1


class _RecordingStorage(optuna.storages.InMemoryStorage):
    """A real in-memory storage that remembers the order system attrs are written in."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[int, str]] = []

    def set_trial_system_attr(self, trial_id: int, key: str, value) -> None:
        self.writes.append((trial_id, key))
        super().set_trial_system_attr(trial_id, key, value)


def test_the_genome_is_written_last_so_other_processes_never_see_half_a_trial():
    # Another process reads the study between two writes of before_trial; it counts a trial
    # as part of the GA once the genome is there, so everything else must be there already.
    storage = _RecordingStorage()
    study = optuna.create_study(
        storage=storage,
        direction="minimize",
        sampler=NOSSampler(population=2, mutations=2, init_size=3, seed=0),
    )
    study.optimize(cheap_objective, n_trials=9)
    per_trial: dict[int, list[str]] = {}
    for trial_id, key in storage.writes:
        if key.startswith("nos:"):
            per_trial.setdefault(trial_id, []).append(key)
    assert len(per_trial) == 9
    for keys in per_trial.values():
        assert keys[-1] == "nos:genome" and len(keys) >= 3


def test_a_trial_whose_attributes_are_still_being_written_is_skipped():
    sampler = NOSSampler(population=2, mutations=2, init_size=3, seed=0)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(cheap_objective, n_trials=5)
    # what other processes have written so far: a role without a genome, and (the order of
    # older versions) a genome without its role and particle
    storage = study._storage
    role_only = storage.create_new_trial(study._study_id)
    storage.set_trial_system_attr(role_only, "nos:role", "child")
    genome_only = storage.create_new_trial(study._study_id)
    genome = study.trials[0].system_attrs["nos:genome"]
    storage.set_trial_system_attr(genome_only, "nos:genome", genome)
    study.optimize(cheap_objective, n_trials=4)
    assert sampler.phase(study) == "evolving"
    assert len(study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == 9


# ---------------------------------------------------------------------------------------------
# Pickling
# ---------------------------------------------------------------------------------------------


def _new_genomes(study: optuna.Study, after: int) -> list[str]:
    return [t.system_attrs["nos:genome"] for t in study.trials[after:]]


@pytest.mark.parametrize(
    ("done", "phase"),
    [
        pytest.param(2, "initialising", id="initialising"),
        pytest.param(5, "evolving", id="evolving"),
    ],
)
@pytest.mark.parametrize("copier", [pickle.loads, copy.deepcopy], ids=["pickle", "deepcopy"])
def test_a_copied_sampler_makes_the_same_choices_as_the_original(done, phase, copier):
    sampler = NOSSampler(population=2, mutations=2, init_size=3, seed=0)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(cheap_objective, n_trials=done)
    assert sampler.phase(study) == phase
    clone = copier(pickle.dumps(sampler) if copier is pickle.loads else sampler)
    assert clone is not sampler and clone._lock is not sampler._lock
    assert not clone._lock.locked() and not sampler._lock.locked()
    # the same study state, continued by the original and by the copy
    twin = optuna.create_study(direction="minimize", sampler=clone)
    twin.add_trials(study.trials)
    study.optimize(cheap_objective, n_trials=4)
    twin.optimize(cheap_objective, n_trials=4)
    assert _new_genomes(twin, done) == _new_genomes(study, done)
    assert [t.value for t in twin.trials] == [t.value for t in study.trials]
    assert clone.phase(twin) == sampler.phase(study) == "evolving"


def test_an_unpickled_sampler_continues_the_same_study():
    sampler = NOSSampler(population=2, mutations=2, init_size=3, seed=1)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(cheap_objective, n_trials=4)
    study.sampler = pickle.loads(pickle.dumps(sampler))
    study.optimize(cheap_objective, n_trials=4, n_jobs=2)  # the new lock guards two threads
    assert len(study.trials) == 8 and study.sampler.phase(study) == "evolving"
    roles = [t.system_attrs["nos:role"] for t in study.trials]
    assert roles.count("init") == 3 and roles.count("child") >= 4
    # the GA's state came from the study: the copy sees the particles the original chose
    assert [p["position"] for p in study.sampler.particles(study)][0] is not None
    # and pickling left the original working
    study.sampler = sampler
    study.optimize(cheap_objective, n_trials=1)
    assert len(study.trials) == 9


def test_a_pickle_holds_no_lock_and_an_unseeded_sampler_pickles_too():
    sampler = NOSSampler(population=1, mutations=1, init_size=1)
    assert "_lock" not in sampler.__getstate__()
    clone = pickle.loads(pickle.dumps(sampler))
    assert (clone.population, clone.mutations, clone.init_size, clone.max_attempts) == (1, 1, 1, 4)
    study = optuna.create_study(sampler=clone)
    study.optimize(cheap_objective, n_trials=2)
    assert len(study.trials) == 2
