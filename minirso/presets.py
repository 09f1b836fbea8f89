"""Named settings of the training CLI: ``quick`` (a CPU in minutes) and ``paper`` (the authors')."""
from .errors import ConfigError

PRESETS = {
    "quick": {
        "description": "small network (10,352 weights), 10 RSO rounds on 10,000 training images, about 9 minutes on 2 CPU cores",
        "model": "small",
        # Measured (benchmarks/quick_preset.py): a kept change costs time in proportion to the
        # training images, so a 10,000-image subset; batch 1000 keeps the decisions sharp;
        # a round takes about 50 s on 2 cores (5 rounds: 95.7% in 4.6 minutes).
        "rso": {"rounds": 10, "batch_size": 1000, "train_subset": 10000},
        "sgd": {"epochs": 3, "batch_size": 128},
    },
    "paper": {
        "description": "the authors' setting: 6-conv network, batch 5000, 50 rounds (GPU recommended)",
        "model": "paper",
        "rso": {"rounds": 50, "batch_size": 5000},
        "sgd": {"epochs": 50, "batch_size": 128},
    },
}


def get_preset(name):
    if name not in PRESETS:
        choices = "; ".join(f"{k}: {v['description']}" for k, v in PRESETS.items())
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)} ({choices})")
    return PRESETS[name]
