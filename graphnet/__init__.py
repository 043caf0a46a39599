"""graphnet: a general DAG neural-graph engine on numpy.

A :class:`Graph` holds named Input, Hidden and Output nodes joined by dense
synapses; networkx keeps the structure, so forward and backward visit every
node exactly once.
"""

from . import _cuda, _dask  # noqa: F401  (they register the "cuda" device and dask arrays' handler)
from . import activations, callbacks, distributed, initializers, losses, metrics, optimizers, regularizers, schedules
from ._registry import register
from ._version import __version__
from .attributions import Attributions
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint, StatsRecorder
from .diff import GraphDiff, diff
from .errors import (
    CycleError,
    GraphError,
    ModelFileError,
    ModelImportError,
    NotFoundError,
    RenderError,
    ShapeError,
    TrainingError,
)
from .gradient_check import GradientReport, check_gradients
from .graph import Graph
from .interop import from_keras, from_onnx, from_sklearn, from_torch
from .nodes import Hidden, Input, Node, Output
from .plots import plot_history
from .saving import load
from .layers import Dense
from .sequential import Sequential
from .serving import CompiledPredict
from .statistics import Statistics
from .weights import TransferReport
from .synapse import Synapse

__all__ = [
    "Graph",
    "Node",
    "Input",
    "Hidden",
    "Output",
    "Synapse",
    "Sequential",
    "Dense",
    "load",
    "register",
    "diff",
    "GraphDiff",
    "Attributions",
    "CompiledPredict",
    "from_keras",
    "from_torch",
    "from_onnx",
    "from_sklearn",
    "History",
    "Callback",
    "EarlyStopping",
    "ModelCheckpoint",
    "StatsRecorder",
    "check_gradients",
    "GradientReport",
    "Statistics",
    "TransferReport",
    "plot_history",
    "GraphError",
    "CycleError",
    "NotFoundError",
    "ShapeError",
    "TrainingError",
    "ModelFileError",
    "RenderError",
    "ModelImportError",
    "activations",
    "callbacks",
    "distributed",
    "initializers",
    "losses",
    "metrics",
    "optimizers",
    "regularizers",
    "schedules",
    "__version__",
]
