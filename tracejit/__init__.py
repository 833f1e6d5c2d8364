"""tracejit: put @tracejit.trace on a NumPy function and it runs as fused Numba kernels."""

from . import numpy_api  # noqa: F401  (installs the NumPy handlers and the array methods)
from .api import CacheInfo, TracedFunction, disable, grad, value_and_grad
from .api import trace_decorator as trace
from .autodiff import no_grad, stop_gradient
from .errors import (
    CompileTimeWarning,
    FallbackWarning,
    GraphFormatError,
    InternalError,
    ShapeError,
    TraceError,
    TracejitError,
    UnsupportedError,
)
from .graph import Graph, verify
from .interpret import interpret
from .serialize import load, load_params, save_params
from .symbolic import Constant, Variable, compile, gradients

__all__ = [
    "trace", "TracedFunction", "CacheInfo", "disable", "grad", "value_and_grad",
    "stop_gradient", "no_grad", "Graph", "verify", "interpret",
    "TracejitError", "TraceError", "ShapeError", "UnsupportedError", "GraphFormatError",
    "InternalError",
    "FallbackWarning",
    "CompileTimeWarning",
    "Variable", "Constant", "compile", "gradients", "load", "save_params", "load_params",
]
__version__ = "0.1.0"
