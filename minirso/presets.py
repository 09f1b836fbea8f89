"""Named settings of the training CLI: ``quick`` (a CPU in minutes) and ``paper`` (the authors')."""
from .errors import ConfigError

PRESETS = {
    "quick": {
        "description": "small network (10,352 weights), 10 RSO rounds on 30,000 training images, about 9.5 minutes on 2 CPU cores",
        "model": "small",
        # Measured on 2 cores (benchmarks/quick_preset.py): 10,000 images at batch 1000 plateau
        # at 96.3% (10 rounds, 216 s); 30,000 at batch 2000 pass 97% (97.1% after round 9 of a
        # 12-round schedule, 402 s); 60,000 at batch 1000 cost 98 s a round (setup and kept
        # changes scale with the training images). So 30,000 images, batch 2000, 10 rounds:
        # 97.23% after 549 s of training, 575 s for the whole command (2026-11-27, idle).
        "rso": {"rounds": 10, "batch_size": 2000, "train_subset": 30000},
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
