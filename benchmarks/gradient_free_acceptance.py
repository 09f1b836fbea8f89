"""How often moves are kept: RSO's block variants and (1+1)-ES, with the settings of the first edition of the
gradient-free comparison (docs/gradient_free_results.json: the 1,068-scalar network on MNIST averaged
to 14x14, 10,000 training images, batch 100, a budget of 3,204 loss evaluations).

Prints, per seed: for block="unit", "layer" and "network" (23 rounds of 46 trials) the share of trials
that kept a move, over the run and in its first and last two rounds; for (1+1)-ES (9 rounds of 178
steps) the share per round, its sigma at each round's end (it starts at 0.05) and the round's mean
training loss. No timings. About a minute per seed on one core. The second edition's (1+1)-ES, seed
by seed: benchmarks/gradient_free_es.py.

    python benchmarks/gradient_free_acceptance.py [--seeds 3] [--data-dir DIR]
"""
import argparse
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minirso import RSO, load_mnist  # noqa: E402
from minirso.gradient_free import OnePlusOneES  # noqa: E402
from minirso.nets import comparison_mnist_net, he_normal_  # noqa: E402

BATCH, TRAIN, TEST, STATS, ROUNDS = 100, 10000, 5000, 2000, 23


def bench_net(seed):
    return he_normal_(comparison_mnist_net(), np.random.default_rng(seed))


def bench_data(data_dir):
    return load_mnist(data_dir, download=False).subset(TRAIN, TEST, seed=0).downsampled(2)


def share(records):
    return sum(r["accepted"] for r in records) / sum(r["trials"] for r in records)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--data-dir", default=os.environ.get("MINIRSO_DATA"))
    args = p.parse_args(argv)
    data = bench_data(args.data_dir)
    for seed in range(args.seeds):
        for block in ("unit", "layer", "network"):
            rso = RSO(bench_net(seed), data, seed=seed, rounds=ROUNDS, block=block, evaluator="prefix",
                      batch_size=BATCH, stats_images=STATS, eval_every=0, progress=False)
            rso.run()
            sweeps = [r for r in rso.history if r["type"] == "layer"]
            print(f"seed {seed} block={block:8s} kept {share(sweeps):.1%} of {sum(r['trials'] for r in sweeps)} trials "
                  f"({rso.counters['candidate_evaluations']} evaluations); rounds 1-2: "
                  f"{share([r for r in sweeps if r['round'] <= 2]):.1%}, rounds {ROUNDS - 1}-{ROUNDS}: "
                  f"{share([r for r in sweeps if r['round'] >= ROUNDS - 1]):.1%}", flush=True)
        es = OnePlusOneES(bench_net(seed), data, seed=seed, rounds=9, steps_per_round=1602 // 9, batch_size=BATCH,
                          stats_images=STATS, eval_every=0, progress=False)
        es.run()
        h = es.history
        print(f"seed {seed} (1+1)-ES kept per round {[round(r['accept_rate'], 3) for r in h]}; sigma "
              f"{[round(r['sigma'], 3) for r in h]}; train loss {[round(r['train_loss'], 3) for r in h]} "
              f"({es.counters['candidate_evaluations']} evaluations)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
