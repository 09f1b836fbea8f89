"""The graders of tutorial 12 (CMA-ES, minirso.grading): a right answer passes, a stub is "not
attempted", and each plausible wrong answer below is rejected with an AssertionError. The right
answers are also checked against minirso.gradient_free.cmaes (the notebook's package code).
"""
import math

import numpy as np
import pytest

from minirso.gradient_free.cmaes import CMAES, cma_parameters, expected_norm, log_weights
from minirso.grading import grade


# --- right answers -------------------------------------------------------------------------------
def recombination_weights(popsize):
    mu = popsize // 2
    w = math.log((popsize + 1) / 2) - np.log(np.arange(1, mu + 1))
    w /= w.sum()
    return w, 1 / np.sum(w**2)


def path_update(ps, step, cs, mueff):
    return (1 - cs) * ps + math.sqrt(cs * (2 - cs) * mueff) * step


def sigma_update(sigma, ps, cs, ds):
    n = len(ps)
    chi = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
    return sigma * math.exp(cs / ds * (np.linalg.norm(ps) / chi - 1))


def sigma_update_exact_chi(sigma, ps, cs, ds):
    n = len(ps)
    chi = math.sqrt(2) * math.exp(math.lgamma((n + 1) / 2) - math.lgamma(n / 2))
    return sigma * math.exp(cs / ds * (np.linalg.norm(ps) / chi - 1))


RIGHT = {"recombination_weights": [recombination_weights], "path_update": [path_update],
         "sigma_update": [sigma_update, sigma_update_exact_chi]}
#: The graders this file exercises with right, stub and wrong answers (tests/test_exercises.py checks
#: that the files together cover every grader in minirso.grading.GRADERS).
COVERED = tuple(RIGHT)


# --- plausible wrong answers ---------------------------------------------------------------------
def _weights_equal(popsize):
    mu = popsize // 2
    return np.full(mu, 1 / mu), float(mu)


def _weights_unnormalised(popsize):
    w, mueff = recombination_weights(popsize)
    return w * (math.log((popsize + 1) / 2) - np.log(np.arange(1, popsize // 2 + 1))).sum(), mueff


def _weights_of_everyone(popsize):  # every point gets a weight, the worse half zero or negative weights
    w = math.log((popsize + 1) / 2) - np.log(np.arange(1, popsize + 1))
    w = np.maximum(w, 0) / np.maximum(w, 0).sum()
    return w, 1 / np.sum(w**2)


def _weights_linear(popsize):
    mu = popsize // 2
    w = np.arange(mu, 0, -1, dtype=float)
    w /= w.sum()
    return w, 1 / np.sum(w**2)


def _mueff_is_mu(popsize):
    w, _ = recombination_weights(popsize)
    return w, float(len(w))


def _mueff_inverse_sum(popsize):
    w, _ = recombination_weights(popsize)
    return w, 1 / np.sum(w)


def _mueff_sum_of_squares(popsize):
    w, _ = recombination_weights(popsize)
    return w, np.sum(w**2)


def _path_without_mueff(ps, step, cs, mueff):
    return (1 - cs) * ps + math.sqrt(cs * (2 - cs)) * step


def _path_with_cs(ps, step, cs, mueff):
    return (1 - cs) * ps + cs * math.sqrt(mueff) * step


def _path_no_decay(ps, step, cs, mueff):
    return ps + math.sqrt(cs * (2 - cs) * mueff) * step


def _path_in_place(ps, step, cs, mueff):
    ps *= 1 - cs
    ps += math.sqrt(cs * (2 - cs) * mueff) * step
    return ps


def _sigma_sqrt_n(sigma, ps, cs, ds):
    return sigma * math.exp(cs / ds * (np.linalg.norm(ps) / math.sqrt(len(ps)) - 1))


def _sigma_squared_length(sigma, ps, cs, ds):  # a real variant (pycma's CSA_squared), not the tutorial's
    return sigma * math.exp(cs / ds / 2 * (ps @ ps / len(ps) - 1))


def _sigma_no_minus_one(sigma, ps, cs, ds):
    return sigma * math.exp(cs / ds * np.linalg.norm(ps) / expected_norm(len(ps)))


def _sigma_wrong_sign(sigma, ps, cs, ds):
    return sigma * math.exp(cs / ds * (1 - np.linalg.norm(ps) / expected_norm(len(ps))))


def _sigma_no_damping(sigma, ps, cs, ds):
    return sigma * math.exp(cs * (np.linalg.norm(ps) / expected_norm(len(ps)) - 1))


def _sigma_linear(sigma, ps, cs, ds):
    return sigma * (1 + cs / ds * (np.linalg.norm(ps) / expected_norm(len(ps)) - 1))


WRONG = {
    "recombination_weights": [_weights_equal, _weights_unnormalised, _weights_of_everyone, _weights_linear,
                              _mueff_is_mu, _mueff_inverse_sum, _mueff_sum_of_squares],
    "path_update": [_path_without_mueff, _path_with_cs, _path_no_decay, _path_in_place],
    "sigma_update": [_sigma_sqrt_n, _sigma_squared_length, _sigma_no_minus_one, _sigma_wrong_sign,
                     _sigma_no_damping, _sigma_linear],
}


@pytest.mark.parametrize("name, function", [(n, f) for n, fs in RIGHT.items() for f in fs],
                         ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_right_answers_pass(name, function):
    assert grade(name, function) is True


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_stubs_are_not_attempted(name, capsys):
    def stub(*args):
        raise NotImplementedError

    assert grade(name, stub) is False
    assert "not attempted" in capsys.readouterr().out


@pytest.mark.parametrize("name, function", [(n, f) for n, fs in WRONG.items() for f in fs],
                         ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_wrong_answers_fail(name, function):
    with pytest.raises(AssertionError):
        grade(name, function)


def test_right_answers_agree_with_the_package():
    for lam in (6, 10, 31):
        w, mueff = recombination_weights(lam)
        ours, ours_mueff = log_weights(lam)
        np.testing.assert_allclose(w, ours, rtol=1e-14)
        assert math.isclose(mueff, ours_mueff, rel_tol=1e-14)
    es = CMAES(np.ones(6), 0.5, np.random.default_rng(0))
    X = es.ask()
    ps, sigma = es.ps.copy(), es.sigma
    mean = es.mean.copy()
    values = [float(x @ x) for x in X]
    es.tell(X, values)
    y_w = (es.mean - mean) / sigma  # c_m = 1; C = I, so C^(-1/2) y_w = y_w
    p = cma_parameters(6)
    new_ps = path_update(ps, y_w, p["cs"], p["mueff"])
    np.testing.assert_allclose(new_ps, es.ps, rtol=1e-12)
    assert math.isclose(sigma_update(sigma, new_ps, p["cs"], p["ds"]), es.sigma, rel_tol=1e-13)
