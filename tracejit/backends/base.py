"""The backend interface: the little the executor asks of a backend.

A backend is one module of this package, named in BACKENDS, with
  compile_kernel(kernel, layouts, parallel=None, over=None, out_layouts=None,
                 checks_inputs=False) -> CompiledKernel
that renders a fusion Kernel (through its kernels.describe description, or its own renderer)
for inputs arriving with `layouts` and returns a callable taking the kernel's inputs, then its
outputs, then (reduction kernels) the sizes of its domain, then (when the kernel reports
errors) the error flag. Host steps (views, matmul, copies) run as NumPy on the host unless
the backend lists its own in HOST_OPS: op name -> (ref, into), called as the op table's.
"""

import contextlib
import importlib
import threading

import numpy as np

from ..errors import UnsupportedError
from ..kernels import reports_errors, source_name
from ..ops import OPS

BACKENDS = ("cpu", "cuda")


def load_backend(name):
    """The backend module called `name`; UnsupportedError when it is unknown or unavailable."""
    if name not in BACKENDS:
        raise UnsupportedError(f"backend {name!r} is not available; use one of "
                               f"{', '.join(map(repr, BACKENDS))}")
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError as e:
        raise UnsupportedError(f"backend {name!r} is not available: {e}") from e


_watch = threading.local()


@contextlib.contextmanager
def watching_compiles(callback):
    """Within it, backends running in this thread call `callback` right before they compile
    (or load from disk) a kernel that is not in memory: the part of a build that takes long."""
    _watch.callback = callback
    try:
        yield
    finally:
        _watch.callback = None


def compiling():
    """Called by a backend right before it compiles or loads a kernel (see watching_compiles)."""
    callback = getattr(_watch, "callback", None)
    if callback is not None:
        callback()


def host_function(backend, node, into):
    """What runs host step `node`: its `into` form (writing into a given array) or its ref."""
    ref, into_fn = getattr(backend, "HOST_OPS", {}).get(node.op, (OPS[node.op].ref,
                                                                   OPS[node.op].into))
    return into_fn if into else ref


def is_device_array(x):
    """A CUDA device array of numba (or its simulator), CuPy or PyTorch; not a NumPy array."""
    return (hasattr(x, "__cuda_array_interface__") or hasattr(x, "copy_to_host")) \
        and not isinstance(x, np.ndarray)


def call_on_device(traced, leaves, treedef):
    """traced(*args) for device-array arguments: run on the device by the CUDA backend."""
    return load_backend("cuda").call_on_device(traced, leaves, treedef)


class CompiledKernel:
    """A kernel's generated source and its compiled entry point for one signature."""

    def __init__(self, kernel, source, entry, compiled_now, layouts=None, checks_inputs=False):
        self.kernel = kernel
        # True: the entry returns 1, having run nothing, for array inputs of another shape or
        # layout than it was compiled for (cpu.py's _input_checks), else 0
        self.checks_inputs = checks_inputs
        self.layouts = layouts  # how each input arrives: SCALAR, CONTIGUOUS or STRIDED
        self.source = source
        self.name = source_name(source)
        self.entry = entry
        self.compiled_now = compiled_now
        self.reports_errors = reports_errors(kernel.nodes)  # takes an error flag last

    @property
    def ops(self):
        return self.kernel.ops
