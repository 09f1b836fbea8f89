"""The graders of tutorials 10 and 11 (minirso.grading): a right answer passes, a stub is "not
attempted", and each plausible wrong answer below is rejected with an AssertionError.

Grading a student's own file: ``MINIRSO_ANSWERS=answers.py python -m pytest tests/test_exercises.py -k answers``
runs every grader whose function the file defines (the functions are written in the notebooks; a
function is looked up as ``name + "_answer"``, then ``name``).
"""
import importlib.util
import os

import numpy as np
import pytest

from minirso.grading import GRADERS, grade
from exercise_checks import grader_checks


# --- right answers -------------------------------------------------------------------------------

def spsa_estimate(f, x, c, rng):
    delta = rng.choice([-1.0, 1.0], size=len(x))
    return (f(x + c * delta) - f(x - c * delta)) / (2 * c) * delta


def coordinate_estimate(f, x, c, i):
    old = x[i]
    x[i] = old + c
    plus = f(x)
    x[i] = old - c
    minus = f(x)
    x[i] = old
    return (plus - minus) / (2 * c)


def gaussian_second_moment(n, d):
    return (n + d + 1) / n


def compass_poll(f, x, fx, step, decrease=1e-4, shrink=0.5):
    for i in range(len(x)):
        for sign in (1.0, -1.0):
            y = x.copy()
            y[i] += sign * step
            fy = f(y)
            if fy < fx - decrease * step**2:
                return y, fy, step
    return x.copy(), fx, step * shrink


def log_sigma_drift(p, success, failure):
    return p * success - (1 - p) * failure


def crn_difference(loss, x1, x2, n_data, batch_size, rng):
    batch = rng.choice(n_data, size=batch_size, replace=False)
    return loss(x1, batch) - loss(x2, batch)


#: The exercises of notebooks 10 and 11; later notebooks test their graders in their own files
#: (tests/test_exercises_NN.py), though ``test_answers`` below grades every exercise.
NAMES = ("spsa_estimate", "coordinate_estimate", "gaussian_second_moment", "compass_poll", "log_sigma_drift",
         "crn_difference")
RIGHT = {name: globals()[name] for name in NAMES}
#: The graders this file exercises with right, stub and wrong answers (tests/test_exercises.py checks
#: that the files together cover every grader in minirso.grading.GRADERS).
COVERED = tuple(RIGHT)


# --- plausible wrong answers ---------------------------------------------------------------------

def spsa_gaussian(f, x, c, rng):  # Gaussian directions instead of +-1
    delta = rng.standard_normal(len(x))
    return (f(x + c * delta) - f(x - c * delta)) / (2 * c) * delta


def spsa_missing_2c(f, x, c, rng):  # forgets to divide by 2c
    delta = rng.choice([-1.0, 1.0], size=len(x))
    return (f(x + c * delta) - f(x - c * delta)) * delta


def spsa_one_sided(f, x, c, rng):  # forward difference
    delta = rng.choice([-1.0, 1.0], size=len(x))
    return (f(x + c * delta) - f(x)) / c * delta


def spsa_global_random(f, x, c, rng):  # ignores the generator passed in
    delta = np.random.choice([-1.0, 1.0], size=len(x))
    return (f(x + c * delta) - f(x - c * delta)) / (2 * c) * delta


def coordinate_not_restored(f, x, c, i):  # leaves x_i at old - c
    x[i] += c
    plus = f(x)
    x[i] -= 2 * c
    minus = f(x)
    return (plus - minus) / (2 * c)


def coordinate_forward(f, x, c, i):  # one-sided: error c A_ii / 2
    fx = f(x)
    x[i] += c
    plus = f(x)
    x[i] -= c
    return (plus - fx) / c


def coordinate_restored_by_arithmetic_but_one_sided_missing_half(f, x, c, i):  # divides by c, not 2c
    old = x[i]
    x[i] = old + c
    plus = f(x)
    x[i] = old - c
    minus = f(x)
    x[i] = old
    return (plus - minus) / c


def moment_curve(n, d):  # the approximation n + d, not the exact n + d + 1
    return (n + d) / n


def moment_coordinate(n, d):  # the coordinate estimator's d / n
    return d / n


def moment_spsa(n, d):  # the +-1 estimator's n + d - 1
    return (n + d - 1) / n


def compass_simple_decrease(f, x, fx, step, decrease=1e-4, shrink=0.5):
    return compass_poll(f, x, fx, step, 0.0, shrink)


def compass_plus_only(f, x, fx, step, decrease=1e-4, shrink=0.5):
    for i in range(len(x)):
        y = x.copy()
        y[i] += step
        fy = f(y)
        if fy < fx - decrease * step**2:
            return y, fy, step
    return x.copy(), fx, step * shrink


def compass_never_shrinks(f, x, fx, step, decrease=1e-4, shrink=0.5):
    y, fy, _ = compass_poll(f, x, fx, step, decrease, shrink)
    return y, fy, step


def compass_mutates_x(f, x, fx, step, decrease=1e-4, shrink=0.5):
    for i in range(len(x)):
        for sign in (1.0, -1.0):
            x[i] += sign * step
            fy = f(x)
            if fy < fx - decrease * step**2:
                return x, fy, step
            x[i] -= sign * step
    return x, fx, step * shrink


def drift_fixed_fifth(p, success, failure):  # the 1/5 of the default rule, whatever the rates
    return 0.2 * success - 0.8 * failure


def drift_forgets_failures_rate(p, success, failure):
    return p * success - failure


def crn_independent_batches(loss, x1, x2, n_data, batch_size, rng):
    return (loss(x1, rng.choice(n_data, size=batch_size, replace=False))
            - loss(x2, rng.choice(n_data, size=batch_size, replace=False)))


def crn_fixed_batch(loss, x1, x2, n_data, batch_size, rng):  # always the first batch_size examples
    batch = np.arange(batch_size)
    return loss(x1, batch) - loss(x2, batch)


def crn_sign_flipped(loss, x1, x2, n_data, batch_size, rng):
    batch = rng.choice(n_data, size=batch_size, replace=False)
    return loss(x2, batch) - loss(x1, batch)


def crn_with_replacement(loss, x1, x2, n_data, batch_size, rng):
    batch = rng.integers(0, n_data, size=batch_size)
    return loss(x1, batch) - loss(x2, batch)


WRONG = [
    ("spsa_estimate", spsa_gaussian, "entries \\+1 or -1"),
    ("spsa_estimate", spsa_missing_2c, "missing 1/\\(2c\\)"),
    ("spsa_estimate", spsa_one_sided, "central difference"),
    ("spsa_estimate", spsa_global_random, "same seed"),
    ("coordinate_estimate", coordinate_not_restored, "put the old x_i back"),
    ("coordinate_estimate", coordinate_forward, "exact on a quadratic"),
    ("coordinate_estimate", coordinate_restored_by_arithmetic_but_one_sided_missing_half, "exact derivative"),
    ("gaussian_second_moment", moment_curve, "200,000 draws"),
    ("gaussian_second_moment", moment_coordinate, "200,000 draws"),
    ("gaussian_second_moment", moment_spsa, "200,000 draws"),
    ("compass_poll", compass_simple_decrease, "sufficient decrease rejects it"),
    ("compass_poll", compass_plus_only, "poll both signs"),
    ("compass_poll", compass_never_shrinks, "shrunk after a failed poll"),
    ("compass_poll", compass_mutates_x, "changed x"),
    ("log_sigma_drift", drift_fixed_fifth, "simulated steps"),
    ("log_sigma_drift", drift_forgets_failures_rate, "simulated steps"),
    ("crn_difference", crn_independent_batches, "same mini-batch"),
    ("crn_difference", crn_fixed_batch, "two seeds gave the same batch"),
    ("crn_difference", crn_sign_flipped, "return loss\\(x1, batch\\) - loss\\(x2, batch\\)"),
    ("crn_difference", crn_with_replacement, "distinct indices"),
]


test_right_answer_passes, test_stub_is_not_attempted, test_wrong_answer_is_rejected = grader_checks(RIGHT, WRONG)


def test_every_exercise_has_a_wrong_answer():
    assert {w[0] for w in WRONG} == set(NAMES) and set(NAMES) <= set(GRADERS)


def test_the_exercise_files_together_cover_every_grader():
    """Each tests/test_exercises*.py names the graders it tests (COVERED, the keys of its RIGHT answers,
    each of which also has wrong answers there); together they are exactly GRADERS."""
    import test_exercises_12
    import test_exercises_13
    import test_exercises_14
    import test_exercises_15
    modules = (test_exercises_12, test_exercises_13, test_exercises_14, test_exercises_15)
    files = [COVERED] + [module.COVERED for module in modules]
    for covered, module in zip(files[1:], modules):
        assert set(covered) == set(module.WRONG if isinstance(module.WRONG, dict) else [w[0] for w in module.WRONG])
    union = set().union(*files)
    assert sum(len(c) for c in files) == len(union)  # no grader is claimed by two files
    assert union == set(GRADERS)


ANSWERS = os.environ.get("MINIRSO_ANSWERS")


@pytest.mark.skipif(not ANSWERS, reason="set MINIRSO_ANSWERS=path/to/answers.py to grade a student's file")
@pytest.mark.parametrize("name", list(GRADERS))
def test_answers(name):
    spec = importlib.util.spec_from_file_location("answers", ANSWERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    answer = answer_function(module, name)
    if answer is None:
        pytest.skip(f"{ANSWERS} defines neither {name} nor {name}_answer")
    assert grade(name, answer), f"{name} is still a stub"


def answer_function(module, name):
    """The student's function for grader ``name``: ``name + "_answer"`` where the notebook names it so
    (tutorial 13's ``centred_ranks_answer``, whose plain name is the library's function it imports),
    else ``name``; None if the file defines neither."""
    return getattr(module, name + "_answer", None) or getattr(module, name, None)


def test_answer_lookup_prefers_the_answer_suffix():
    """An exported notebook 13 imports the library's centred_ranks and defines centred_ranks_answer: the
    student's function is graded, not the library's; a file with only the plain name is found too."""
    import types
    library, student = object(), object()
    assert answer_function(types.SimpleNamespace(centred_ranks=library, centred_ranks_answer=student),
                           "centred_ranks") is student
    assert answer_function(types.SimpleNamespace(compass_poll=student), "compass_poll") is student
    assert answer_function(types.SimpleNamespace(), "compass_poll") is None


def test_every_notebook_answer_is_found_by_the_grader_lookup():
    """Every function a notebook (or its solution) passes to grade(...) is found under its grader's name."""
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / "tutorials"
    calls = [(p.name, m.group(1), m.group(2)) for p in sorted(root.glob("*.py")) + sorted((root / "solutions").glob("*.py"))
             for m in re.finditer(r'^(?:assert )?grade\("(\w+)", (\w+)\)', p.read_text(), re.M)]
    assert len(calls) >= 10
    for path, name, function in calls:
        assert name in GRADERS, (path, name)
        assert function in (name, name + "_answer"), (path, name, function)
