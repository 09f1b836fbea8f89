"""The quick preset's accuracy against wall time: `python -m minirso.train` as a user runs it.

Runs the default training command (RSO, quick preset, CPU) into a run directory, then prints
test accuracy after every round with the training wall time, the total time, and writes
accuracy against wall time as a PNG (the issue's target: >= 97% within 10 minutes on 2 cores).

    python benchmarks/quick_preset.py [--out runs/quick-bench] [--data-dir DIR] [--plot PNG]
"""
import argparse
import json
import os
import platform
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("runs", f"quick-bench-{time.strftime('%Y%m%d-%H%M%S')}"))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--plot", default=None, help="PNG path (default: OUT/accuracy_vs_time.png)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more arguments for minirso.train")
    args = p.parse_args()

    from minirso import train
    argv = ["--out", args.out, "--no-progress", *args.extra]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    t0 = time.perf_counter()
    code = train.main(argv)
    total = time.perf_counter() - t0
    if code != 0:
        sys.exit(code)
    rounds = [json.loads(line) for line in open(os.path.join(args.out, "metrics.jsonl"))]
    rounds = [r for r in rounds if r["type"] == "round"]
    print(f"\nquick preset on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'round':>5} {'test acc':>9} {'train loss':>10} {'train s':>8}")
    for r in rounds:
        print(f"{r['round']:>5} {r['test_accuracy']:>9.4f} {r['train_loss']:>10.4f} {r['wall_time']:>8.1f}")
    reached = [r for r in rounds if r["test_accuracy"] >= 0.97]
    first = f"round {reached[0]['round']} after {reached[0]['wall_time']:.0f} s of training" if reached else "not reached"
    print(f"final test accuracy {rounds[-1]['test_accuracy']:.4f}; training {rounds[-1]['wall_time']:.0f} s, "
          f"whole command (data, evaluation, checkpoints) {total:.0f} s; 97% reached: {first}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["wall_time"] / 60 for r in rounds], [100 * r["test_accuracy"] for r in rounds], "o-", label="RSO, quick preset")
    ax.axhline(97, color="grey", ls="--", label="97% target")
    ax.axvline(10, color="grey", ls=":", label="10 minutes")
    ax.set_xlabel("training wall time (minutes)")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.set_title("minirso quick preset: accuracy against time (2 CPU cores)")
    ax.legend()
    ax.grid(alpha=0.3)
    path = args.plot or os.path.join(args.out, "accuracy_vs_time.png")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
