# %% [markdown]
# # Solutions to notebook 7: the same code on a GPU
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/07_gpu_cupy.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# claim below that can be checked on a CPU is checked by an assert. This project has not had a GPU yet:
# the GPU branches of this script have never run (README.md, "GPU").

# %%
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from minirso import BackendError, RSO, get_array_module, get_backend, load_mnist, paper_mnist_net, tiny_mnist_net
from minirso.losses import log_softmax
from minirso.rso import IncrementalEvaluator, search_plan
from minirso.tutorial import setup

SMALL, DATA_DIR = setup()
try:
    cp = get_backend("cupy")
    GPU = True
except BackendError:
    GPU = False

# %% [markdown]
# ## 1. A softmax for both backends

# %%
def softmax(z):
    xp = get_array_module(z)
    e = xp.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


z = np.random.default_rng(0).normal(size=(4, 10))
assert np.allclose(np.log(softmax(z)), log_softmax(z))
if GPU:
    assert np.allclose(cp.asnumpy(softmax(cp.asarray(z))), softmax(z))
print("softmax agrees with log_softmax")

# %% [markdown]
# ## 2. Time against batch size
#
# Time trials as in notebook 6 (`ev.begin`, a few `ev.losses`, `ev.end`). On a CPU the expensive trials
# (conv 1) grow roughly in proportion to the batch; cheap trials (the dense layer) grow less, their fixed
# overhead dominates. On a GPU small batches should barely use the device, so a 10x larger batch should
# cost much less than 10x there (not measured yet). Timings on a shared machine are noisy: the script
# prints them and asserts nothing about them.

# %%
data = load_mnist(DATA_DIR)
model = paper_mnist_net(seed=0)
chosen = [p for p in search_plan(model) if p.label in ("21.weight", "0.weight")]


def seconds_per_trial(p, batch, trials=2):
    x, y = data.x_train[:2 * batch], data.y_train[:2 * batch]
    ev = IncrementalEvaluator(model, x, y)
    ev.begin(p.ref, np.arange(2 * batch).reshape(2, batch))
    w, rng = model.param(p.ref), np.random.default_rng(0)
    t0 = time.perf_counter()
    for t in range(trials):
        index = np.unravel_index(rng.integers(w.size), w.shape)
        dw = w.dtype.type(rng.normal(0.0, p.sigma_d))
        ev.losses(index, w[index] + dw, w[index] - dw, t % 2)
    ev.end()
    return (time.perf_counter() - t0) / trials


small_batch, large_batch = (50, 500) if SMALL else (500, 5000)
for p in chosen:
    a, b = seconds_per_trial(p, small_batch), seconds_per_trial(p, large_batch)
    print(f"{p.label:<10} batch {small_batch}: {a:.4f} s, batch {large_batch}: {b:.4f} s per trial ({b / a:.1f}x)")

# %% [markdown]
# ## 3. Why the host draws the random numbers
#
# Drawing on the host with one seeded NumPy generator gives the same `dw` and the same data order on
# both backends, so a GPU run can be checked against the CPU decision by decision (the GPU tests are
# written to do so). `cupy.random` uses other generators: a seed would give a different, equally
# valid, run on the GPU. The draws are cheap (one vector of dw per sweep). On a CPU you can check the
# half that does not need a GPU: the same seed gives the same decisions.

# %%
sub = data.subset(300, 200, seed=0)


def decisions(seed):
    rso = RSO(tiny_mnist_net(seed=0), sub, seed=seed, batch_size=50, record_trials=True, progress=False)
    rso.run(rounds=1)
    return [(t["dw"], t["choice"]) for t in rso.trial_log]


assert decisions(0) == decisions(0), "the same seed should give the same dw and decisions"
print("the same seed gives the same dw and the same decisions")

# %% [markdown]
# ## 4. `MINIRSO_BACKEND=cupy` without CuPy
#
# The training CLI stops before training with one line, exit status 2, and no traceback:
# `error: the cupy backend needs CuPy, which is not installed ...; install the GPU extra with
# pip install "minirso[gpu]" (CuPy for CUDA 12), or run on the CPU with --backend numpy`.

# %%
if importlib.util.find_spec("cupy") is None:
    env = {**os.environ, "MINIRSO_BACKEND": "cupy"}
    with tempfile.TemporaryDirectory() as tmp:  # a run folder that does not exist yet (it must not be created)
        proc = subprocess.run([sys.executable, "-m", "minirso.train", "--model", "tiny", "--rounds", "1",
                               "--no-download", "--data-dir", str(DATA_DIR), "--out", os.path.join(tmp, "run")],
                              capture_output=True, text=True, env=env, timeout=300)
        assert not os.path.exists(os.path.join(tmp, "run")), "a run that failed before training leaves no folder"
    message = (proc.stdout + proc.stderr).strip()
    print(f"exit status {proc.returncode}: {message}")
    assert proc.returncode == 2 and message.startswith("error:") and "minirso[gpu]" in message
    assert "Traceback" not in message
else:
    print("CuPy is installed here: nothing to show")
