"""Sweeps: ``python -m minirso.sweep SPEC`` runs a grid of python -m minirso.train settings, each as a
Ray task with its own run folder (docs/sweeps.md).

spec.py: the SPEC file and its settings (pure); runstate.py: where a run folder stands;
task.py: one process (a setting: a train process) as the Ray task's body; runner.py: runs such
processes as Ray tasks (also for benchmarks/gradient_free.py and quick_study.py --ray);
summary.py: the table; command.py: the command. Ray is needed only to run settings (``pip install -e ".[distributed]"``).
"""
from .spec import Setting, Spec, expand, parse_spec, read_spec, run_name, train_argv

__all__ = ["Setting", "Spec", "expand", "parse_spec", "read_spec", "run_name", "train_argv"]
