"""The fast path of RSO: Algorithm 1's decisions at a fraction of the arithmetic.

- incremental.py: :class:`IncrementalEvaluator`, the exact shortcuts (its docstring lists them);
  its literal twin is :class:`minirso.rso.evaluators.LiteralEvaluator`, and the tests hold them
  together decision for decision.
- structure.py: where the shortcuts start and stop for a searched layer (shared with rso/cost.py).
- rest.py: the rest of the network for stacked candidates; logit_trials.py: the output layer's
  trials from cached logits.
- layers/: the conv + pool and rows-layout kernels these run on.
"""
from .incremental import IncrementalEvaluator
from .structure import FlattenDense, Structure

__all__ = ["IncrementalEvaluator", "Structure", "FlattenDense"]
