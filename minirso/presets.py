"""Named settings of the training CLI: ``quick`` (a CPU in minutes) and ``paper`` (the authors')."""
from .errors import ConfigError

GRADIENT_FREE_QUICK = {
    "es": {"rounds": 10, "steps_per_round": 100, "batch_size": 500, "train_subset": 30000, "options": {}},
    "spsa": {"rounds": 10, "steps_per_round": 100, "batch_size": 500, "train_subset": 30000, "options": {"A": 100.0}},
    "nes": {"rounds": 10, "steps_per_round": 20, "batch_size": 500, "train_subset": 30000, "options": {}},
    # 31 candidates per step (CMA's default 4 + floor(3 ln n) for the 10,352 searched scalars): 1,860
    # evaluations, about nes's 2,000
    "sep-cma": {"rounds": 10, "steps_per_round": 6, "batch_size": 500, "train_subset": 30000, "options": {}},
    "mezo": {"rounds": 10, "steps_per_round": 100, "batch_size": 500, "train_subset": 30000, "options": {}},
    "random": {"rounds": 10, "steps_per_round": 100, "batch_size": 500, "train_subset": 30000, "options": {}},
    # 20 and 31 evaluations a step (10 pairs; Schaul's population for 10,352 scalars)
    "pgpe": {"rounds": 10, "steps_per_round": 10, "batch_size": 500, "train_subset": 30000, "options": {}},
    "snes": {"rounds": 10, "steps_per_round": 7, "batch_size": 500, "train_subset": 30000, "options": {}},
}

PRESETS = {
    "quick": {
        "description": "small network (10,352 weights), 10 RSO rounds on 30,000 training images, 3.5 to 10 minutes on 2 CPU cores",
        "model": "small",
        # 30,000 images at batch 2000 for 10 rounds: the settings benchmarks/quick_preset.py found to
        # pass 97% within minutes (its measurements: benchmarks/README.md, "Timings moved from the code")
        "rso": {"rounds": 10, "evaluator": "incremental", "batch_size": 2000, "train_subset": 30000},
        "sgd": {"epochs": 3, "batch_size": 128},
        # The gradient-free baselines (minirso.gradient_free): about 2,000 full forward passes of
        # batch 500 each (not yet timed on this preset), 10 rounds with a test after each. Step
        # sizes are in units of each layer's sigma_d, chosen on benchmarks/gradient_free.py's net.
        **GRADIENT_FREE_QUICK,
    },
    "paper": {
        "description": "the authors' setting: 6-conv network, batch 5000, 50 rounds (GPU recommended)",
        "model": "paper",
        "rso": {"rounds": 50, "evaluator": "incremental", "batch_size": 5000},
        "sgd": {"epochs": 50, "batch_size": 128},
        # as many loss evaluations as 5 RSO rounds of the paper network (5 x 12,016 x 3), batch 5000
        "es": {"rounds": 50, "steps_per_round": 1800, "batch_size": 5000, "options": {}},
        "spsa": {"rounds": 50, "steps_per_round": 1800, "batch_size": 5000, "options": {"A": 9000.0}},
        "nes": {"rounds": 50, "steps_per_round": 360, "batch_size": 5000, "options": {}},
        # 32 candidates per step (12,016 scalars): 3,584 evaluations per round, about nes's 3,600
        "sep-cma": {"rounds": 50, "steps_per_round": 112, "batch_size": 5000, "options": {}},
        "mezo": {"rounds": 50, "steps_per_round": 1800, "batch_size": 5000, "options": {}},
        "random": {"rounds": 50, "steps_per_round": 1800, "batch_size": 5000, "options": {}},
        "pgpe": {"rounds": 50, "steps_per_round": 180, "batch_size": 5000, "options": {}},
        "snes": {"rounds": 50, "steps_per_round": 113, "batch_size": 5000, "options": {}},
    },
    # The paper setting as the authors' train.py runs it (docs/fidelity.md): their network's global
    # max pool (MXNet's default pool type), their preprocessing, MXNet's batch-norm epsilon, per-visit weight decay, inputs cached on the statistics of the first
    # 2,000 training images, sigma_d from the fan-in, a test after every searched array.
    "paper-authors": {
        "description": "the paper setting as the authors' train.py runs it (docs/fidelity.md): 6-conv network, "
                       "batch 5000, 50 rounds, their preprocessing, weight decay, cached statistics and tests",
        "model": "paper-max",
        "preprocess": "center_fp16",
        "bn_eps": 1e-3,
        "rso": {"rounds": 50, "evaluator": "incremental", "batch_size": 5000,
                "options": {"weight_decay": 1e-4, "stats_images": 2000, "prefix_statistics": "running",
                            "sigma_from": "fan_in", "eval_layers": True}},
        "sgd": {"epochs": 50, "batch_size": 128},
        "es": {"rounds": 50, "steps_per_round": 1800, "batch_size": 5000, "options": {}},
        "spsa": {"rounds": 50, "steps_per_round": 1800, "batch_size": 5000, "options": {"A": 9000.0}},
        "nes": {"rounds": 50, "steps_per_round": 360, "batch_size": 5000, "options": {}},
        # 32 candidates per step (12,016 scalars): 3,584 evaluations per round, about nes's 3,600
        "sep-cma": {"rounds": 50, "steps_per_round": 112, "batch_size": 5000, "options": {}},
        "mezo": {"rounds": 50, "steps_per_round": 1800, "batch_size": 5000, "options": {}},
        "random": {"rounds": 50, "steps_per_round": 1800, "batch_size": 5000, "options": {}},
        "pgpe": {"rounds": 50, "steps_per_round": 180, "batch_size": 5000, "options": {}},
        "snes": {"rounds": 50, "steps_per_round": 113, "batch_size": 5000, "options": {}},
    },
}


def get_preset(name):
    if name not in PRESETS:
        choices = "; ".join(f"{k}: {v['description']}" for k, v in PRESETS.items())
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)} ({choices})")
    return PRESETS[name]
