"""The ETA of a redirected run's log lines and of the progress bar: measured sweep times, modelled work otherwise.
"""

import pytest

from minirso import train
from minirso.nets import tiny_mnist_net
from minirso.rso import RSO



def _modelled_sweeps(rso):
    """Each sweep's modelled work, written out: every training image through the whole network
    once (the sweep's setup), plus its trials at the cost model's multiply-adds and the overhead."""
    from minirso.rso.cost import forward_macs, trial_macs
    from minirso.rso.eta import TRIAL_OVERHEAD_MACS
    model, bsz = rso.model, rso.config.batch_size
    setup = len(rso.x_train) * forward_macs(model)
    work = [TRIAL_OVERHEAD_MACS + trial_macs(model, "incremental", p.ref.layer, bsz) for p in rso.plan]
    return setup, work, [setup + model.param(p.ref).size * w for p, w in zip(rso.plan, work)]


def _layer_record(rso, k, rnd, wall_time):
    return {"type": "layer", "round": rnd, "layer": rso.plan[k].label, "wall_time": wall_time}


def test_eta_weighs_sweeps_by_their_setup_and_trials(data):
    """Round 1: the sweeps to come are estimated from the cost model, scaled by the time the sweeps
    run so far took. Each sweep's setup pass counts: on the paper network the cost model without
    it put the first sweep (160 dense trials, 31 s) at 1/140,000 of a round and printed eta=84666h."""
    rso = RSO(tiny_mnist_net(0), data, batch_size=100, rounds=2, progress=False)
    setup, work, cost = _modelled_sweeps(rso)
    rso.position, rso.counters["wall_time"] = 1, 1.0  # the first sweep (dense weights) took 1 s
    rso.history.append(_layer_record(rso, 0, 1, 1.0))
    run = train.Run.__new__(train.Run)
    eta = run._eta(rso, {"type": "layer"})
    assert eta == pytest.approx((sum(cost[1:]) + sum(cost)) / cost[0])
    trials = [rso.model.param(p.ref).size for p in rso.plan]
    assert eta != pytest.approx((sum(trials[1:]) + sum(trials)) / trials[0], rel=0.05)  # not a count of trials
    assert run._eta(rso, {"type": "round"}) is None

    rso.progress = True  # the terminal's bar counts the same work, a sweep's setup when the sweep starts
    bar = rso.make_bar()
    try:
        assert bar.total == 2 * sum(cost) and bar.n == cost[0] and bar.trial_work == work
        rso.bar = bar
        rso.start_sweep(rso.plan[1])
        assert bar.n == cost[0] + setup
    finally:
        rso.bar = None
        bar.close()


def test_eta_uses_each_sweeps_measured_time_once_it_has_run(data):
    """From round 2 on (or after --resume, whose history holds the earlier rounds) a sweep is expected
    to take what it took last time; sweeps not run yet stay modelled at the measured rate."""
    rso = RSO(tiny_mnist_net(0), data, batch_size=100, rounds=4, progress=False)
    n = len(rso.plan)
    assert n >= 3
    first = [float(k + 1) for k in range(n)]  # round 1: sweep k took k + 1 seconds
    clock, history = 0.0, []
    for k in range(n):
        clock += first[k]
        history.append(_layer_record(rso, k, 1, clock))
    history.append({"type": "round", "round": 1, "wall_time": clock})
    clock += 10.0  # round 2's first sweep took 10 s
    history.append(_layer_record(rso, 0, 2, clock))
    rso.history, rso.round, rso.position = history, 1, 1
    latest = [10.0] + first[1:]
    assert rso_eta(rso) == pytest.approx(sum(latest[1:]) + 2 * sum(latest))

    # a history without the last sweeps (a run resumed after a crash in round 1): those are modelled
    _, _, cost = _modelled_sweeps(rso)
    rso.history, rso.round, rso.position = history[:2], 0, 2
    rate = (first[0] + first[1]) / (cost[0] + cost[1])
    expected = [first[0], first[1]] + [c * rate for c in cost[2:]]
    assert rso_eta(rso) == pytest.approx(sum(expected[2:]) + 3 * sum(expected))


def rso_eta(rso):
    from minirso.rso.eta import seconds_left
    return seconds_left(rso)


def test_eta_counts_the_paper_networks_setup_pass():
    """The paper network at batch 5000 on all 60,000 images: its first sweep (160 dense trials) is a
    small but not a negligible part of a round. Measured on 2026-12-02 (2 threads, results/paper-rso):
    31.4 s, against a round of 5,156 s (benchmarks/vs_torch.py --config paper the same day)."""
    from types import SimpleNamespace
    from minirso.nets import paper_mnist_net
    from minirso.rso import RSOConfig
    from minirso.rso.eta import sweep_work
    from minirso.rso.plan import search_plan
    model = paper_mnist_net(seed=0)
    rso = SimpleNamespace(model=model, config=RSOConfig.from_dict({"batch_size": 5000}), plan=search_plan(model),
                          x_train=range(60000))
    work = sweep_work(rso)
    assert rso.plan[0].label == "21.weight"
    share = work[0] / sum(work)
    measured = 31.4 / 5156.0
    assert measured / 3 < share < measured * 3
