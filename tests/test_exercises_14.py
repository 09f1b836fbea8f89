"""The graders of tutorial 14, the seed trick (minirso.grading): a right answer passes, a stub is "not
attempted", and each plausible wrong answer below is rejected with an AssertionError saying what is wrong.
"""
import numpy as np
import pytest

from exercise_checks import grader_checks

# --- right answers -------------------------------------------------------------------------------


def mezo_step(perturb, loss, rng, eps, lr):
    seed = int(rng.integers(2**64, dtype=np.uint64))
    perturb(seed, eps)
    plus = loss()
    perturb(seed, -2 * eps)
    minus = loss()
    perturb(seed, eps)
    g = (plus - minus) / (2 * eps)
    perturb(seed, -lr * g)
    return seed, g


def perturb_arrays(arrays, seed, coefficient):
    gen = np.random.default_rng(seed)
    for a in arrays:
        a += coefficient * gen.standard_normal(a.shape)


def replay_run(perturb, trajectory, eps, lr):
    for seed, g in trajectory:
        perturb(seed, eps)
        perturb(seed, -2 * eps)
        perturb(seed, eps)
        perturb(seed, -lr * g)


RIGHT = {"mezo_step": mezo_step, "perturb_arrays": perturb_arrays, "replay_run": replay_run}
#: The graders this file exercises with right, stub and wrong answers (tests/test_exercises.py checks
#: that the files together cover every grader in minirso.grading.GRADERS).
COVERED = tuple(RIGHT)


# --- plausible wrong answers ---------------------------------------------------------------------

def step_new_seed_for_update(perturb, loss, rng, eps, lr):  # z drawn anew for the update
    seed = int(rng.integers(2**63))
    perturb(seed, eps)
    plus = loss()
    perturb(seed, -2 * eps)
    minus = loss()
    perturb(seed, eps)
    g = (plus - minus) / (2 * eps)
    perturb(int(rng.integers(2**63)), -lr * g)
    return seed, g


def step_not_restored(perturb, loss, rng, eps, lr):  # updates from theta - eps z
    seed = int(rng.integers(2**63))
    perturb(seed, eps)
    plus = loss()
    perturb(seed, -2 * eps)
    minus = loss()
    g = (plus - minus) / (2 * eps)
    perturb(seed, -lr * g)
    return seed, g


def step_one_sided(perturb, loss, rng, eps, lr):  # L(theta + eps z) - L(theta), over eps
    seed = int(rng.integers(2**63))
    base = loss()
    perturb(seed, eps)
    plus = loss()
    perturb(seed, -eps)
    g = (plus - base) / eps
    perturb(seed, -lr * g)
    return seed, g


def step_missing_2eps(perturb, loss, rng, eps, lr):
    seed = int(rng.integers(2**63))
    perturb(seed, eps)
    plus = loss()
    perturb(seed, -2 * eps)
    minus = loss()
    perturb(seed, eps)
    g = plus - minus
    perturb(seed, -lr * g)
    return seed, g


def step_fixed_seed(perturb, loss, rng, eps, lr):  # ignores the generator
    return mezo_step(perturb, loss, np.random.default_rng(0), eps, lr)


def step_ascends(perturb, loss, rng, eps, lr):
    seed, g = mezo_step(perturb, loss, rng, eps, 0.0)
    perturb(seed, lr * g)
    return seed, g


def perturb_rademacher(arrays, seed, coefficient):  # +-1 where Gaussian is asked
    gen = np.random.default_rng(seed)
    for a in arrays:
        a += coefficient * (gen.integers(0, 2, size=a.shape) * 2.0 - 1.0)


def perturb_generator_per_array(arrays, seed, coefficient):
    for a in arrays:
        a += coefficient * np.random.default_rng(seed).standard_normal(a.shape)


def perturb_other_seed(arrays, seed, coefficient):
    gen = np.random.default_rng(seed + 1)
    for a in arrays:
        a += coefficient * gen.standard_normal(a.shape)


def perturb_not_in_place(arrays, seed, coefficient):
    gen = np.random.default_rng(seed)
    for i, a in enumerate(arrays):
        arrays[i] = a + coefficient * gen.standard_normal(a.shape)


def replay_updates_only(perturb, trajectory, eps, lr):  # skips the perturb-and-restore cycles
    for seed, g in trajectory:
        perturb(seed, -lr * g)


def replay_cycle_after_update(perturb, trajectory, eps, lr):  # the run's operations, another order
    for seed, g in trajectory:
        perturb(seed, -lr * g)
        perturb(seed, eps)
        perturb(seed, -2 * eps)
        perturb(seed, eps)


def replay_wrong_sign(perturb, trajectory, eps, lr):
    for seed, g in trajectory:
        perturb(seed, eps)
        perturb(seed, -2 * eps)
        perturb(seed, eps)
        perturb(seed, lr * g)


WRONG = [
    ("mezo_step", step_new_seed_for_update, "one seed"),
    ("mezo_step", step_not_restored, "restore theta"),
    ("mezo_step", step_one_sided, "L\\+ must be taken at theta \\+ eps z"),
    ("mezo_step", step_missing_2eps, "\\(L\\+ - L-\\) / \\(2 eps\\)"),
    ("mezo_step", step_fixed_seed, "three generators gave the same seed"),
    ("mezo_step", step_ascends, "theta must end at theta - lr g z"),
    ("perturb_arrays", perturb_rademacher, "Gaussian"),
    ("perturb_arrays", perturb_generator_per_array, "ONE generator"),
    ("perturb_arrays", perturb_other_seed, "default_rng\\(seed\\)"),
    ("perturb_arrays", perturb_not_in_place, "in place"),
    ("replay_run", replay_updates_only, "only the drift is missing"),
    ("replay_run", replay_cycle_after_update, "not bit-identical"),
    ("replay_run", replay_wrong_sign, "far from the run's"),
]


test_right_answer_passes, test_stub_is_not_attempted, test_wrong_answer_is_rejected = grader_checks(RIGHT, WRONG)


def test_every_exercise_has_a_wrong_answer():
    assert {w[0] for w in WRONG} == set(RIGHT)

