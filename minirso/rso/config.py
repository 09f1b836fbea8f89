"""RSO's options, with the paper's and the authors' defaults."""
from dataclasses import dataclass

from ..options import Options

ORDERS = ("output_first", "input_first")
EVALUATORS = ("incremental", "prefix", "literal", "sharded")
BLOCKS = ("weight", "unit", "layer", "network")   # the paper's update strategies (strategies.py)
PARALLEL = ("none", "layer", "unit")               # the paper's parallel variants (strategies.py)
PREFIX_STATISTICS = ("batch", "running")           # batch-norm before the searched layer (see RSOConfig)
SIGMA_FROM = ("weights", "fan_in")                 # where sigma_d comes from (plan.py)


@dataclass
class RSOConfig(Options):
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
        "prefix" (the authors' cache), "literal" (a full forward pass per candidate) or "sharded"
        (the prefix cache with each mini-batch cut into ``shards`` parts, batch-norm statistics and
        losses combined across them: the arithmetic of data-parallel RSO, sharded.py).
    shards: the parts of each mini-batch with evaluator="sharded" (1); at most batch_size.
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
    sigma_scale: every searched array's sigma_d (bn_sigma too) is multiplied by this before
        annealing (1.0: Algorithm 1); the one step size a tuning grid varies (benchmarks/gradient_free.py).
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
    sigma_scale: float = 1.0
    shards: int = 1

    def validate(self):
        self.integer("rounds")
        self.integer("batch_size")
        self.number("anneal", "in [0, 1] (the final sigma fraction)", lambda v: 0.0 <= v <= 1.0)
        self.number("bn_sigma", "positive", lambda v: v > 0)
        self.number("weight_decay", "in [0, 1)", lambda v: 0.0 <= v < 1.0)
        self.choice("order", ORDERS)
        self.choice("evaluator", EVALUATORS)
        self.integer("eval_every", lowest=0)
        self.integer("stats_images")
        self.choice("block", BLOCKS)
        self.choice("parallel", PARALLEL)
        self.choice("prefix_statistics", PREFIX_STATISTICS)
        self.choice("sigma_from", SIGMA_FROM)
        self.number("sigma_scale", "positive", lambda v: v > 0)
        self.integer("shards")
        self.need(self.shards == 1 or self.evaluator == "sharded", "shards",
                  f"1 unless evaluator='sharded' (evaluator={self.evaluator!r})")
        self.need(self.shards <= self.batch_size, "shards", f"at most batch_size={self.batch_size}")
        self.need(self.evaluator != "sharded" or (self.block == "weight" and self.parallel == "none"), "evaluator",
                  f"incremental, prefix or literal with block={self.block!r}, parallel={self.parallel!r} (the sharded "
                  f"evaluator runs Algorithm 1's sweep only: block='weight', parallel='none')")
        self.need(self.parallel == "none" or (self.block == "weight" and not self.weight_decay), "parallel",
                  f"'none' unless block='weight' and weight_decay=0 (a parallel sweep searches single weights without "
                  f"weight decay; block={self.block!r}, weight_decay={self.weight_decay!r})")
        return self
