"""Exception classes and the user-source locations that error messages name."""

import os
import sys
import threading
from contextlib import contextmanager

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_EXAMPLES = os.path.join(_PACKAGE_DIR, "examples.py")
_NUMPY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__import__("numpy").__file__)))


class TracejitError(Exception):
    """Base class of every error tracejit raises on purpose."""


class TraceError(TracejitError):
    """The function cannot be traced (control flow on array values, in-place update, ...)."""


class ShapeError(TracejitError, ValueError):
    """Operands do not broadcast, or an axis is out of range."""


class UnsupportedError(TraceError):
    """No rule for this NumPy function, argument or dtype."""


class ScalarValueNeeded(TraceError):
    """A Python scalar argument was used as a Python value (float(k), range(k), `if k`): the
    function is traced again with those arguments static (`leaves`: their positions)."""

    def __init__(self, message, leaves):
        super().__init__(message)
        self.leaves = leaves


class InternalError(TraceError):
    """tracejit failed on code it should handle (a bug to report); the cause is chained."""


class GraphFormatError(TracejitError, ValueError):
    """A saved graph is malformed or names an unknown op."""


class FallbackWarning(UserWarning):
    """A traced function ran eagerly because tracing failed; the message says why and where."""


class CompileTimeWarning(UserWarning):
    """A first call spent long compiling a large graph (often a Python loop unrolled by
    tracing); the message says how large, which line made it, and what to do."""


def is_internal(filename):
    path = os.path.abspath(filename)
    if path == _EXAMPLES:  # sample user code shipped with the package: its lines are named
        return False
    return (
        path.startswith(_PACKAGE_DIR)
        or path.startswith(_NUMPY_DIR)
        or filename.startswith("<tracejit")
        or filename.startswith("<__array_function__")
    )


_located = threading.local()


@contextmanager
def located(loc):
    """Inside this block user_location() is `loc` (when not None): a symbolic program replayed
    while tracing names the line where each of its symbols was written."""
    previous = getattr(_located, "loc", None)
    _located.loc = loc
    try:
        yield
    finally:
        _located.loc = previous


def user_location(skip=1):
    """(filename, lineno) of the innermost frame outside tracejit and NumPy, or None."""
    loc = getattr(_located, "loc", None)
    if loc is not None:
        return loc
    frame = sys._getframe(skip)
    while frame is not None:
        name = frame.f_code.co_filename
        if not is_internal(name):
            return (name, frame.f_lineno)
        frame = frame.f_back
    return None


def user_stacklevel():
    """The `stacklevel` for warnings.warn, called from here, that names the user's frame."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and is_internal(frame.f_code.co_filename):
        level, frame = level + 1, frame.f_back
    return level


def traceback_location(tb):
    """(filename, lineno) of the innermost user frame of a traceback, or None."""
    loc = None
    while tb is not None:
        if not is_internal(tb.tb_frame.f_code.co_filename):
            loc = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return loc


def format_location(loc):
    return f"{os.path.basename(loc[0])}:{loc[1]}" if loc else "<unknown>"


def with_location(exc_type, message, loc=None):
    """An exception whose message ends with the user's file:line."""
    loc = loc or user_location(2)
    err = exc_type(f"{message} (at {format_location(loc)})" if loc else message)
    err.location = loc
    return err
