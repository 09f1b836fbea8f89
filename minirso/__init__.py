"""minirso: Random Search Optimization (Tripathi & Singh, 2020) from scratch in NumPy/CuPy."""
from .startup import hold_interrupts

hold_interrupts()  # first, before NumPy is imported: a Ctrl-C meanwhile must stop a starting run (startup.py)

from .backend import get_array_module, get_backend, to_numpy
from .data import MNIST, load_mnist
from .errors import BackendError, ConfigError, DataError, MinirsoError, ShapeError
from .losses import accuracy, confusion_matrix, softmax_cross_entropy
from .model import ParamRef, Sequential
from .rso import RSO, RSOConfig
from .nets import MODELS, comparison_mnist_net, conv_bn_net, he_normal_, paper_mnist_net, small_mnist_net, tiny_mnist_net

__version__ = "0.1.0"
