"""How much of an RSO run is left: the work of each sweep, for the progress bar and the log's ETA.

Trials of different arrays cost very differently (a conv 1 weight of the paper network runs the
whole network three times per trial, a dense weight only the logits), and every sweep begins
with a pass over the whole training set that no trial count sees: on the paper network at batch
5000 the 160 dense trials take a second or two, the sweep's setup pass half a minute. So

- a sweep's *modelled work* is its setup pass (every training image through the network once)
  plus its trials, each weighted by the cost model's multiply-adds and a per-trial overhead;
- a sweep already run (in an earlier round, or earlier in a resumed run) is expected to take what
  it took last time: its duration comes from the cumulative ``wall_time`` of the history records;
- a sweep not yet run is expected to take its modelled work at the seconds per modelled
  multiply-add of the sweeps run so far.

From the second round on every estimate is a measurement; in the first round the cost model
only decides how the sweeps still to come compare with those already run.
"""
from .cost import forward_macs, trial_macs
from .strategies import sweep_trials

# A trial also pays Python and NumPy call overhead, about what 1e6 multiply-adds take on a CPU:
# it dominates the cheapest trials (dense weights, batch-norm scalars of a small network).
TRIAL_OVERHEAD_MACS = 10**6


def trial_work(rso):
    """The modelled work of one trial of each sweep of the plan: multiply-adds plus the overhead."""
    cfg = rso.config
    return [TRIAL_OVERHEAD_MACS + trial_macs(rso.model, cfg.evaluator, p.ref.layer, cfg.batch_size) for p in rso.plan]


def setup_work(rso):
    """The modelled work of a sweep's setup: the training images through the whole network once."""
    return len(rso.x_train) * forward_macs(rso.model)


def sweep_work(rso):
    """The modelled work of each sweep of the plan: its setup and its trials."""
    setup = setup_work(rso)
    return [setup + sweep_trials(rso.config, rso.model.param(p.ref).shape) * w
            for p, w in zip(rso.plan, trial_work(rso))]


def measured_sweeps(history):
    """{sweep label: seconds} of each sweep's latest run, from the history's cumulative wall_time."""
    seconds, before = {}, 0.0
    for record in history:
        if record.get("type") == "layer":
            seconds[record["layer"]] = record["wall_time"] - before
        if "wall_time" in record:
            before = record["wall_time"]
    return seconds


def sweep_seconds(rso, work=None):
    """Expected seconds of each sweep of the plan (measured where run before, else modelled);
    None before any sweep has been run."""
    work = sweep_work(rso) if work is None else work
    seen = measured_sweeps(rso.history)
    labels = [p.label for p in rso.plan]
    known = [(seen[label], w) for label, w in zip(labels, work) if label in seen]
    if not known:
        return None
    rate = sum(s for s, _ in known) / max(sum(w for _, w in known), 1)
    return [seen[label] if label in seen else w * rate for label, w in zip(labels, work)]


def seconds_left(rso):
    """Expected seconds of training left after the sweeps done so far (None before the first)."""
    seconds = sweep_seconds(rso)
    if seconds is None:
        return None
    return sum(seconds[rso.position:]) + (rso.config.rounds - rso.round - 1) * sum(seconds)
