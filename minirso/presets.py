"""Named settings of the training CLI: ``quick`` (a CPU in minutes) and ``paper`` (the authors')."""
from .errors import ConfigError

PRESETS = {
    "quick": {
        "description": "small network, RSO on full MNIST on 2 CPU cores in about 10 minutes",
        "model": "small",
        "rso": {"rounds": 6, "batch_size": 1000},
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
