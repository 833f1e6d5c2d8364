"""NumPy functions that take no array argument, so `__array_function__` never sees them, but
that traced code must record: np.random's draws (randomness.py) and the constructors np.zeros,
np.ones, np.empty and np.full (numpy_api.py), whose arrays traced code may then write into.

Each module registers wrappers here; they replace NumPy's functions while any thread traces
(`installed()`). A wrapper records only when the calling thread is tracing and the call comes
from the user's code; otherwise (other threads, NumPy's and tracejit's own calls) it calls
NumPy's function.
"""

import linecache
import sys
import threading
from contextlib import contextmanager

from .errors import is_internal

_WRAPPERS = {}  # (module, name) -> (original, record), record(*args, **kwargs) -> Proxy
_lock = threading.Lock()
_depth = [0]


def wrap(module, name, record):
    """While tracing, `module.name(...)` called from user code returns `record(...)`."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        from .tracing import current_trace
        if current_trace() is None or not _called_by_name(sys._getframe(1), name):
            return original(*args, **kwargs)
        return record(*args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = original.__name__, original.__doc__
    wrapper.__wrapped__ = original
    _WRAPPERS[(module, name)] = (original, wrapper)


def _called_by_name(frame, name):
    """True if `frame` is user code whose current call spells `...name(`: compiled code that
    looks the function up as a module attribute (NumPy's Cython calls np.empty) runs under the
    user's frame too, and must get NumPy's own array."""
    code = frame.f_code
    if is_internal(code.co_filename) or not hasattr(code, "co_positions"):
        return False
    positions = list(code.co_positions())
    index = frame.f_lasti // 2
    if index >= len(positions) or None in positions[index]:
        return False
    line, _, col, _ = positions[index]
    callee = linecache.getline(code.co_filename, line)[col:].split("(", 1)[0]
    return callee.split(".")[-1].strip() == name


@contextmanager
def installed():
    with _lock:
        _depth[0] += 1
        if _depth[0] == 1:
            for (module, name), (_, wrapper) in _WRAPPERS.items():
                setattr(module, name, wrapper)
    try:
        yield
    finally:
        with _lock:
            _depth[0] -= 1
            if _depth[0] == 0:
                for (module, name), (original, _) in _WRAPPERS.items():
                    setattr(module, name, original)
