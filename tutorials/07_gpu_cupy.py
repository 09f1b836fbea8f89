# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7. The same code on a GPU: NumPy and CuPy
#
# CuPy implements most of NumPy's interface on NVIDIA GPUs. minirso writes every array operation
# once and takes the array module from the data (`xp = get_array_module(x)`, the idiom of CuPy
# and Chainer), imports CuPy only when asked for, moves a model with one call, and draws every
# random number on the host, so that a seed should give the same run on both backends.
#
# **What has been verified, and what not.** This project has not yet had a GPU to run on (README.md,
# "GPU"): the CuPy code path, the GPU tests (`python -m pytest -m gpu`) and the GPU branches of this
# notebook are written but have never been executed on a device. Everything this notebook asserts is
# checked on the CPU; the statements about GPUs below are expectations, marked as such. This notebook
# runs on any machine: without a GPU or CuPy it says so and shows the CPU side.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from minirso.tutorial import setup

# One BLAS thread for this kernel: RSO runs many small matrix products, and OpenBLAS's default of
# one thread per core made a forward pass 10x slower on a busy 2-core machine (README.md, "The
# training CLI"). DATA_DIR: $MINIRSO_DATA if set, else the repository's data/mnist (MNIST is
# downloaded there on first use), wherever the Jupyter front end started this kernel.
# SMALL: MINIRSO_TUTORIAL_SMALL=1 (set in CI) shrinks every size so that the notebook runs in
# seconds; the default sizes are meant for a laptop CPU.
SMALL, DATA_DIR = setup()

# %%
import os

from minirso import BackendError, RSO, get_array_module, get_backend, load_mnist, tiny_mnist_net
from minirso.backend import to_numpy

data = load_mnist(DATA_DIR).subset(300 if SMALL else 2000, 200, seed=0)

# %% [markdown]
# ## The array-module shim

# %%
x = np.arange(6.0)
print("array module of a NumPy array:", get_array_module(x).__name__)
print("default backend:", get_backend().__name__, "(MINIRSO_BACKEND =", repr(os.environ.get("MINIRSO_BACKEND")), ")")

try:
    cp = get_backend("cupy")
    GPU = True
    print("CuPy", cp.__version__, "with", cp.cuda.runtime.getDeviceCount(), "CUDA device(s)")
except BackendError as err:
    GPU = False
    print("No GPU here, everything below runs on the CPU. The reason:")
    print("   ", err)


# %% [markdown]
# A function written with `xp` runs on whichever module its input lives in:

# %%
def standardise(a):
    xp = get_array_module(a)          # numpy or cupy, from the data
    return (a - a.mean()) / xp.sqrt(a.var())


print(type(standardise(x)).__module__, standardise(x).round(3))
if GPU:
    on_gpu = standardise(cp.asarray(x))
    print(type(on_gpu).__module__, to_numpy(on_gpu).round(3))

# %% [markdown]
# ## Moving a model
#
# `model.to("cupy")` moves every parameter and buffer in place; `model.xp` then reports the module.
# Inputs must live on the same device (`xp.asarray`).

# %%
model = tiny_mnist_net(seed=0)
logits_cpu = model.forward(data.x_test[:8])
print("model on", model.xp.__name__)
if GPU:
    model.to("cupy")
    logits_gpu = model.forward(cp.asarray(data.x_test[:8]))
    print("model on", model.xp.__name__)
    assert np.allclose(to_numpy(logits_gpu), logits_cpu, atol=1e-4), "the GPU's logits differ from the CPU's"
    model.to("numpy")
else:
    try:
        model.to("cupy")
    except BackendError as err:
        print("model.to('cupy') raises BackendError:", str(err)[:90], "...")
    else:
        raise AssertionError("without a usable GPU, model.to('cupy') should raise BackendError")


# %% [markdown]
# ## Same seed, same decisions
#
# Every random draw of `RSO` (data order, `dw`) comes from a NumPy generator on the host, so the
# sequence of trials is the same on both backends. In float64 the two backends' losses should differ
# only by rounding far below the gaps between candidates, so the decisions should be the same: the GPU
# tests (`python -m pytest -m gpu`) check it on a small network, but they have not been run on a GPU
# yet. On the CPU alone you can check the other half: the same seed repeats a run exactly, another
# seed does not.

# %%
def one_round(backend, seed=0):
    model = tiny_mnist_net(seed=0, dtype="float64").to(backend)
    data64 = type(data)(data.x_train.astype(np.float64), data.y_train, data.x_test.astype(np.float64),
                        data.y_test, data.mean, data.std)
    rso = RSO(model, data64, seed=seed, batch_size=50, record_trials=True, progress=False)
    t0 = time.perf_counter()
    rso.run(rounds=1)
    return [t["choice"] for t in rso.trial_log], rso.history[-1]["test_accuracy"], time.perf_counter() - t0


cpu, acc, seconds = one_round("numpy")
print(f"numpy:  {len(cpu)} trials, {sum(c > 0 for c in cpu)} accepted, accuracy {acc:.3f}, {seconds:.1f} s")
if GPU:
    gpu, acc_gpu, seconds_gpu = one_round("cupy")
    print(f"cupy:   accuracy {acc_gpu:.3f}, {seconds_gpu:.1f} s")
    assert gpu == cpu, "the GPU made other decisions than the CPU with the same seed"
else:
    again, _, _ = one_round("numpy")
    other, _, _ = one_round("numpy", seed=1)
    assert again == cpu, "the same seed should repeat every decision"
    assert other != cpu, "another seed should give another run"
    print("numpy: the same seed repeats every decision, seed 1 gives another run")

# %% [markdown]
# ## When a GPU pays off
#
# A GPU needs large arrays to be busy. At the paper's batch of 5000 images per trial it should be;
# for the tiny network at batch 50 we expect the CPU to be faster, since each small operation costs a
# kernel launch. Neither has been measured here yet: `python benchmarks/rso_speed.py --backend cupy`
# will measure it on the first GPU this project gets. To train the paper's setting on a GPU:
#
# ```bash
# pip install -e ".[gpu]"                                   # CuPy for CUDA 12
# python -m minirso.train --preset paper --backend cupy     # or MINIRSO_BACKEND=cupy
# python -m pytest -m gpu                                   # the GPU tests (skip without a device)
# ```
#
# ## Exercises
#
# Each exercise says what to expect, or gives a check to run on your answer.
#
# 1. Write a function `softmax(z)` with `xp = get_array_module(z)` that works on both backends, and check
#    it against `minirso.losses.log_softmax`: `assert np.allclose(np.log(softmax(z)), log_softmax(z))`.
# 2. With a GPU: time one trial of `paper_mnist_net` at batch 5000 on both backends (see notebook 6's timing
#    loop). Without one: time it on the CPU at batch 500 and 5000. Does the time grow linearly with the batch?
#    (Expected on a CPU: an expensive trial, conv 1's, grows roughly in proportion; a dense trial grows less.)
# 3. Why does minirso draw `dw` with NumPy on the host even when the model is on the GPU? What would change
#    if it used `cupy.random`? (Check: two `RSO` runs with the same seed make the same decisions, as above.)
# 4. Set the environment variable `MINIRSO_BACKEND=cupy` on a machine without CuPy and run
#    `python -m minirso.train --model tiny --rounds 1`. What does it print? (Expected: one line that
#    starts with `error:` and names the GPU extra, exit status 2, no traceback.)
#
# Solutions: [solutions/07_gpu_cupy.py](solutions/07_gpu_cupy.py) (run it, or open it as a notebook with
# jupytext).
