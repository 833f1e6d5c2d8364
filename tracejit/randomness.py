"""np.random inside traced code: every draw is a graph step that draws again at every call,
from the same generator and with the same arguments as eager NumPy, so a traced function
consumes eager NumPy's stream.

While a trace runs, np.random's functions are wrapped (outside a trace, and on other threads,
the wrapper calls NumPy's own function), and a Generator or RandomState the function gets as an
argument or reads from its globals or closure is handed to it wrapped. A draw that tracing
cannot see (a generator held by an object, a function imported from numpy.random by name)
would be frozen at trace time: the trace notices that the generator's state moved and the
function runs eagerly instead.
"""

import functools
import types
from contextlib import contextmanager

import numpy as np

from . import patches
from .errors import TraceError, UnsupportedError, user_location, with_location
from .graph import Node
from .ops import check_dtype

GENERATORS = (np.random.Generator, np.random.RandomState)
# Members of np.random / of a generator that do not draw, or that write in place
_NOT_DRAWS = {"seed", "get_state", "set_state", "shuffle", "bytes", "spawn", "bit_generator",
              "default_rng", "Generator", "RandomState", "SeedSequence", "BitGenerator",
              "MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64"}
_PYTHON_SCALARS = {float: np.float64, int: np.int64, bool: np.bool_}


def _probe(source):
    """A throwaway generator of the same kind: it gives a draw's shape and dtype at trace
    time without moving the user's stream."""
    if isinstance(source, np.random.Generator):
        return np.random.Generator(type(source.bit_generator)(0))
    return np.random.RandomState(0)


def record(source, method, *args, **kwargs):
    """Record `source.method(*args, **kwargs)` (np.random's function when source is None) as a
    random step of the current trace; returns its Proxy."""
    from .tracing import Proxy, current_trace
    where = f"np.random.{method}" if source is None else f"{type(source).__name__}.{method}"
    if any(isinstance(a, Proxy) for a in (*args, *kwargs.values())):
        raise with_location(UnsupportedError, f"{where} with a traced argument is not supported "
                            "in traced code; draw standard variates and transform them "
                            "(loc + scale * rng.standard_normal(shape))")
    sample = getattr(_probe(source), method)(*args, **kwargs)
    if isinstance(sample, np.ndarray):
        shape, dtype, weak, scalar = sample.shape, sample.dtype, False, False
    elif isinstance(sample, np.generic):
        shape, dtype, weak, scalar = (), sample.dtype, False, True
    elif type(sample) in _PYTHON_SCALARS:
        shape, dtype, weak, scalar = (), np.dtype(_PYTHON_SCALARS[type(sample)]), True, False
    else:
        raise with_location(UnsupportedError, f"{where} returns a {type(sample).__name__}, "
                            "which traced code cannot hold")
    check_dtype(dtype, f"the result of {where}")
    trace = current_trace()
    after = trace.last_draw
    attrs = {"source": source, "method": method, "params": tuple(args),
             "kwargs": tuple(sorted(kwargs.items())), "shape": shape, "dtype": dtype,
             "scalar": scalar, "seq": trace.draws}
    node = Node("random", () if after is None else (after,), attrs, shape, dtype, weak,
                user_location())
    trace.last_draw, trace.draws = node, trace.draws + 1
    return Proxy(node, trace)


class TracedGenerator:
    """A Generator or RandomState as traced code sees it: its draws are recorded."""

    def __init__(self, generator):
        self._generator = generator

    @property
    def __class__(self):  # isinstance(rng, np.random.Generator) as eagerly
        return type(self._generator)

    def __getattr__(self, name):
        attr = getattr(self._generator, name)
        if name.startswith("_") or name in _NOT_DRAWS or not callable(attr):
            return attr
        return functools.partial(record, self._generator, name)


def wrap(value):
    return TracedGenerator(value) if isinstance(value, GENERATORS) else value


def with_wrapped_generators(fn):
    """fn, or a copy of it whose globals and closure cells hand it wrapped generators."""
    if not isinstance(fn, types.FunctionType):
        return fn
    names = fn.__code__.co_names
    g = fn.__globals__
    in_globals = [n for n in names if isinstance(g.get(n), GENERATORS)]
    cells = fn.__closure__ or ()
    if not in_globals and not any(isinstance(_contents(c), GENERATORS) for c in cells):
        return fn
    new_globals = dict(g)
    for n in in_globals:
        new_globals[n] = wrap(g[n])
    closure = tuple(types.CellType(wrap(_contents(c))) for c in cells) or None
    copy = types.FunctionType(fn.__code__, new_globals, fn.__name__, fn.__defaults__, closure)
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


def _contents(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return None


# np.random's functions: recorded when called from traced code
for _name in np.random.__all__:
    if _name not in _NOT_DRAWS and callable(getattr(np.random, _name)):
        patches.wrap(np.random, _name, functools.partial(record, None, _name))


def _fingerprint(generator):
    state = generator.get_state(legacy=False) if isinstance(generator, np.random.RandomState) \
        else generator.bit_generator.state
    return _frozen(state)


def _frozen(state):
    """A comparable copy of a generator state: nested dicts of ints and arrays."""
    if isinstance(state, dict):
        return tuple((k, _frozen(v)) for k, v in state.items())
    return state.tobytes() if isinstance(state, np.ndarray) else state


@contextmanager
def draws_recorded(generators):
    """Afterwards, raise TraceError if one of `generators` (or np.random's global one) drew
    numbers that tracing did not record."""
    watched = [np.random.mtrand._rand, *generators]
    before = [_fingerprint(g) for g in watched]
    yield
    for g, fingerprint in zip(watched, before):
        if _fingerprint(g) != fingerprint:
            raise TraceError(
                "the function drew random numbers in a way tracing cannot follow (a generator "
                "held by an object, or a function imported from numpy.random by name), so they "
                "would be the same at every call; call np.random.<function> or a generator "
                "passed as an argument (or read from a global) instead")
