"""Forward-pass speed of the paper's MNIST network, and minirso's conv kernel against the usual alternatives.

Part 1 times a forward pass of ``minirso.paper_mnist_net()`` (training mode: batch-norm uses
the mini-batch statistics, as during RSO's search) at batch 5000, float32, layer by layer
and in total (median of ``--repeats``, default 3).

Part 2 times the convolution kernel ``minirso.layers.conv2d`` (shifted flat views; the taps
stacked into one product when there are few input channels) against two alternatives
implemented here, for conv 2's shape (5000, 16, 28, 28) x (16, 16, 3, 3) and conv 1's shape
(5000, 1, 28, 28) x (16, 1, 3, 3), padding 1:

- im2col: ``numpy.lib.stride_tricks.sliding_window_view`` of the padded input, copied to a
  (C*kh*kw, pixels) matrix and multiplied by the weights, in chunks of ``--im2col-chunk``
  images (the common textbook/library approach; the baseline of the "vs im2col" column).
  The (pixels, C*kh*kw) layout of the same copy is timed too (slower here);
- einsum over shifted views: one ``einsum('nchw,oc->nohw', ...)`` per tap of the padded
  input, summed, with ``optimize=True`` (tensordot/BLAS) and ``optimize=False`` (einsum's loops).

Part 3 times the small maps of the incremental RSO evaluator's rest pass, 15,000 images (three
candidates of 5000, ``--small-batch``) of 16 channels: a 3x3 conv of 7x7 maps, of 14x14 maps,
and conv 4 + its 2x2 average pool (14x14 -> 7x7, ``PooledConv2D``): the direct kernel
(``conv2d`` / ``pooled_conv2d``, (N, C, H, W) in and out) against the rows-layout kernel
(``minirso.rso.fast.layers.row_conv.RowConv``: one matrix product per output row on (N, H, C, W) maps),
alone and with the two layout copies around it. This is what ``minirso.rso.fast.rest.ROWS_MAX_WIDTH``
is chosen from.

Part 4 asks whether another matrix layout would do the rest pass's convolutions with fewer
wasted multiply-adds: the same small-map cases as *column-blocked rows*, each product making b
output columns of one output row for every image and block (b = 1 is im2col: no zero in the
matrix; b = the map's width is the rows layout), on maps already in that layout (the copy into
it is timed apart). Each variant is checked against the direct kernel before it is timed.

Part 2 also runs minirso's kernel with the tap stacking forced on and off (by setting
``minirso.layers.conv.STACK_TAPS_BELOW`` for the call) to show what the stacking buys. All
variants are checked against each other (max abs diff against the library, and against a
float64 im2col reference on the first images) before they are timed. Finally the machine's
float32 matrix-multiply rate is measured (a 2048 x 2048 x 2048 sgemm) as the ceiling.

    python benchmarks/conv_forward.py                   # batch 5000, OpenBLAS default threads
    python benchmarks/conv_forward.py --threads 1 --batch 1000
    python benchmarks/conv_forward.py --threads 2 --skip-forward --skip-kernels   # parts 3 and 4

GMAC/s = 1e9 multiply-adds per second (one multiply-add = 2 FLOP).
"""
import common

THREADS = common.apply_threads()  # before numpy is imported: OpenBLAS reads its thread count once

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import minirso  # noqa: E402
import minirso.layers.conv as conv_module  # noqa: E402
from minirso.layers import Conv2D, Dense  # noqa: E402
from minirso.layers.base import xp_of  # noqa: E402
from minirso.rso.cost import layer_macs  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=5000, help="images per forward pass (default 5000)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per figure; the median is shown (default 3)")
    p.add_argument("--threads", type=int, default=None,
                   help="OpenBLAS/OpenMP threads (sets OPENBLAS_NUM_THREADS and OMP_NUM_THREADS; default: unset)")
    p.add_argument("--im2col-chunk", type=int, default=256, help="images per im2col chunk (default 256)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-forward", action="store_true", help="only the kernel comparison")
    p.add_argument("--skip-kernels", action="store_true", help="skip part 2 (the kernel comparison)")
    p.add_argument("--skip-small", action="store_true", help="skip part 3 (small maps, rows layout)")
    p.add_argument("--skip-blocked", action="store_true", help="skip part 4 (column-blocked rows layouts)")
    p.add_argument("--small-batch", type=int, default=15000, help="images for parts 3 and 4 (default 15000)")
    p.add_argument("--json", metavar="OUT", help="also write the results to this JSON file")
    return p.parse_args(argv)


# -- the losers -----------------------------------------------------------------------------
def _pad(xp, x, p):
    return xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x


def conv_im2col(x, w, padding=1, chunk=256, layout="taps"):
    """im2col + one matrix product per chunk of images (stride 1).

    layout "taps": the column matrix is (C*kh*kw, pixels) and the product W (O, C*kh*kw) @ cols
    (the cs231n / Caffe layout; its copy reads rows of the image contiguously, the faster one
    here). layout "pixels": cols (pixels, C*kh*kw) @ W.T, one pixel's window per row.
    """
    xp = minirso.get_array_module(x)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = h + 2 * padding - kh + 1, wd + 2 * padding - kw + 1
    wmat = w.reshape(o, c * kh * kw)  # columns ordered (c, ky, kx) like the windows
    out = xp.empty((n, o, ho, wo), dtype=x.dtype)
    for s in range(0, n, chunk):
        xc = _pad(xp, x[s:s + chunk], padding)
        m = xc.shape[0]
        win = xp.lib.stride_tricks.sliding_window_view(xc, (kh, kw), axis=(2, 3))  # (m, c, ho, wo, kh, kw)
        if layout == "taps":
            cols = win.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, m * ho * wo)  # the im2col copy
            out[s:s + m] = (wmat @ cols).reshape(o, m, ho, wo).transpose(1, 0, 2, 3)
        else:
            cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(m * ho * wo, c * kh * kw)  # the im2col copy
            out[s:s + m] = (cols @ wmat.T).reshape(m, ho, wo, o).transpose(0, 3, 1, 2)
    return out


def conv_einsum(x, w, padding=1, optimize=True):
    """Sum over the kh*kw taps of einsum('nchw,oc->nohw') on shifted views of the padded input."""
    xp = minirso.get_array_module(x)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = h + 2 * padding - kh + 1, wd + 2 * padding - kw + 1
    xpad = _pad(xp, x, padding)
    out = xp.zeros((n, o, ho, wo), dtype=x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            out += xp.einsum("nchw,oc->nohw", xpad[:, :, ky:ky + ho, kx:kx + wo], w[:, :, ky, kx], optimize=optimize)
    return out


def library_conv(stack=None):
    """minirso.layers.conv2d; stack=True/False forces the stacked-taps path on/off for the call."""
    def run(x, w, padding=1):
        if stack is None:
            return conv_module.conv2d(x, w, 1, padding)
        saved = conv_module.STACK_TAPS_BELOW
        conv_module.STACK_TAPS_BELOW = 10 ** 9 if stack else -1
        try:
            return conv_module.conv2d(x, w, 1, padding)
        finally:
            conv_module.STACK_TAPS_BELOW = saved
    return run


# -- part 1: the forward pass ---------------------------------------------------------------
def forward_table(model, x, repeats, xp):
    rows, results = [], []
    h = x
    per_layer = []
    for j, layer in enumerate(model.layers):
        inp = h
        med, times, h = common.timed(lambda: layer.forward(inp), repeats=repeats, warmup=1, xp=xp)
        macs = layer_macs(model, j) * x.shape[0]
        weighted = isinstance(layer, (Conv2D, Dense))
        per_layer.append((j, layer, med, macs, weighted, tuple(h.shape[1:])))
    total_med, _, _ = common.timed(lambda: model.forward(x), repeats=repeats, warmup=1, xp=xp)
    layer_sum = sum(r[2] for r in per_layer)
    for j, layer, med, macs, weighted, shape in per_layer:
        name = type(layer).__name__
        rows.append([j, name, "x".join(map(str, shape)), f"{macs / 1e6:.0f}", f"{med * 1e3:.1f}",
                     f"{macs / med / 1e9:.1f}" if weighted else "-", f"{100 * med / layer_sum:.1f}"])
        results.append({"layer": j, "type": name, "output_shape": list(shape), "macs": macs, "ms": med * 1e3,
                        "gmacs_per_s": macs / med / 1e9 if weighted else None})
    conv_macs = sum(r[3] for r in per_layer if r[4])
    conv_time = sum(r[2] for r in per_layer if r[4])
    rows.append(["", "sum of layers", "", f"{sum(r[3] for r in per_layer) / 1e6:.0f}", f"{layer_sum * 1e3:.1f}",
                 "", "100.0"])
    rows.append(["", "model.forward", "", "", f"{total_med * 1e3:.1f}", "", ""])
    table = common.fmt_table(["#", "layer", "output", "MMAC", "ms", "GMAC/s", "% time"], rows, "rlrrrrr")
    summary = {"layers": results, "total_ms": total_med * 1e3, "sum_of_layers_ms": layer_sum * 1e3,
               "conv_dense_macs": conv_macs, "conv_dense_ms": conv_time * 1e3,
               "conv_dense_share": conv_time / layer_sum}
    return table, summary


# -- part 2: the kernels --------------------------------------------------------------------
def kernel_table(title, x, w, args, xp, peak):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    macs = n * o * h * wd * c * kh * kw  # padding 1, stride 1: output H x W
    variants = [("minirso conv2d (shifted flat views)", library_conv(None)),
                ("minirso conv2d, taps stacked (forced)" if c * kh * kw > conv_module.STACK_TAPS_BELOW
                 else "minirso conv2d, taps not stacked (forced)",
                 library_conv(c * kh * kw > conv_module.STACK_TAPS_BELOW)),
                (f"im2col: sliding_window_view + matmul, (C*k*k, pixels) cols, chunk {args.im2col_chunk}",
                 lambda a, b: conv_im2col(a, b, 1, args.im2col_chunk, "taps")),
                (f"im2col, (pixels, C*k*k) cols, chunk {args.im2col_chunk}",
                 lambda a, b: conv_im2col(a, b, 1, args.im2col_chunk, "pixels")),
                ("einsum over shifted views (optimize=True)", lambda a, b: conv_einsum(a, b, 1, True)),
                ("einsum over shifted views (optimize=False)", lambda a, b: conv_einsum(a, b, 1, False))]
    # correctness first: every variant against the library (full batch) and float64 on a few images
    k = min(n, 64)
    ref64 = conv_im2col(x[:k].astype(xp.float64), w.astype(xp.float64), 1, args.im2col_chunk)
    base = None
    checks = []
    for name, fn in variants:
        y = fn(x, w)
        common.synchronize(xp)
        if base is None:
            base = y
        d_lib = float(xp.abs(y - base).max())
        d64 = float(xp.abs(y[:k].astype(xp.float64) - ref64).max())
        checks.append((name, d_lib, d64))
        del y
    scale = float(xp.abs(ref64).max())
    worst = max(max(d_lib, d64) for _, d_lib, d64 in checks)
    ok = worst <= 1e-4 * max(1.0, scale)
    del base
    timings = []
    for name, fn in variants:
        med, times, _ = common.timed(lambda: fn(x, w), repeats=args.repeats, warmup=0, xp=xp)
        timings.append((name, med, times))
    t_im2col = timings[2][1]  # the first im2col variant (the faster layout) is the baseline
    rows, results = [], []
    for (name, med, times), (_, d_lib, d64) in zip(timings, checks):
        rate = macs / med / 1e9
        rows.append([name, f"{med * 1e3:.1f}", f"{rate:.1f}", f"{100 * rate / peak:.0f}%", f"{t_im2col / med:.2f}x",
                     f"{d_lib:.1e}", f"{d64:.1e}"])
        results.append({"variant": name, "ms": med * 1e3, "all_ms": [t * 1e3 for t in times], "gmacs_per_s": rate,
                        "speedup_vs_im2col": t_im2col / med, "max_abs_diff_vs_library": d_lib,
                        "max_abs_diff_vs_float64": d64})
    head = (f"{title}: x {tuple(x.shape)} * w {tuple(w.shape)}, padding 1, float32, "
            f"{macs / 1e9:.2f} GMAC per call; median of {args.repeats}")
    table = common.fmt_table(["variant", "ms", "GMAC/s", "of peak", "vs im2col", "diff vs lib", "diff vs f64"],
                             rows, "lrrrrrr")
    check = (f"agreement: max abs diff {worst:.1e} (outputs up to {scale:.1f}) -> "
             f"{'OK' if ok else 'MISMATCH'}")
    return head + "\n" + check + "\n" + table, {"title": title, "x_shape": list(x.shape), "w_shape": list(w.shape),
                                                 "macs": macs, "agree": ok, "variants": results}


# -- part 3: small maps, rows layout ----------------------------------------------------------
def small_maps_table(args, xp, peak, rng):
    from minirso.layers import AvgPool2D
    from minirso.rso.fast.layers.pooled_conv import PooledConv2D
    from minirso.rso.fast.layers.row_conv import RowConv, from_rows, to_rows
    n = args.small_batch
    conv = Conv2D(16, 16, 3, 1, 1)
    conv.params["weight"][...] = rng.normal(0.0, np.sqrt(2.0 / 144), size=(16, 16, 3, 3))
    conv.to(xp)
    cases = [("3x3 conv, 7x7 maps", conv, 7), ("3x3 conv, 14x14 maps", conv, 14),
             ("conv + 2x2 avg pool, 14x14 -> 7x7", PooledConv2D(conv, AvgPool2D(2)), 14)]
    rows, results, ok = [], [], True
    for title, layer, size in cases:
        x = xp.asarray(rng.standard_normal((n, 16, size, size), dtype=np.float32))
        xr = to_rows(x)
        kernel = RowConv.of(layer, (16, size, size))
        direct = layer.forward(x)
        diff = float(xp.abs(from_rows(kernel(xr)) - direct).max())
        ok &= diff <= 1e-4 * max(1.0, float(xp.abs(direct).max()))
        out_px = direct.shape[2] * direct.shape[3]
        macs = n * 16 * out_px * (16 * 16 if isinstance(layer, PooledConv2D) else 16 * 9)
        t_direct = common.timed(lambda: layer.forward(x), args.repeats, xp=xp)[0]
        t_rows = common.timed(lambda: kernel(xr), args.repeats, xp=xp)[0]
        t_both = common.timed(lambda: from_rows(kernel(to_rows(x))), args.repeats, xp=xp)[0]
        for name, t in (("direct, (N, C, H, W)", t_direct), ("rows kernel, (N, H, C, W)", t_rows),
                        ("rows kernel + both layout copies", t_both)):
            rows.append([title, name, f"{t * 1e3:.1f}", f"{macs / t / 1e9:.1f}", f"{t_direct / t:.2f}x"])
        results.append({"case": title, "n": n, "macs": macs, "direct_s": t_direct, "rows_s": t_rows,
                        "rows_with_copies_s": t_both, "max_abs_diff": diff})
        del x, xr, direct
    head = (f"small maps, {n} images of 16 channels, float32, median of {args.repeats} "
            f"(GMAC/s counts the direct convolution's multiply-adds; agreement {'OK' if ok else 'MISMATCH'})")
    table = common.fmt_table(["case", "kernel", "ms", "GMAC/s", "vs direct"], rows, "llrrr")
    return head + "\n" + table, results, ok


# -- part 4: column-blocked rows layouts -------------------------------------------------------
def blocked_layout(x, kernel_w, stride, padding, b):
    """x (N, C, H, W) -> (N, nb, H + 2p, C, win): for each block of b output columns, the
    input columns it reads (win = (b - 1) * stride + kw, zero padding included)."""
    xp = xp_of(x)
    n, c, h, w = x.shape
    wo = (w + 2 * padding - kernel_w) // stride + 1
    nb, win = -(-wo // b), (b - 1) * stride + kernel_w
    padded = xp.zeros((n, c, h + 2 * padding, (nb * b - 1) * stride + kernel_w), dtype=x.dtype)
    padded[:, :, padding:padding + h, padding:padding + w] = x
    out = xp.empty((n, nb, h + 2 * padding, c, win), dtype=x.dtype)
    for j in range(nb):
        out[:, j] = padded[:, :, :, j * b * stride:j * b * stride + win].transpose(0, 2, 1, 3)
    return out


def blocked_matrix(w, stride, b):
    """T (kh * C * win, O * b): T[(ky, c, col), (o, q)] = w[o, c, ky, col - q * stride]."""
    o, c, kh, kw = w.shape
    win = (b - 1) * stride + kw
    t = np.zeros((kh, c, win, o, b), dtype=w.dtype)
    for q in range(b):
        t[:, :, q * stride:q * stride + kw, :, q] = w.transpose(2, 1, 3, 0)
    return t.reshape(kh * c * win, o * b)


def blocked_conv(xb, t, ho, kh, stride, out, step=512):
    """The convolution of xb (N, nb, Hp, C, win) in column blocks: one product per output row and
    chunk of images (as ``RowConv``), every block of every image a row of the product;
    ``out`` (N, nb, Ho, O * b)."""
    n, nb, hp, c, win = xb.shape
    a, o = xb.reshape(n * nb, hp * c * win), out.reshape(n * nb, -1)
    row, cols = c * win, t.shape[1]
    for r in range(ho):
        for s in range(0, n * nb, step * nb):
            e = min(s + step * nb, n * nb)
            xp_of(xb).matmul(a[s:e, r * stride * row:(r * stride + kh) * row], t, out=o[s:e, r * cols:(r + 1) * cols])
    return out


def blocked_table(args, xp, peak, rng):
    from minirso.rso.fast.layers.pooled_conv import fold_avgpool
    from minirso.rso.fast.layers.row_conv import RowConv, to_rows
    n = args.small_batch
    w3 = rng.normal(0.0, np.sqrt(2.0 / 144), size=(16, 16, 3, 3)).astype(np.float32)
    cases = [("3x3 conv, 7x7 maps", w3, 1, 7), ("conv + 2x2 avg pool, 14x14 -> 7x7 (folded 4x4, stride 2)",
                                                fold_avgpool(w3, 2), 2, 14)]
    rows, results, ok = [], [], True
    for title, w, stride, size in cases:
        o, c, kh, kw = w.shape
        x = xp.asarray(rng.standard_normal((n, c, size, size), dtype=np.float32))
        wx = xp.asarray(w)
        rc = RowConv(wx, (c, size, size), stride, 1)
        ho, wo = rc.ho, rc.wo
        useful = n * o * c * kh * kw * ho * wo
        direct = conv_module.conv2d(x, wx, stride, 1)
        xr = to_rows(x)
        t_rows = common.timed(lambda: rc(xr), args.repeats, xp=xp)[0]
        raw_rows = sum((stop - first) * c * size * o * wo for first, stop, _, _ in rc.plan) * n
        rows.append([title, f"rows layout (b = {wo})", "", f"{t_rows * 1e3:.1f}", f"{useful / t_rows / 1e9:.1f}",
                     f"{raw_rows / useful:.2f}", f"{raw_rows / t_rows / 1e9:.1f}", "1.00x"])
        for b in (1, 2, 3, 4):
            xb = blocked_layout(x, kw, stride, 1, b)
            t = xp.asarray(blocked_matrix(w, stride, b))
            out = xp.empty((n, xb.shape[1], ho, o * b), dtype=x.dtype)
            got = blocked_conv(xb, t, ho, kh, stride, out)
            got = got.reshape(n, xb.shape[1], ho, o, b).transpose(0, 3, 2, 1, 4).reshape(n, o, ho, -1)[..., :wo]
            diff = float(xp.abs(got - direct).max())
            ok &= diff <= 1e-4 * max(1.0, float(xp.abs(direct).max()))
            t_conv = common.timed(lambda: blocked_conv(xb, t, ho, kh, stride, out), args.repeats, xp=xp)[0]
            t_copy = common.timed(lambda: blocked_layout(x, kw, stride, 1, b), args.repeats, xp=xp)[0]
            raw = n * xb.shape[1] * ho * t.shape[0] * t.shape[1]
            rows.append([title, f"blocked, b = {b} (K {t.shape[0]}, {t.shape[1]} columns)", f"{t_copy * 1e3:.1f}",
                         f"{t_conv * 1e3:.1f}", f"{useful / t_conv / 1e9:.1f}", f"{raw / useful:.2f}",
                         f"{raw / t_conv / 1e9:.1f}", f"{t_rows / t_conv:.2f}x"])
            results.append({"case": title, "b": b, "conv_s": t_conv, "copy_s": t_copy, "rows_s": t_rows,
                            "useful_macs": useful, "raw_macs": raw, "max_abs_diff": diff})
            del xb, out, got
        del x, xr, direct
    head = (f"column-blocked rows layouts, {n} images of 16 channels, float32, median of {args.repeats}; "
            f"useful GMAC/s counts the direct convolution's multiply-adds, raw those of the products "
            f"(zeros of the matrix included); sgemm peak {peak:.1f} GMAC/s (agreement {'OK' if ok else 'MISMATCH'})")
    table = common.fmt_table(["case", "layout", "copy into it, ms", "products, ms", "useful GMAC/s", "raw / useful",
                              "raw GMAC/s", "vs rows"], rows, "llrrrrrr")
    return head + "\n" + table, results, ok


def main(argv=None):
    args = parse_args(argv)
    xp = common.backend_or_none(args.backend)
    if xp is None:
        return 2
    rng = np.random.default_rng(args.seed)
    print(f"conv_forward: batch {args.batch}, float32, backend {args.backend}", flush=True)
    print(common.machine_description())
    print(common.threads_description(THREADS))
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {common.loadavg()}", flush=True)
    peak, peak_s = common.sgemm_peak(xp)
    print(f"float32 matmul peak (2048^3 sgemm, median of 5): {peak:.1f} GMAC/s = {2 * peak:.1f} GFLOP/s "
          f"({peak_s * 1e3:.1f} ms), {common.loadavg()}", flush=True)
    out = {"batch": args.batch, "threads": THREADS, "backend": args.backend, "sgemm_gmacs_per_s": peak}

    if not args.skip_forward:
        model = minirso.paper_mnist_net(seed=args.seed).train(True)
        if args.backend != "numpy":
            model.to(xp)
        x = xp.asarray(rng.standard_normal((args.batch, 1, 28, 28), dtype=np.float32))
        table, summary = forward_table(model, x, args.repeats, xp)
        print(f"\nforward pass of paper_mnist_net, batch {args.batch} (training-mode batch-norm), "
              f"median of {args.repeats}, {common.loadavg()}")
        print(table)
        macs = sum(r["macs"] for r in summary["layers"])
        print(f"total {summary['total_ms']:.1f} ms for {macs / 1e9:.2f} GMAC: "
              f"{macs / summary['total_ms'] / 1e6:.1f} GMAC/s overall ({100 * macs / summary['total_ms'] / 1e6 / peak:.0f}% of sgemm peak); "
              f"conv+dense {100 * summary['conv_dense_share']:.0f}% of the time at "
              f"{summary['conv_dense_macs'] / summary['conv_dense_ms'] / 1e6:.1f} GMAC/s", flush=True)
        out["forward"] = summary
        del model, x

    if not args.skip_kernels:
        out["kernels"] = []
        for title, c in (("conv2", 16), ("conv1", 1)):
            x = xp.asarray(rng.standard_normal((args.batch, c, 28, 28), dtype=np.float32))
            w = xp.asarray(rng.normal(0.0, np.sqrt(2.0 / (9 * c)), size=(16, c, 3, 3)).astype(np.float32))
            table, res = kernel_table(title, x, w, args, xp, peak)
            print(f"\n{table}\n({common.loadavg()})", flush=True)
            out["kernels"].append(res)
            del x, w
            if not res["agree"]:
                print("error: the conv variants disagree (see the table)", file=sys.stderr)
                return 1
    for skip, key, part, what in ((args.skip_small, "small_maps", small_maps_table, "the rows-layout kernel"),
                                  (args.skip_blocked, "blocked", blocked_table, "a column-blocked kernel")):
        if skip:
            continue
        table, out[key], ok = part(args, xp, peak, rng)
        print(f"\n{table}\n({common.loadavg()})", flush=True)
        if not ok:
            print(f"error: {what} disagrees with the direct one", file=sys.stderr)
            return 1
    print(f"\nend: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {common.loadavg()}")
    if args.json:
        out["loadavg_end"] = list(__import__("os").getloadavg())
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
