"""The graders of tutorial 15, scaling (minirso.grading): a right answer passes, a stub is "not
attempted", and each plausible wrong answer below is rejected with an AssertionError saying what is wrong.
"""
import numpy as np

from exercise_checks import grader_checks

# --- right answers -------------------------------------------------------------------------------


def combine(a, b):
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), m2a + m2b + delta * delta * (na * nb / n)


def round_time(n_machines, compute_s, round_trips, latency_s, per_machine_s):
    return compute_s / n_machines + round_trips * (latency_s + per_machine_s * n_machines)


RIGHT = {"combine": combine, "round_time": round_time}
#: The graders this file exercises with right, stub and wrong answers (tests/test_exercises.py checks
#: that the files together cover every grader in minirso.grading.GRADERS).
COVERED = tuple(RIGHT)


# --- plausible wrong answers ---------------------------------------------------------------------

def combine_averaged_variances(a, b):  # the mean of the shards' variances, times the count
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    return n, (na * ma + nb * mb) / n, n * (m2a / na + m2b / nb) / 2


def combine_m2_added(a, b):  # the spread between the means forgotten
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    return n, (na * ma + nb * mb) / n, m2a + m2b


def combine_naive_sums(a, b):  # through sums of x and x^2: exact on paper, cancels at a large mean
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    s = na * ma + nb * mb
    q = (m2a + na * ma * ma) + (m2b + nb * mb * mb)
    return n, s / n, q - s * s / n


def combine_unweighted_mean(a, b):  # the means averaged without their counts
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    delta = mb - ma
    return n, (ma + mb) / 2, m2a + m2b + delta * delta * na * nb / n


def combine_missing_count_weight(a, b):  # delta^2 without n_a n_b / n
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * nb / n, m2a + m2b + delta * delta


def combine_ddof_one(a, b):  # sample variances (ddof=1) pooled, returned as var * n
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    delta = mb - ma
    var = (m2a + m2b + delta * delta * na * nb / n) / (n - 1)
    return n, ma + delta * nb / n, var * n


def combine_m2_added_in_place(a, b):  # the spread forgotten, computed in place in a's arrays
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    ma *= na / n
    ma += mb * (nb / n)
    m2a += m2b
    return n, ma, m2a


def combine_count_wrong(a, b):
    n, mean, m2 = combine(a, b)
    return n - 1, mean, m2


def round_time_latency_divided(n_machines, compute_s, round_trips, latency_s, per_machine_s):
    return (compute_s + round_trips * (latency_s + per_machine_s * n_machines)) / n_machines


def round_time_compute_not_divided(n_machines, compute_s, round_trips, latency_s, per_machine_s):
    return compute_s + round_trips * (latency_s + per_machine_s * n_machines)


def round_time_per_machine_constant(n_machines, compute_s, round_trips, latency_s, per_machine_s):
    return compute_s / n_machines + round_trips * (latency_s + per_machine_s)


def round_time_b_from_the_second_machine(n_machines, compute_s, round_trips, latency_s, per_machine_s):
    return compute_s / n_machines + round_trips * (latency_s + per_machine_s * (n_machines - 1))


def round_time_one_trip(n_machines, compute_s, round_trips, latency_s, per_machine_s):  # round trips forgotten
    return compute_s / n_machines + latency_s + per_machine_s * n_machines


WRONG = [
    ("combine", combine_averaged_variances, "spread between the shards' means"),
    ("combine", combine_m2_added, "spread between the shards' means"),
    ("combine", combine_naive_sums, "cancel"),
    ("combine", combine_unweighted_mean, "weight the shards' means by their counts"),
    ("combine", combine_missing_count_weight, "count weights"),
    ("combine", combine_ddof_one, "ddof"),
    ("combine", combine_m2_added_in_place, "spread between the shards' means"),  # diagnosed on the grader's own copies
    ("combine", combine_count_wrong, "count of the union"),
    ("round_time", round_time_latency_divided, "round trips are not divided by N"),
    ("round_time", round_time_compute_not_divided, "compute is shared"),
    ("round_time", round_time_per_machine_constant, "per-machine cost grows with N"),
    ("round_time", round_time_b_from_the_second_machine, r"a \+ b n, not a \+ b \(n - 1\)"),
    ("round_time", round_time_one_trip, "expected"),
]


test_right_answer_passes, test_stub_is_not_attempted, test_wrong_answer_is_rejected = grader_checks(RIGHT, WRONG)


def test_every_exercise_has_a_wrong_answer():
    assert {w[0] for w in WRONG} == set(RIGHT)


def test_right_combine_on_arrays_matches_the_pooled_data():
    """The grader's oracle is the exact formula; here the right answer against NumPy on the pooled data."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((9, 4)) + 1.0, rng.standard_normal((4, 4)) - 2.0
    triple = lambda v: (len(v), v.mean(axis=0), ((v - v.mean(axis=0)) ** 2).sum(axis=0))  # noqa: E731
    n, mean, m2 = combine(triple(a), triple(b))
    both = np.concatenate([a, b])
    assert n == 13
    np.testing.assert_allclose(mean, both.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(m2 / n, both.var(axis=0), rtol=1e-13)


def test_naive_sums_are_right_at_mean_zero_only():
    """The naive-sums wrong answer is rejected for its cancellation, not for a formula error: at mean 0
    it agrees with the right answer."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(30), rng.standard_normal(20) + 1.0
    triple = lambda v: (len(v), v.mean(), float(((v - v.mean()) ** 2).sum()))  # noqa: E731
    assert np.allclose(combine_naive_sums(triple(a), triple(b)), combine(triple(a), triple(b)), rtol=1e-13)
    a, b = a + 1e5, b + 1e5
    assert not np.allclose(combine_naive_sums(triple(a), triple(b))[2], combine(triple(a), triple(b))[2], rtol=1e-8)
