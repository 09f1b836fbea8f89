"""The graders of tutorial 13 (population strategies; minirso.grading): a right answer passes, a stub is
"not attempted", and each plausible wrong answer below is rejected with an AssertionError that says why."""
import math

import numpy as np
import pytest

from minirso.grading import GRADERS, grade
from exercise_checks import grader_checks


# --- right answers -------------------------------------------------------------------------------
def centred_ranks(values):
    values = np.asarray(values)
    ranks = np.empty(len(values))
    ranks[np.argsort(values)] = np.arange(len(values))
    return ranks / (len(values) - 1) - 0.5


def pgpe_sigma_gradient(loss_plus, loss_minus, eps, sigma, baseline):
    return ((loss_plus + loss_minus) / 2 - baseline) * (eps ** 2 - sigma ** 2) / sigma


def snes_utilities(population):
    raw = [max(0.0, math.log(population / 2 + 1) - math.log(k)) for k in range(1, population + 1)]
    return np.array(raw) / sum(raw) - 1 / population


RIGHT = {"centred_ranks": centred_ranks, "pgpe_sigma_gradient": pgpe_sigma_gradient, "snes_utilities": snes_utilities}
#: The graders this file exercises with right, stub and wrong answers (tests/test_exercises.py checks
#: that the files together cover every grader in minirso.grading.GRADERS).
COVERED = tuple(RIGHT)


# --- plausible wrong answers ---------------------------------------------------------------------
def ranks_reversed(values):  # the highest loss gets -0.5
    return -centred_ranks(values)


def ranks_not_centred(values):  # in [0, 1]
    return centred_ranks(values) + 0.5


def ranks_not_scaled(values):  # integers around zero
    return centred_ranks(values) * (len(values) - 1)


def ranks_standardised(values):  # z-scores instead of ranks
    values = np.asarray(values, dtype=float)
    return (values - values.mean()) / (values.std() * 2 * math.sqrt(3))


def ranks_argsort(values):  # the classic slip: argsort gives the order, not the ranks
    return np.argsort(values) / (len(values) - 1) - 0.5


def sigma_likelihood_ratio(loss_plus, loss_minus, eps, sigma, baseline):  # the plain REINFORCE score
    return ((loss_plus + loss_minus) / 2 - baseline) * (eps ** 2 - sigma ** 2) / sigma ** 3


def sigma_no_baseline(loss_plus, loss_minus, eps, sigma, baseline):
    return (loss_plus + loss_minus) / 2 * (eps ** 2 - sigma ** 2) / sigma


def sigma_difference(loss_plus, loss_minus, eps, sigma, baseline):  # the mean's weight instead of sigma's
    return (loss_plus - loss_minus) / 2 * (eps ** 2 - sigma ** 2) / sigma


def sigma_not_squared(loss_plus, loss_minus, eps, sigma, baseline):
    return ((loss_plus + loss_minus) / 2 - baseline) * (np.abs(eps) - sigma) / sigma


def utilities_not_shifted(population):  # sums to one
    return snes_utilities(population) + 1 / population


def utilities_reversed(population):
    return snes_utilities(population)[::-1]


def utilities_linear(population):  # centred linear ranks instead of log-rank utilities
    return -(np.arange(population) / (population - 1) - 0.5)


WRONG = [
    ("centred_ranks", ranks_reversed, "reversed"),
    ("centred_ranks", ranks_not_centred, "centre and scale"),
    ("centred_ranks", ranks_not_scaled, "centre and scale"),
    ("centred_ranks", ranks_standardised, "not standardised values"),
    ("centred_ranks", ranks_argsort, "expected centred ranks"),
    ("pgpe_sigma_gradient", sigma_likelihood_ratio, "divides by sigma once"),
    ("pgpe_sigma_gradient", sigma_no_baseline, "baseline"),
    ("pgpe_sigma_gradient", sigma_difference, "not its difference"),
    ("pgpe_sigma_gradient", sigma_not_squared, "expected"),
    ("snes_utilities", utilities_not_shifted, "sum to zero"),
    ("snes_utilities", utilities_reversed, "reversed"),
    ("snes_utilities", utilities_linear, "expected"),
]

NAMES = list(RIGHT)


def test_these_are_the_graders_of_tutorial_13():
    assert set(NAMES) <= set(GRADERS) and {w[0] for w in WRONG} == set(NAMES)


test_right_answer_passes, test_stub_is_not_attempted, test_wrong_answer_is_rejected = grader_checks(RIGHT, WRONG)


def test_the_package_answers_pass():
    """minirso's own centred_ranks and snes_utilities are right answers too."""
    from minirso.gradient_free import centred_ranks as package_ranks
    from minirso.gradient_free import snes_utilities as package_utilities
    assert grade("centred_ranks", package_ranks) and grade("snes_utilities", package_utilities)
