"""Peak memory of one optimizer step: MeZO in place against SPSA on a stored vector (tracemalloc).

For each network and batch size, the peak of memory allocated during one call beyond what was
allocated when it started (minirso.gradient_free.mezo.step_memory, which tutorial 14 uses too:
traced_peak after one warm-up call; NumPy's arrays are traced):

- inference: one forward pass of the batch (what any step needs at least);
- backprop: a forward pass that keeps its activations, then the backward pass (an SGD step's memory);
- MeZO: one in-place step (2 forward passes, z regenerated one array at a time);
- SPSA: one step of minirso's SPSA (a float64 vector u of all searched scalars, a +-1 vector and the
  perturbed point held while the model evaluates it).

Networks: the quick preset's (small_mnist_net, 10,352 searched scalars), the paper's
(paper_mnist_net, 12,016) and a wide member of the paper's family (six 3x3 convs of 128 channels,
741,248), so that the parameters outweigh a small batch's activations. The images are random
(memory does not depend on their values). Also the bytes that describe a run: 16 per step for
MeZO's (seed, g) pairs against 4 d for one float32 copy of the weights.

    python benchmarks/mezo_memory.py                  # batches 1 and 100
    python benchmarks/mezo_memory.py --batch-sizes 1  # faster
"""
import argparse

import common  # benchmarks/common.py (scripts run as `python benchmarks/...`)

THREADS = common.apply_threads()

import numpy as np  # noqa: E402

from minirso.gradient_free import MeZO  # noqa: E402
from minirso.gradient_free.mezo import BYTES_PER_ESTIMATE, step_memory  # noqa: E402
from minirso.nets import conv_bn_net, he_normal_, paper_mnist_net, small_mnist_net  # noqa: E402


def wide_net(seed=0):
    return he_normal_(conv_bn_net([128] * 6, pool_after={1, 3}, name="wide_net"), np.random.default_rng(seed))


NETS = {"quick (small_mnist_net)": small_mnist_net, "paper (paper_mnist_net)": paper_mnist_net, "wide (6 x 128 channels)": wide_net}


class Data:
    def __init__(self, n, seed=0):
        rng = np.random.default_rng(seed)
        self.x_train = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
        self.y_train = rng.integers(0, 10, n)
        self.x_test, self.y_test = self.x_train[:10], self.y_train[:10]


def measure(make_net, batch):
    data = Data(batch)
    r = step_memory(make_net, data, data.x_train, data.y_train)
    return {**r, "weights": 4 * r["d"]}


def kib(n):
    return f"{n / 1024:,.0f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-sizes", default="1,100", help="comma-separated batch sizes (default 1,100)")
    p.add_argument("--threads", type=int, help="BLAS threads (read before NumPy is imported)")
    args = p.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    print("peak memory allocated during one call, beyond what it started with (tracemalloc), KiB")
    print(f"| network | d | weights (4d) | largest array | batch | inference | backprop | MeZO step | SPSA step "
          f"| MeZO - inference | SPSA - inference |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, make_net in NETS.items():
        for batch in batches:
            r = measure(make_net, batch)
            print(f"| {name} | {r['d']:,} | {kib(r['weights'])} | {kib(r['largest'])} | {batch} | {kib(r['inference'])} "
                  f"| {kib(r['backprop'])} | {kib(r['MeZO'])} | {kib(r['SPSA'])} | {kib(r['MeZO'] - r['inference'])} "
                  f"| {kib(r['SPSA'] - r['inference'])} |", flush=True)
    print(f"\na run as the seed trick stores it: the initial weights (or their seed) plus {BYTES_PER_ESTIMATE} bytes per "
          "estimate (a uint64 seed, a float64 g); one float32 copy of the weights is 4 d bytes:")
    for name, make_net in NETS.items():
        d = sum(make_net(0).param(r).size for r in MeZO(make_net(0), Data(1), batch_size=1, progress=False).refs)
        print(f"  {name}: 4 d = {4 * d:,} bytes = {4 * d // BYTES_PER_ESTIMATE:,} steps of (seed, g)")


if __name__ == "__main__":
    main()
