"""``NOSSampler``: the particle GA of neural optimizer search as an Optuna sampler."""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpo._validation import check_range
from strategies._nos._random import random_valid_genome, valid_mutant
from strategies._nos._space import Genome

GENOME_ATTR = "nos:genome"
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class _Candidate:
    number: int
    genome: Genome
    state: TrialState
    fitness: float  # -inf for failures; nan while running


@dataclass
class _GAState:
    init: list[_Candidate] = field(default_factory=list)
    children: dict[tuple[int, int], list[_Candidate]] = field(default_factory=dict)
    particles: list[_Candidate] | None = None  # NOSSampler._particles of this state


class NOSSampler(BaseSampler):
    r"""The particle GA of Morgan & Hougen (2024) as an Optuna sampler: one trial = one
    candidate optimizer.

    **Initialisation**: the first ``init_size`` trials evaluate random genomes that pass the
    integrity check; once they have all finished, the ``population`` best become the particles.
    **Evolution**: at each time-step every particle is mutated ``mutations`` times (mutation
    only: each child is re-mutated until it is well formed, passes the integrity check and is new
    to that particle's history) and its best child becomes its next position, even if worse than
    the parent; particles never compete. A child whose evaluation failed (FAIL, or pruned in the
    lr sweep) is replaced by another, up to ``max_attempts`` x ``mutations`` per time-step.

    The GA's state lives in the study: each trial's genome (JSON) and its role (``init`` /
    ``child``, particle, time-step) are trial system attrs, so a restarted process, a second
    process on the same storage, or ``n_jobs > 1`` threads rebuild the same state and continue
    the same search. A trial's fitness is its value; for a trial pruned in the final run it is
    ``user_attrs["value_so_far"]`` (the paper returns the best validation accuracy of a stopped
    run); failures rank last. When every open slot waits on running trials, the sampler adds one
    more child to a running time-step (or one more random candidate during initialisation)
    instead of blocking.

    Read a trial's genome in the objective with ``genome_of(trial)``. Parameters the objective
    suggests itself are sampled by ``independent_sampler`` (random by default).

    The sampler pickles, as Optuna's own do; a pickled copy has the same random stream, so given
    the same study it makes the same choices as the original.

    Args:
        population: P, the number of particles, >= 1.
        mutations: M, children per particle and time-step, >= 1.
        init_size: Random candidates evaluated first (default 10 P, as the paper).
        max_attempts: Evaluations per child slot before giving up on it (the paper: 4).
        seed: Seeds genome sampling and mutations.
        independent_sampler: For non-genome parameters.

    Example:
        >>> import optuna
        >>> from strategies.nos import NOSSampler, genome_of, sphere_losses
        >>> sampler = NOSSampler(population=2, mutations=2, init_size=3, seed=0)
        >>> study = optuna.create_study(sampler=sampler)
        >>> study.optimize(lambda t: float(sphere_losses(genome_of(t)).min()), n_trials=7)
        >>> len(study.trials), sampler.phase(study)
        (7, 'evolving')
    """

    def __init__(
        self,
        *,
        population: int = 4,
        mutations: int = 3,
        init_size: int | None = None,
        max_attempts: int = 4,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
    ) -> None:
        check_range("NOSSampler", "population", population, 1, integer=True)
        check_range("NOSSampler", "mutations", mutations, 1, integer=True)
        if init_size is not None:
            check_range("NOSSampler", "init_size", init_size, population, integer=True)
        check_range("NOSSampler", "max_attempts", max_attempts, 1, integer=True)
        self.population = population
        self.mutations = mutations
        self.init_size = 10 * population if init_size is None else init_size
        self.max_attempts = max_attempts
        self._rng = np.random.default_rng(seed)
        self._independent = independent_sampler or RandomSampler(seed=seed)
        self._lock = threading.Lock()
        # Genomes parsed from the trials' JSON, by JSON: each rebuild parses only new trials.
        # Genomes are immutable, and get / setdefault on a dict are atomic, so threads (phase()
        # and particles() run outside the lock) may share it.
        self._genomes: dict[str, Genome] = {}
        self.last_overhead: float = 0.0  # seconds the last before_trial took

    # ---------------------------------------------------------------- pickling

    def __getstate__(self) -> dict[str, Any]:
        """The state to pickle: all but the lock (a ``threading.Lock`` cannot be pickled).

        Taken under the lock, with the random stream and the genome cache copied, so that a
        sampler pickled while another thread samples is still a consistent snapshot.
        """
        with self._lock:
            state = self.__dict__.copy()
            state["_rng"] = copy.deepcopy(self._rng)
            state["_genomes"] = dict(self._genomes)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled sampler with a fresh lock."""
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- Optuna's interface

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._independent.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        """Choose this trial's genome from the GA's state and store it in the trial."""
        with self._lock:
            start = time.perf_counter()
            state = self._rebuild(study, exclude=trial.number)
            attrs, genome = self._next(state)
            storage = study._storage
            # The genome goes last: other processes read the trial as part of the GA only once
            # it is there, so they never see a genome without its role, particle and step.
            for key in sorted(attrs, key=lambda k: k == GENOME_ATTR):
                storage.set_trial_system_attr(trial._trial_id, key, attrs[key])
                trial.system_attrs[key] = attrs[key]
            self._genomes.setdefault(attrs[GENOME_ATTR], genome)
            storage.set_trial_user_attr(trial._trial_id, "nos_equation", genome.equation())
            self.last_overhead = time.perf_counter() - start

    # ---------------------------------------------------------------- the GA's state

    def phase(self, study: Study) -> str:
        """``initialising`` until the particles are chosen, then ``evolving``."""
        return "evolving" if self._rebuild(study).particles is not None else "initialising"

    def particles(self, study: Study) -> list[dict[str, Any]]:
        """Each particle's current position and the fitness of every time-step so far.

        Returns:
            One dict per particle: ``position`` (Genome), ``step`` (time-steps completed),
            ``history`` (per completed time-step: the best child's fitness and equation).
        """
        state = self._rebuild(study)
        out = []
        for p in range(self.population):
            s = self._current_step(state, p)
            steps = []
            for step in range(s):
                best = self._best(state.children.get((p, step), []))
                steps.append(
                    {
                        "fitness": best.fitness if best else -math.inf,
                        "equation": best.genome.equation() if best else None,
                    }
                )
            out.append({"position": self._position(state, p, s), "step": s, "history": steps})
        return out

    def _fitness(self, study: Study, t: FrozenTrial) -> float:
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
            value = t.value
        elif t.state == TrialState.PRUNED and isinstance(
            t.user_attrs.get("value_so_far"), (int, float)
        ):
            value = float(t.user_attrs["value_so_far"])
        elif t.state in _FINISHED:
            return -math.inf
        else:
            return math.nan
        return value if study.direction == StudyDirection.MAXIMIZE else -value

    def _rebuild(self, study: Study, exclude: int | None = None) -> _GAState:
        state = _GAState()
        for t in study.get_trials(deepcopy=False):
            attrs = t.system_attrs
            if GENOME_ATTR not in attrs or t.number == exclude:
                continue
            c = _Candidate(
                t.number, self._genome(attrs[GENOME_ATTR]), t.state, self._fitness(study, t)
            )
            if attrs.get("nos:role") == "init":
                state.init.append(c)
            elif "nos:particle" in attrs and "nos:step" in attrs:
                key = (int(attrs["nos:particle"]), int(attrs["nos:step"]))
                state.children.setdefault(key, []).append(c)
        state.init.sort(key=lambda c: c.number)
        state.particles = self._particles(state)
        return state

    def _genome(self, text: str) -> Genome:
        """The genome of a trial's JSON, parsed once per sampler."""
        genome = self._genomes.get(text)
        if genome is None:
            genome = self._genomes.setdefault(text, Genome.from_json(text))
        return genome

    def _particles(self, state: _GAState) -> list[_Candidate] | None:
        first = state.init[: self.init_size]
        if len(first) < self.init_size or any(math.isnan(c.fitness) for c in first):
            return None
        ranked = sorted(first, key=lambda c: (-c.fitness, c.number))
        return ranked[: self.population]

    @staticmethod
    def _best(children: Sequence[_Candidate]) -> _Candidate | None:
        done = [c for c in children if not math.isnan(c.fitness) and c.fitness > -math.inf]
        return max(done, key=lambda c: (c.fitness, -c.number)) if done else None

    def _current_step(self, state: _GAState, p: int) -> int:
        """Particle ``p``'s first time-step that is not complete (its time-steps so far)."""
        s = 0
        while self._step_complete(state, p, s):
            s += 1
        return s

    def _step_complete(self, state: _GAState, p: int, s: int) -> bool:
        children = state.children.get((p, s), [])
        if any(math.isnan(c.fitness) for c in children):
            return False
        usable = sum(c.fitness > -math.inf for c in children)
        return usable >= self.mutations or len(children) >= self.mutations * self.max_attempts

    def _position(self, state: _GAState, p: int, s: int) -> Genome | None:
        particles = state.particles
        if particles is None or p >= len(particles):
            return None
        genome = particles[p].genome
        for step in range(s):
            best = self._best(state.children.get((p, step), []))
            if best is not None:  # the best child, even if worse than the parent
                genome = best.genome
        return genome

    def _history(self, state: _GAState, p: int) -> set[str]:
        particles = state.particles
        seen = {particles[p].genome.equation()} if particles else set()
        for (q, _), children in state.children.items():
            if q == p:
                seen.update(c.genome.equation() for c in children)
        return seen

    def _next(self, state: _GAState) -> tuple[dict[str, Any], Genome]:
        """The next trial's system attrs, and its genome."""
        particles = state.particles
        if particles is None:  # initialisation (or extra random candidates while it finishes)
            genome = random_valid_genome(self._rng)
            attrs = {
                GENOME_ATTR: genome.to_json(),
                "nos:role": "init",
                "nos:index": len(state.init),
            }
            return attrs, genome
        current = [self._current_step(state, p) for p in range(len(particles))]
        open_slots = []
        waiting = []
        for p, s in enumerate(current):
            children = state.children.get((p, s), [])
            usable_or_running = sum(not (c.fitness == -math.inf) for c in children)
            if (
                usable_or_running < self.mutations
                and len(children) < self.mutations * self.max_attempts
            ):
                open_slots.append((s, p))
            else:
                waiting.append((s, p))
        s, p = min(open_slots) if open_slots else min(waiting)  # else: one more child, no block
        parent = self._position(state, p, s)
        assert parent is not None
        child = valid_mutant(parent, self._rng, history=self._history(state, p))
        attrs = {
            GENOME_ATTR: child.to_json(),
            "nos:role": "child",
            "nos:particle": p,
            "nos:step": s,
            "nos:parent": parent.equation(),
        }
        return attrs, child


def genome_of(trial: optuna.trial.BaseTrial) -> Genome:
    """The genome ``NOSSampler`` chose for ``trial``.

    Raises:
        ValueError: The trial was not sampled by a ``NOSSampler``.
    """
    attrs = trial.storage.get_trial_system_attrs(trial._trial_id)  # type: ignore[attr-defined]
    if GENOME_ATTR not in attrs:
        raise ValueError(
            f"Trial {trial.number} has no NOS genome: create the study with a NOSSampler."
        )
    return Genome.from_json(attrs[GENOME_ATTR])
