"""RSO: Algorithm 1 of Tripathi & Singh (2020), with the authors' options and three evaluators."""
from .config import RSOConfig
from .cost import forward_macs, rest_macs, round_macs, trial_macs
from .evaluators import Evaluator, LiteralEvaluator, PrefixEvaluator
from .fast import IncrementalEvaluator, Structure
from .optimizer import EVALUATOR_CLASSES, RSO, make_evaluator
from .plan import SearchedParam, annealed_sigma, search_plan, sigma_d_of, visit_order

__all__ = ["RSO", "RSOConfig", "Evaluator", "LiteralEvaluator", "PrefixEvaluator", "IncrementalEvaluator",
           "Structure", "EVALUATOR_CLASSES", "make_evaluator", "SearchedParam", "annealed_sigma", "search_plan",
           "sigma_d_of", "visit_order", "forward_macs", "rest_macs", "round_macs", "trial_macs"]
