"""Captured state: what a traced function reads besides its arguments.

That is the globals and closure cells its code names, the default values of its parameters,
and, following those (and static arguments such as `self`), the items of dicts, lists and tuples
and the attributes its code names on objects and modules, a few levels deep; Python functions
found there are followed the same way. Each place is a Slot. Arrays found there are graph
inputs read live at every call, so in-place updates are seen; every slot is guarded, so a
rebinding (`W = new_W`, `cfg.lr = 0.05`) re-traces, except that an array read live may be
rebound to another of the same shape, dtype and layout, which is simply read instead.
"""

import types

import numpy as np

from .errors import TraceError
from .graph import Node
from .ops import check_dtype

MISSING = object()
_MAX_DEPTH = 3
_MAX_SLOTS = 512
_MAX_ITEMS = 64  # of one dict or list
# Arrays reached but not read live (used through plain NumPy, e.g. `W.T` before it meets a
# traced value) are compared with a snapshot at each call, up to this size; above it, only
# their identity is guarded.
_SNAPSHOT_BYTES = 16 << 20
_LIBRARIES = ("numpy", "tracejit", "numba", "llvmlite", "builtins", "functools", "typing")
_SCALARS = (bool, int, float, complex, str, bytes, type(None))


class Slot:
    """One place the function reads: `read()` gives what is there now (or MISSING)."""

    __slots__ = ("read", "name", "value")

    def __init__(self, read, name, value):
        self.read = read
        self.name = name
        self.value = value


def _dict_reader(d, key):
    return lambda: d.get(key, MISSING)


def _cell_reader(cell):
    def read():
        try:
            return cell.cell_contents
        except ValueError:  # an empty cell
            return MISSING
    return read


def _list_reader(lst, i):
    return lambda: lst[i] if i < len(lst) else MISSING


def _code_names(code, out):
    out.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_names(const, out)
    return out


def _is_library(module_name):
    return (module_name or "").split(".")[0] in _LIBRARIES


def _is_library_value(value):
    if isinstance(value, types.ModuleType):
        return _is_library(value.__name__)
    if isinstance(value, (np.ufunc, types.BuiltinFunctionType)):
        return True
    return isinstance(value, types.FunctionType) and _is_library(value.__module__)


def find_slots(fn, static_values):
    """The Slots fn reads: from its globals, closure and defaults, and from static arguments
    (name, value) pairs."""
    slots, names, seen = [], set(), set()

    def add(read, name, value, depth):
        if _is_library_value(value):
            return  # `np`, `np.exp`, `math.pi`'s module: rebinding those is not worth a check
        if len(slots) < _MAX_SLOTS:
            slots.append(Slot(read, name, value))
            explore(value, name, depth + 1)

    def visit_function(f, depth):
        if id(f) in seen or _is_library(f.__globals__.get("__name__")):
            return
        seen.add(id(f))
        own = _code_names(f.__code__, set())
        names.update(own)
        g = f.__globals__
        for n in sorted(own):
            if n in g:
                add(_dict_reader(g, n), n, g[n], depth)
        for n, cell in zip(f.__code__.co_freevars, f.__closure__ or ()):
            value = _cell_reader(cell)()
            if value is not MISSING:
                add(_cell_reader(cell), n, value, depth)
        for i, value in enumerate(f.__defaults__ or ()):
            explore(value, f"{f.__name__} default {i}", depth + 1)
            if type(value) is np.ndarray:
                add(lambda v=value: v, f"default {i} of {f.__name__}", value, depth)

    def explore(value, name, depth):
        if depth > _MAX_DEPTH or id(value) in seen or isinstance(value, _SCALARS) or \
                isinstance(value, (np.ndarray, np.generic, type)):
            return
        if isinstance(value, types.FunctionType):
            visit_function(value, depth)
            return
        seen.add(id(value))
        if type(value) is dict:
            for key in list(value)[:_MAX_ITEMS]:
                add(_dict_reader(value, key), f"{name}[{key!r}]", value[key], depth)
        elif type(value) is list:
            for i, item in enumerate(value[:_MAX_ITEMS]):
                add(_list_reader(value, i), f"{name}[{i}]", item, depth)
        elif isinstance(value, tuple):  # immutable: its items are fixed by its own guard
            for i, item in enumerate(value[:_MAX_ITEMS]):
                add(lambda v=item: v, f"{name}[{i}]", item, depth)
        elif isinstance(value, types.ModuleType):
            if not _is_library(value.__name__):
                d = vars(value)
                for n in sorted(names & d.keys()):
                    add(_dict_reader(d, n), f"{name}.{n}", d[n], depth)
        elif not isinstance(value, (types.BuiltinFunctionType, types.MethodWrapperType)):
            if isinstance(value, types.MethodType):  # a bound method: its code, then its object
                visit_function(value.__func__, depth)
                value = value.__self__
            inner = getattr(value, "fn", None)  # a traced function called from this one
            if isinstance(inner, types.FunctionType):
                visit_function(inner, depth)
            cls = type(value)
            for n in sorted(names | {"__call__"}):  # methods it calls read attributes too
                method = cls.__dict__.get(n) if n == "__call__" else getattr(cls, n, None)
                if isinstance(method, types.FunctionType):
                    visit_function(method, depth)
            d = getattr(value, "__dict__", None)
            if type(d) is dict:
                for n in sorted(names & d.keys()):
                    add(_dict_reader(d, n), f"{name}.{n}", d[n], depth)

    if isinstance(fn, types.FunctionType):
        visit_function(fn, 0)
    for name, value in static_values:
        explore(value, name, 1)
    return slots


class Capture:
    """The captured state of one trace: hands out graph inputs for the arrays found in slots
    (numbered after the arguments' leaves) and makes the guard checked at each call."""

    def __init__(self, slots, first_index):
        self.slots = slots
        self.first_index = first_index
        self.slot_of = {}  # id(array) -> index of the first slot holding it
        for i, s in enumerate(slots):
            if type(s.value) is np.ndarray:
                self.slot_of.setdefault(id(s.value), i)
        self.inputs = {}  # slot index -> input node, in the order they were first read
        # to tell a function that writes into captured arrays (which tracing would do once)
        self.before = {i: s.value.copy() for i, s in enumerate(slots)
                       if type(s.value) is np.ndarray and s.value.nbytes <= _SNAPSHOT_BYTES}

    def check_unwritten(self):
        """Raise TraceError if the function wrote into a captured array while tracing (eagerly
        the write happens at every call, in a trace only once), after undoing the write."""
        for i, copy in self.before.items():
            v = self.slots[i].value
            if not np.array_equal(v, copy, equal_nan=v.dtype.kind in "fc"):
                v[...] = copy  # undo the trace's write: the eager run makes it
                raise TraceError(f"the function writes into the captured array "
                                 f"{self.slots[i].name!r}, which tracing does not support yet "
                                 "(pass it as an argument and return the new value)")

    def input_for(self, value):
        """The graph input for a captured array, or None if value is not captured state."""
        i = self.slot_of.get(id(value))
        if i is None:
            return None
        node = self.inputs.get(i)
        if node is None:
            dtype = check_dtype(value.dtype, f"the captured array {self.slots[i].name!r}")
            node = Node("input", (), {"name": self.slots[i].name,
                                      "index": self.first_index + len(self.inputs),
                                      "scalar": False}, value.shape, dtype)
            self.inputs[i] = node
        return node

    def guard(self):
        """A Guard for the slots as they are now, or None when there is nothing to check."""
        live, checks = [], []
        for i, s in enumerate(self.slots):
            v = s.value
            if i in self.inputs:
                live.append((self.inputs[i].attrs["index"], s.read, s.name,
                             _spec(v)))
            elif type(v) is np.ndarray and v.nbytes <= _SNAPSHOT_BYTES:
                checks.append((s.read, s.name, _SNAPSHOT, (v, v.copy())))
            elif isinstance(v, _SCALARS) or isinstance(v, np.generic):
                checks.append((s.read, s.name, _EQUAL, v))
            else:
                checks.append((s.read, s.name, _SAME, v))
        if not live and not checks:
            return None
        live.sort(key=lambda entry: entry[0])
        return Guard(tuple(entry[1:] for entry in live), tuple(checks))

    def live_values(self):
        """The captured arrays as they were while tracing, in input order."""
        return [self.slots[i].value for i in self.inputs]


_SAME, _EQUAL, _SNAPSHOT = "same", "equal", "snapshot"


def _spec(v):
    """What a live captured array's kernels were compiled for: shape, dtype and layout."""
    return v.shape, v.dtype, v.flags.c_contiguous, v.flags.f_contiguous


def _unchanged(mode, now, then):
    if mode is _SAME:
        return now is then
    if mode is _EQUAL:
        return type(now) is type(then) and (now == then or now != now and then != then)
    array, copy = then
    return now is array and np.array_equal(array, copy, equal_nan=array.dtype.kind in "fc")


class Guard:
    """Checked before each cached call: `live()` returns the captured arrays to pass to the
    kernels, or None when some captured value changed in a way that needs a new trace."""

    __slots__ = ("reads", "checks")

    def __init__(self, reads, checks):
        self.reads = reads  # (read, name, _spec(array)) per live array
        self.checks = checks  # (read, name, mode, expected)

    def live(self):
        for read, _, mode, expected in self.checks:
            if not _unchanged(mode, read(), expected):
                return None
        out = []
        for read, _, spec in self.reads:
            v = read()
            if type(v) is not np.ndarray or _spec(v) != spec:
                return None
            out.append(v)
        return out

    def why_stale(self):
        """Which captured name changed (for TRACEJIT_LOG=recompiles)."""
        for read, name, mode, expected in self.checks:
            if not _unchanged(mode, read(), expected):
                return f"the captured value {name!r} changed"
        for read, name, spec in self.reads:
            v = read()
            if type(v) is not np.ndarray or _spec(v) != spec:
                return f"the captured array {name!r} was rebound to another shape, dtype or layout"
        return "captured state changed"
