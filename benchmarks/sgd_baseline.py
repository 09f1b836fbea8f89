"""The gradient baseline: train the RSO paper's MNIST network with SGD and report test accuracy.

Target (from the issue): the paper network reaches >= 99.0% MNIST test accuracy with SGD.
The defaults are the settings that reach it on a 2-core CPU in under 25 minutes:
6 epochs, batch 128, lr 0.1 with per-step cosine decay to 0, momentum 0.9, L2 weight
decay 5e-4, plain data (no augmentation)::

    python benchmarks/sgd_baseline.py                          # full MNIST, paper network
    python benchmarks/sgd_baseline.py --model small --epochs 2 --train-subset 5000

Prints the machine's float32 sgemm peak and load average first (any time below is only as
good as they are), one line per epoch (test accuracy, train loss, train and evaluation seconds)
and a final line with the accuracy, epochs, total training wall time and the CPU.

``--speed-target SECONDS`` prints whether training took at most that long. The test suite
asserts no wall time; the speed expectation it used to hold (the small network trains 5 epochs
on 3000 images in under 30 s on this project's 2-core CPU) is this run::

    python benchmarks/sgd_baseline.py --model small --train-subset 3000 --epochs 5 \
        --batch-size 64 --lr 0.2 --speed-target 30
"""
import argparse
import os
import sys
import time
import common  # benchmarks/common.py (scripts run as `python benchmarks/...`)

TARGET = 0.99


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate (default 0.1)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4, help="L2 coefficient added to the gradient")
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    p.add_argument("--model", choices=("paper", "small"), default="paper")
    p.add_argument("--train-subset", type=int, default=None, help="train on this many random training images")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: minirso's usual lookup)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the shuffling")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--speed-target", type=float, default=None, metavar="SECONDS",
                   help="print whether training (evaluation excluded) took at most SECONDS")
    p.add_argument("--progress", action="store_true", help="show a progress bar for each epoch")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads (default 1: these small matrix products gain little from threads, and "
                        "OpenBLAS threads slow down several-fold when other jobs share the CPU); 0 keeps the "
                        "library default")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.blas_threads > 0:  # read by the BLAS library when NumPy is first imported: set it before that
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    from minirso import MODELS, load_mnist
    from minirso.backend import get_backend
    from minirso.sgd import SGD, SGDConfig

    config = SGDConfig(lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                       batch_size=args.batch_size, epochs=args.epochs, lr_schedule=args.schedule,
                       seed=args.seed).validate()
    peak, _ = common.sgemm_peak()
    print(f"float32 matmul peak (2048^3 sgemm, median of 5): {peak:.1f} GMAC/s, {common.loadavg()}; "
          f"CPU {common.cpu_description()}", flush=True)
    data = load_mnist(args.data_dir, progress=args.progress)
    if args.train_subset is not None:
        data = data.subset(args.train_subset, None, seed=args.seed)
    model = MODELS[args.model](seed=args.seed)
    if args.backend != "numpy":
        model.to(get_backend(args.backend))
    print(f"SGD baseline: {model.name} ({model.num_params()} parameters), {len(data.y_train)} training / "
          f"{len(data.y_test)} test images, backend {args.backend}", flush=True)
    print(f"settings: epochs={config.epochs} batch_size={config.batch_size} lr={config.lr} "
          f"schedule={config.lr_schedule} momentum={config.momentum} weight_decay={config.weight_decay} "
          f"seed={config.seed} blas_threads={args.blas_threads or 'default'}", flush=True)
    last = {"train": 0.0, "eval": 0.0}

    def report(opt, r):
        acc = "   -   " if r["test_accuracy"] is None else f"{100 * r['test_accuracy']:.2f}%"
        loss = "   -  " if r["test_loss"] is None else f"{r['test_loss']:.4f}"
        train, evaluation = r["wall_time"] - last["train"], r["eval_time"] - last["eval"]
        last.update(train=r["wall_time"], eval=r["eval_time"])
        print(f"epoch {r['epoch']:3d}/{opt.config.epochs}  test_accuracy {acc}  test_loss {loss}  "
              f"train_loss {r['train_loss']:.4f}  train {train:6.1f}s  eval {evaluation:5.1f}s  "
              f"(train so far {r['wall_time']:7.1f}s)", flush=True)

    opt = SGD(model, data, config, callbacks=[report], progress=args.progress)
    start = time.perf_counter()
    history = opt.run()
    total = time.perf_counter() - start
    acc = history[-1]["test_accuracy"]
    print(f"final: test_accuracy {100 * acc:.2f}% after {len(history)} epochs; train wall time "
          f"{opt.counters['wall_time']:.1f}s (+{opt.counters['eval_time']:.1f}s evaluation, "
          f"{total:.1f}s in all); CPU {common.cpu_description()}", flush=True)
    print(f"target >= {100 * TARGET:.1f}%: {'met' if acc >= TARGET else 'NOT met'}", flush=True)
    if args.speed_target is not None:
        train_s = opt.counters["wall_time"]
        print(f"speed target: training <= {args.speed_target:g} s: {'met' if train_s <= args.speed_target else 'NOT met'} "
              f"({train_s:.1f} s; sgemm peak {peak:.1f} GMAC/s at the start, now {common.loadavg()})", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as err:
        if type(err).__module__.startswith("minirso"):  # MinirsoError: a clear one-line message
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        raise
