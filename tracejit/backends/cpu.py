"""The CPU backend: kernels compiled with numba.njit, cached by source and Numba signature."""

import os
import threading
from collections import OrderedDict

# GNU OpenMP threads spin after each parallel loop; on a busy machine that spinning starves the
# next kernel (measured: 16 ms instead of 0.05 ms per 200k-element kernel). Sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import types  # noqa: E402

from ..ops import compute_dtype  # noqa: E402
from ..passes.fusion import op_cost  # noqa: E402
from . import disk_cache, scalar_helpers, vecmath  # noqa: E402
from .base import CompiledKernel  # noqa: E402
from .codegen import (  # noqa: E402
    CONTIGUOUS,
    SCALAR,
    elementwise_source,
    reduction_source,
    reports_errors,
    source_name,
)

# A kernel runs its loop in parallel when elements x per-element cost (fusion.op_cost: an add
# is 1, a transcendental 20) reaches PARALLEL_WORK. Waking the worker threads costs 40-80 us
# (passive OpenMP waiting); measured on 2 cores, parallel first wins at 2^19 elements for
# a * b + c (cost 2) and at 2^15-2^16 for np.exp(-a * a) * b + c (cost 24).
PARALLEL_WORK = 1 << 20

# Kernels kept compiled across all traced functions; the least recently used is dropped beyond
# this (executables that still use a dropped kernel keep their own reference to it).
MAX_KERNELS = int(os.environ.get("TRACEJIT_MAX_KERNELS", "1024"))


def _last_level_cache_bytes():
    try:
        size = os.sysconf("SC_LEVEL3_CACHE_SIZE")
    except (ValueError, OSError, AttributeError):
        size = 0
    return size if size > 0 else 32 << 20


# A parallel elementwise kernel whose arrays total more than 1.5x the last-level cache writes
# its outputs with non-temporal stores: they skip reading each output line before writing it
# (measured, 10M float64: a * b + c * d - e 16.2 ms instead of 19.6, a * 2 + 1 3.7 instead of
# 5.6). The streaming loop is scalar (LLVM does not vectorise non-temporal stores of unknown
# alignment), so only for cheap elements that move at least 16 bytes: a float32 a * 2 + 1
# (8 bytes) measured 7% slower streamed.
STREAM_BYTES = 3 * _last_level_cache_bytes() // 2
STREAM_MAX_COST = 4
STREAM_MIN_ELEMENT_BYTES = 16


def stream_from(kernel, layouts):
    """The element count from which this kernel streams its outputs, or None."""
    if kernel.kind != "elementwise" or any(o.dtype == np.bool_ for o in kernel.outputs) \
            or sum(op_cost(n) for n in kernel.nodes) > STREAM_MAX_COST:
        return None
    per_element = sum(compute_dtype(n.dtype).itemsize for n, lay in zip(kernel.inputs, layouts)
                      if lay != SCALAR and n.shape == kernel.shape)
    per_element += sum(compute_dtype(n.dtype).itemsize for n in kernel.outputs)
    if per_element < STREAM_MIN_ELEMENT_BYTES:
        return None
    return -(-STREAM_BYTES // per_element)


_lock = threading.RLock()
_dispatchers = OrderedDict()  # (source, parallel) -> numba dispatcher, least recent first

# Numba's "workqueue" threading layer (used when neither TBB nor OpenMP is available) is not
# thread-safe: two threads launching parallel kernels at once can crash the process. Parallel
# launches are serialised under that layer only; TBB and OpenMP run them concurrently.
_parallel_launch = threading.Lock()
_layer_is_threadsafe = [None]


def _serialise_if_needed(entry):
    def launch(*args):
        if _layer_is_threadsafe[0]:
            return entry(*args)
        with _parallel_launch:
            result = entry(*args)
            if _layer_is_threadsafe[0] is None:  # known once a parallel kernel has run
                _layer_is_threadsafe[0] = numba.threading_layer() != "workqueue"
            return result
    launch.__wrapped__ = entry
    return launch


def _namespace():
    ns = {"np": np, "prange": numba.prange, "_threads": numba.get_num_threads}
    ns.update({k: v for k, v in vars(scalar_helpers).items() if k.startswith("_")
               and callable(v)})
    ns.update(vecmath.FUNCTIONS)
    return ns


def numba_type(node, layout):
    dt = numba.from_dtype(compute_dtype(node.dtype))
    if layout == SCALAR:
        if node.weak:
            return {"b": types.boolean, "i": types.int64, "f": types.float64}[node.dtype.kind]
        return dt
    return types.Array(dt, node.ndim, "C" if layout == CONTIGUOUS else "A")


def use_parallel(kernel, parallel):
    if not kernel.shape:  # one element (a 0-d domain): nothing to split, and no loop to split
        return False
    if parallel is None:
        work = int(np.prod(kernel.shape, dtype=np.int64)) * sum(op_cost(n) for n in kernel.nodes)
        return work >= PARALLEL_WORK
    return bool(parallel)


def compile_kernel(kernel, layouts, parallel=None, over=None, out_layouts=None):
    """Compile (or fetch from the cache) the kernel for these input layouts. `over`: output
    index -> index of the input an elementwise kernel writes it over (in place)."""
    par = use_parallel(kernel, parallel)
    sig = tuple(numba_type(n, lay) for n, lay in zip(kernel.inputs, layouts))
    out_layouts = out_layouts or [CONTIGUOUS] * len(kernel.outputs)
    sig += tuple(numba_type(n, lay) for n, lay in zip(kernel.outputs, out_layouts))
    if kernel.kind == "elementwise":
        source = elementwise_source(kernel, layouts, par, par and stream_from(kernel, layouts),
                                    over, out_layouts)
    else:  # reduction kernels also take the sizes of their domain
        source = reduction_source(kernel, layouts, par)
        sig += (types.int64,) * len(kernel.shape)
    if reports_errors(kernel.nodes):
        sig += (types.int64[::1],)
    with _lock:
        disp = _dispatchers.get((source, par))
        if disp is None:
            ns = _namespace()
            exec(compile(source, f"<tracejit-kernel {source_name(source)}>", "exec"), ns)
            disp = numba.njit(parallel=par, error_model="numpy", nogil=True)(ns["kernel"])
            disp = disk_cache.attach(disp, source, par)  # loads what another process compiled
            _dispatchers[(source, par)] = disp
            while len(_dispatchers) > MAX_KERNELS:
                _dispatchers.popitem(last=False)
        else:
            _dispatchers.move_to_end((source, par))
        compiled_now = sig not in disp.overloads
        entry = disp.compile(sig)
        compiled_now = compiled_now and not disk_cache.loaded(disp, sig)
    if par:
        entry = _serialise_if_needed(entry)
    return CompiledKernel(kernel, source, entry, compiled_now)


def kernel_cache_size():
    """How many kernel sources are compiled and kept (bounded by MAX_KERNELS)."""
    return len(_dispatchers)
