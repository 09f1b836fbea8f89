"""RSO's options, with the paper's and the authors' defaults."""
import math
import numbers
from dataclasses import asdict, dataclass, fields

from ..errors import ConfigError

ORDERS = ("output_first", "input_first")
EVALUATORS = ("incremental", "prefix", "literal")
BLOCKS = ("weight", "unit", "layer", "network")   # the paper's update strategies (strategies.py)
PARALLEL = ("none", "layer", "unit")               # the paper's parallel variants (strategies.py)
PREFIX_STATISTICS = ("batch", "running")           # batch-norm before the searched layer (see RSOConfig)
SIGMA_FROM = ("weights", "fan_in")                 # where sigma_d comes from (plan.py)


@dataclass
class RSOConfig:
    """Options of Algorithm 1 and of the authors' train.py (defaults as there).

    rounds: C, the number of sweeps over the whole network (50).
    batch_size: images in the mini-batch of every single weight trial (5000).
    anneal: sigma falls linearly over the rounds: round c = 0 .. C-1 uses sigma_d (a + (1 - a)(C - c)/C),
        a = ``anneal`` (0.1), so the last round's is sigma_d (a + (1 - a)/C), not a * sigma_d.
    search_bn: also search batch-norm gamma and beta, one scalar at a time (True).
    bn_sigma: sigma for gamma and beta (0.167), annealed like the weights'.
    weight_decay: before each trial the weight is multiplied by (1 - weight_decay); 0 = off
        (Algorithm 1 has none; the authors use 1e-4).
    order: inside a conv layer, "output_first" (output channel, input channel, row, column:
        the paper) or "input_first" (input channel outermost: the authors' inverted order).
    evaluator: how candidate losses are computed: "incremental" (exact shortcuts, fast),
        "prefix" (the authors' cache) or "literal" (a full forward pass per candidate).
    eval_every: test accuracy every this many rounds (0: only at the end).
    eval_layers: also evaluate after every searched layer (costly; not counted as training).
    stats_images: the first this many training images (in the data's own order) give the
        batch-norm running statistics before a test (and, with prefix_statistics="running",
        before every sweep); the authors use 2,000.
    prefix_statistics: how the batch-norm layers *before* the searched array normalise during its
        sweep: "batch" (Algorithm 1: every layer on the statistics of the trial's mini-batch) or
        "running" (the authors' train.py: the searched layer's input is cached in inference mode,
        with the statistics of the first ``stats_images`` training images, recomputed before every
        sweep; the searched layer and those after it still use the mini-batch's statistics).
    sigma_from: sigma_d of a weight array: "weights" (Algorithm 1: the standard deviation of its
        initial weights) or "fan_in" (the authors' code: the He standard deviation sqrt(2 / fan_in)).
    block: what one trial perturbs: "weight" (one scalar, Algorithm 1), "unit" (the fan-in weights
        of one output unit), "layer" (the whole array) or "network" (every searched array); see
        strategies.py. Blocks other than "weight" are evaluated with the prefix cache (literal
        with evaluator="literal").
    parallel: "none" (Algorithm 1), "layer" (every weight of a layer tried against the state
        from before its sweep, changes applied together) or "unit" (units searched side by side
        from that state, merged after the sweep); needs block="weight" and no weight decay.
    """

    rounds: int = 50
    batch_size: int = 5000
    anneal: float = 0.1
    search_bn: bool = True
    bn_sigma: float = 0.167
    weight_decay: float = 0.0
    order: str = "output_first"
    evaluator: str = "incremental"
    eval_every: int = 1
    eval_layers: bool = False
    stats_images: int = 10000
    block: str = "weight"
    parallel: str = "none"
    prefix_statistics: str = "batch"
    sigma_from: str = "weights"

    def __post_init__(self):
        self.validate()

    def validate(self):
        def need(ok, msg):
            if not ok:
                raise ConfigError(msg)

        def integer(v):
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)

        def real(v):
            return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

        need(integer(self.rounds) and self.rounds >= 1, f"rounds must be a positive integer, got {self.rounds!r}")
        need(integer(self.batch_size) and self.batch_size >= 1,
             f"batch_size must be a positive integer, got {self.batch_size!r}")
        need(real(self.anneal) and 0.0 <= self.anneal <= 1.0,
             f"anneal must lie in [0, 1] (the final sigma fraction), got {self.anneal!r}")
        need(real(self.bn_sigma) and self.bn_sigma > 0, f"bn_sigma must be positive, got {self.bn_sigma!r}")
        need(real(self.weight_decay) and 0.0 <= self.weight_decay < 1.0,
             f"weight_decay must lie in [0, 1), got {self.weight_decay!r}")
        need(self.order in ORDERS, f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        need(self.evaluator in EVALUATORS, f"evaluator must be one of {', '.join(EVALUATORS)}, got {self.evaluator!r}")
        need(integer(self.eval_every) and self.eval_every >= 0,
             f"eval_every must be an integer >= 0, got {self.eval_every!r}")
        need(integer(self.stats_images) and self.stats_images >= 1,
             f"stats_images must be a positive integer, got {self.stats_images!r}")
        need(self.block in BLOCKS, f"block must be one of {', '.join(BLOCKS)}, got {self.block!r}")
        need(self.parallel in PARALLEL, f"parallel must be one of {', '.join(PARALLEL)}, got {self.parallel!r}")
        need(self.prefix_statistics in PREFIX_STATISTICS, f"prefix_statistics must be one of "
             f"{', '.join(PREFIX_STATISTICS)}, got {self.prefix_statistics!r}")
        need(self.sigma_from in SIGMA_FROM, f"sigma_from must be one of {', '.join(SIGMA_FROM)}, got {self.sigma_from!r}")
        need(self.parallel == "none" or (self.block == "weight" and not self.weight_decay),
             f"parallel={self.parallel!r} searches single weights without weight decay: "
             f"it needs block='weight' and weight_decay=0, got block={self.block!r}, weight_decay={self.weight_decay!r}")
        return self

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown RSO option(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def check_seed(seed):
    """Refuse a seed ``numpy.random.default_rng`` would reject or read differently (a bool, a
    float, a negative number), with the argument's name, before any work is done."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
