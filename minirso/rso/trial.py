"""One RSO trial, on one screen: perturb w_j, evaluate the three candidates, keep the best.

Algorithm 1 (Tripathi & Singh 2020), for one scalar w_j of the searched array::

    dw ~ N(0, sigma_d)                          # drawn for the whole sweep up front (RSO._sweep)
    candidates = (w_j, w_j + dw, w_j - dw)      # candidates()
    losses = F(W with each candidate)           # an evaluator (evaluators.py; the fast one: fast/)
    keep candidates[decide(losses)]             # the lowest loss; a tie keeps w_j

A :class:`Sweep` is one pass over a searched array: its mini-batches, its sigma, what it kept
and the record it leaves. Every sweep (``RSO._sweep``, the block and parallel variants of
strategies.py, the benchmarks) decides through :func:`decide` and counts through :meth:`Sweep.keep`.
"""
import numpy as np

from ..errors import NonFiniteError


def candidates(current, dw, dtype):
    """Algorithm 1's candidates for w_j: (w_j, w_j + dw, w_j - dw), rounded to the weights' dtype."""
    return current, dtype(current + dw), dtype(current - dw)


def decide(losses, where="this trial"):
    """Index of the kept candidate: the lowest loss, the first of equal ones (a tie keeps the current value).

    A NaN or infinite loss raises :class:`NonFiniteError` (``np.argmin`` would pick a NaN);
    ``where`` (a string, or a function that returns one: built only then) names the trial.
    """
    if not np.isfinite(losses).all():
        where = where() if callable(where) else where
        raise NonFiniteError(f"RSO stopped: the candidate losses of {where} are {[float(v) for v in losses]} "
                             "(not finite); no weight of this trial was kept")
    return int(np.argmin(losses))


class Sweep:
    """One sweep over a searched array: what a sweep function sees of the run.

    ``batches``: (n_batches, batch_size) image indices, trial t uses row ``t % n_batches``;
    ``sigma``: the annealed sigma_d; ``first``: the first trial to run (after a resume inside the
    sweep); ``totals``: {"accepted", "loss"} so far (saved in checkpoints); ``log``: a list that
    receives every trial's losses and choice, or None.
    """

    def __init__(self, run, searched, batches, sigma, first, totals, log=None, bar=None):
        self._run = run
        self.searched, self.label, self.batches, self.sigma = searched, searched.label, batches, sigma
        self.first, self.totals, self.log, self.bar = first, totals, log, bar
        self.config, self.model, self.rng, self.plan = run.config, run.model, run.rng, run.plan
        self.x, self.y = run.x_train, run.y_train
        self.round, self.position = run.round, run.position  # round c - 1 and the array's place in the plan

    @property
    def stop_requested(self):
        return self._run.stop_requested

    def keep(self, losses, trial, index=None, batch=None, dw=None):
        """Decide among the losses of (current, plus, minus) of trial number ``trial`` (1-based), count
        the decision, log it when asked; returns the choice."""
        choice = decide(losses, lambda: f"round {self.round + 1}, {self.label}, trial {trial}")
        self.totals["loss"] += float(losses[choice])
        self.totals["accepted"] += int(choice > 0)
        if self.log is not None:
            index = tuple(int(i) for i in index) if isinstance(index, tuple) else index
            self.log.append({"layer": self.label, "index": index, "batch": int(batch),
                             "dw": None if dw is None else float(dw), "losses": [float(v) for v in losses],
                             "choice": choice})
        return choice

    def tick(self, trials=1):
        """Advance the progress bar by ``trials`` trials of this sweep (weighted by their modelled cost)."""
        if self.bar is not None:
            self.bar.update(trials * self.bar.trial_work[self.position])

    def record(self, trials):
        """The sweep's record: its trials, kept changes, sigma and mean kept loss (per image)."""
        acc = self.totals["accepted"]
        return {"type": "layer", "round": self.round + 1, "layer": self.label, "trials": trials,
                "accepted": acc, "accept_rate": acc / trials, "sigma": self.sigma,
                "train_loss": self.totals["loss"] / (trials * self.config.batch_size)}
