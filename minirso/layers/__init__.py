"""Hand-written layers: weights are plain arrays with the output unit on axis 0."""
from .activations import ReLU
from .base import Layer
from .batchnorm import BatchNorm2D
from .conv import Conv2D, conv2d, conv2d_backward
from .dense import Dense
from .pooling import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D
from .reference import conv2d_loops
from .reshape import Flatten

LAYER_TYPES = {cls.__name__: cls for cls in (Conv2D, Dense, ReLU, MaxPool2D, AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, Flatten,
                                                  BatchNorm2D)}

__all__ = ["Layer", "Conv2D", "Dense", "ReLU", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "Flatten",
           "BatchNorm2D",
           "conv2d", "conv2d_backward", "conv2d_loops", "LAYER_TYPES"]
