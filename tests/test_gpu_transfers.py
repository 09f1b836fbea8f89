"""RSO's trial loop moves no more data between host and device than it must (on the CuPy stand-in).

On a GPU every host<->device copy costs a round trip and every read back waits for the queued
kernels; these counts come from tests/fake_cupy.py, which runs everywhere (no GPU needed).
"""
import collections
import sys

import numpy as np
import pytest

import fake_cupy
from minirso import conv_bn_net, he_normal_
from minirso.rso import RSO
from minirso.rso.fast import IncrementalEvaluator


@pytest.fixture
def counted(monkeypatch):
    """Per call of the incremental evaluator's losses/set_value: (copies to the device, reads to the host) by kind."""
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy.make())
    ledger = fake_cupy.LEDGER
    ledger.reset()
    calls = collections.defaultdict(list)

    def count(name):
        original = getattr(IncrementalEvaluator, name)

        def wrapper(self, *args, **kwargs):
            to_device, to_host = collections.Counter(ledger.to_device), collections.Counter(ledger.to_host)
            result = original(self, *args, **kwargs)
            calls[name].append((ledger.to_device - to_device, ledger.to_host - to_host, self.s.is_bn))
            return result
        monkeypatch.setattr(IncrementalEvaluator, name, wrapper)

    count("losses")
    count("set_value")
    rng = np.random.default_rng(0)
    model = he_normal_(conv_bn_net([3, 4], pool_after={0}, input_shape=(1, 12, 12)), rng).to("cupy")
    x, y = rng.standard_normal((64, 1, 12, 12)).astype(np.float32), rng.integers(0, 10, 64)
    data = type("Data", (), {})()
    data.x_train, data.y_train, data.x_test, data.y_test = x, y, x[:32], y[:32]
    RSO(model, data, seed=0, batch_size=32, rounds=1, evaluator="incremental", progress=False, stats_images=64).run()
    return calls


def test_a_trial_copies_its_two_candidates_in_one_transfer_and_reads_nothing_back(counted):
    assert len(counted["losses"]) > 100
    for to_device, to_host, _ in counted["losses"]:
        assert to_device["asarray"] == 1 and not to_host  # the losses are read back by the optimizer, once


def test_keeping_a_batchnorm_value_reads_gamma_and_beta_back_once(counted):
    kept_bn = [to_host for _, to_host, is_bn in counted["set_value"] if is_bn]
    assert kept_bn and all(sum(to_host.values()) == 1 for to_host in kept_bn)
    assert all(not to_host for _, to_host, is_bn in counted["set_value"] if not is_bn)
