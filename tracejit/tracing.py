"""Tracing: run the user's function on Proxy objects that record a Graph instead of computing.

A Proxy stands for one array value. Python operators, NumPy ufuncs (`__array_ufunc__`) and NumPy
functions (`__array_function__`) on proxies create graph nodes through the op table. Anything the
graph cannot express (control flow on values, conversion to Python numbers, unknown functions)
raises a TraceError that names the user's line.
"""

import functools
import inspect
import threading

import numpy as np

from . import mutation, patches, pytree, randomness, selection
from .capture import Capture, find_slots
from .errors import (
    ScalarValueNeeded,
    TraceError,
    TracejitError,
    UnsupportedError,
    user_location,
    with_location,
)
from .graph import Graph, Node
from .ops import OPS, UFUNC_OPS, check_dtype, returns_numpy_scalar, view_base

_state = threading.local()


class Trace:
    """One run of a function on proxies; proxies remember it so leaks can be detected. A trace
    started inside another (tj.grad of a closure) may read the enclosing trace's values."""

    def __init__(self, name, parent=None, capture=None):
        self.name = name
        self.active = True
        self.parent = parent
        self.capture = capture  # the outermost trace's Capture: state read live at each call
        self.last_draw, self.draws = None, 0  # random steps, kept in program order

    def root(self):
        tr = self
        while tr.parent is not None:
            tr = tr.parent
        return tr

    def sees(self, other):
        """True if values of trace `other` may be used here: this trace or an enclosing one."""
        tr = self
        while tr is not None and tr is not other:
            tr = tr.parent
        return tr is not None


def current_trace():
    return getattr(_state, "trace", None)


# ---------------------------------------------------------------------------------------------
# values -> nodes

def const_node(value):
    """A graph constant for a Python scalar, NumPy scalar or array captured by the function."""
    if isinstance(value, np.generic):  # before float: np.float64 subclasses float
        check_dtype(value.dtype, "a constant scalar")
        return Node("const", (), {"value": value}, (), value.dtype)  # stays a NumPy scalar
    if type(value) in (bool, int, float):
        dtype = {bool: np.bool_, int: np.int64, float: np.float64}[type(value)]
        if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
            raise UnsupportedError(f"the Python int {value} does not fit in int64")
        return Node("const", (), {"value": value}, (), dtype, weak=True)
    if isinstance(value, np.ndarray):
        arr = np.array(value)  # a private copy: later changes to the caller's array do not leak in
        check_dtype(arr.dtype, "a constant array")
        return Node("const", (), {"value": arr}, arr.shape, arr.dtype)
    if isinstance(value, selection.Selection):
        value.__array__()  # its refusal: the length is data-dependent
    raise UnsupportedError(f"a value of type {type(value).__name__} cannot be used as an array "
                           "in traced code")


def as_node(value, trace):
    if isinstance(value, Proxy):
        value._check(trace)
        return value.node
    if type(value) is np.ndarray and trace is not None:
        capture = trace.root().capture
        node = capture.input_for(value) if capture is not None else None
        if node is not None:  # captured state: read live at each call, not copied
            return node
    return const_node(value)


def apply(op_name, args, _weak=False, **attrs):
    """Record one op on the current trace and return a Proxy for its result. The result is weak
    (a Python scalar) only for Python operators on Python scalars (`_weak`): NumPy functions
    return NumPy scalars, which are strongly typed."""
    op = OPS[op_name]
    trace = _trace_of(args)
    loc = user_location(2)
    try:
        nodes = [as_node(a, trace) for a in args]
        shape, dtype = op.infer(nodes, attrs)
        check_dtype(dtype, f"the result of {op_name}")
    except TracejitError as e:
        if getattr(e, "location", None):  # already names the user's line
            raise
        raise with_location(type(e), str(e), loc) from None
    weak = _weak and op.kind == "elementwise" and bool(nodes) and all(n.weak for n in nodes)
    node = Node(op_name, nodes, attrs, shape, dtype, weak, loc)
    if getattr(_state, "no_grad", 0) and op_name != "stop_gradient":
        # under tj.no_grad(): a constant for differentiation
        node = Node("stop_gradient", (node,), {}, shape, dtype, weak, loc)
    return Proxy(node, trace)


def _trace_of(args):
    current = current_trace()
    for a in args:
        if isinstance(a, Proxy):
            return current if current is not None and current.sees(a._trace) else a._trace
    return current


# ---------------------------------------------------------------------------------------------
# the proxy

def _no_conversion(what):
    def method(self, *args, **kwargs):  # __array__ is called with dtype= and copy=
        try:
            _refuse_conversion(self, what)
        except TraceError as e:
            # NumPy's C code may swallow this and raise its own error (`concrete[0] = traced`:
            # "setting an array element with a sequence"); the trace reports this one instead
            _state.conversion_error = e
            raise
    return method


def _refuse_conversion(self, what):
    self._check(None)  # a leaked value gets the leak message, not the conversion one
    weak = self.node.weak  # a Python scalar argument, or arithmetic on one
    # a Python int argument NumPy needs as a value (np.arange(n), a shape) is traced by value
    if what == "np.asarray()" and not (weak and self.dtype.kind == "i"
                                       and _scalar_arguments(self.node)):
        raise with_location(
            TraceError, "np.asarray() of a traced Python scalar (a scalar argument, or a "
            "list or tuple of them): NumPy needs concrete values, which do not exist while "
            "tracing; pass an array instead" if weak else
            "np.asarray() of a traced array (np.array too): NumPy needs a concrete array, "
            "which does not exist while tracing. Traced arguments already act as arrays: "
            "drop the conversion, or use x.astype(dtype) or x.copy()")
    if weak:
        error = with_location(
            TraceError,
            f"{what} of a traced Python scalar: scalar arguments are traced by their type, "
            "not their value. List the argument in static_argnames to trace with its value")
        leaves = _scalar_arguments(self.node)
        if leaves and self._trace.parent is None:
            raise ScalarValueNeeded(str(error), leaves) from None
        raise error
    raise with_location(
        TraceError,
        f"{what} of a traced array: its value is unknown while tracing. Control flow and "
        "Python conversions can depend on shapes and dtypes, not on array values "
        "(use np.where for elementwise choices)")


def _scalar_arguments(node):
    """Positions of the Python scalar arguments a weak value is computed from."""
    found, stack, seen = set(), [node], set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n.op == "input" and n.weak:
            found.add(n.attrs["index"])
        stack.extend(a for a in n.args if a.weak)
    return tuple(sorted(found))


# `for row in x` unrolls over the first axis up to this length
_MAX_UNROLLED_ITEMS = 256


class Proxy:
    """A placeholder for an array inside a traced function."""

    __array_priority__ = 1000
    __slots__ = ("_node", "_trace", "_base", "_path", "_version")

    def __init__(self, node, trace, base=None):
        self._node = node
        self._trace = trace
        self._base = base  # the Buffer it lives in (mutation.py); None until one is needed
        self._path = ()  # view ops from the buffer's value to this one
        self._version = 0  # the buffer version _node was derived from

    @property
    def node(self):
        """This value's graph node, re-derived when its buffer was written since."""
        base = self._base
        if base is not None and self._version != base.version:
            self._node, self._version = self._node_at(self._path), base.version
        return self._node

    def _node_at(self, path):
        node = self._base.node
        for op_name, attrs in path:
            node = mutation.view_node(node, op_name, attrs)
        return node

    def _buffer(self):
        if self._base is None:
            self._base = mutation.Buffer(self._node)
        return self._base

    def _check(self, trace):
        if not self._trace.active:
            raise with_location(TraceError, "a traced value was used after its function returned "
                                "(was it stored in a global or on an object?)")
        if trace is not None and not trace.sees(self._trace):
            raise with_location(TraceError, "a value traced in one function was used in another")

    shape = property(lambda self: self.node.shape)
    dtype = property(lambda self: self.node.dtype)
    ndim = property(lambda self: self.node.ndim)
    size = property(lambda self: self.node.size)

    def __len__(self):
        if not self.node.shape:
            raise with_location(TypeError, "len() of unsized object")
        return self.node.shape[0]

    def __repr__(self):
        from .graph import type_str
        return f"Traced<{type_str(self.node)}>"

    __bool__ = _no_conversion("bool()")
    __float__ = _no_conversion("float()")
    __int__ = _no_conversion("int()")
    __index__ = _no_conversion("int()")
    __complex__ = _no_conversion("complex()")
    __array__ = _no_conversion("np.asarray()")
    tolist = _no_conversion("tolist()")
    item = _no_conversion("item()")
    __hash__ = object.__hash__

    def __getattr__(self, name):
        # only reached for attributes the proxy lacks: name the unsupported ndarray feature
        if name.startswith("__") or not hasattr(np.ndarray, name):
            raise AttributeError(f"'ndarray' object has no attribute {name!r}")
        raise with_location(UnsupportedError, f"ndarray.{name} is not supported in traced code")

    def __iter__(self):
        if not self.shape:
            raise with_location(TypeError, "iteration over a 0-d array")
        if self.shape[0] > _MAX_UNROLLED_ITEMS:
            raise with_location(TraceError, f"iterating over a traced array of {self.shape[0]} "
                                "rows would unroll into a graph that large; use vectorised "
                                "NumPy operations instead")
        return (self[i] for i in range(self.shape[0]))  # the length is known: unrolled

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if any(isinstance(x, selection.Selection) for x in inputs):
            return NotImplemented  # the selection's own rules
        if method == "reduce":
            from .numpy_api import ufunc_reduce
            return ufunc_reduce(ufunc, *inputs, **kwargs)
        if method == "outer":
            from .numpy_api import ufunc_outer
            return ufunc_outer(ufunc, *inputs, **kwargs)
        if method in ("at", "accumulate"):
            from .numpy_api import ufunc_accumulate, ufunc_at
            return (ufunc_at if method == "at" else ufunc_accumulate)(ufunc, *inputs, **kwargs)
        if method != "__call__":
            raise with_location(UnsupportedError, f"np.{ufunc.__name__}.{method} is not supported "
                                "in traced code")
        return call_ufunc(ufunc, *inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if selection.Selection in types:
            return NotImplemented  # the selection's own rules
        from .numpy_api import FUNCTIONS
        handler = FUNCTIONS.get(func)
        if handler is None:
            name = getattr(func, "__module__", "numpy").replace("numpy._core.", "numpy.")
            raise with_location(UnsupportedError, f"{name}.{func.__name__} is not supported "
                                "in traced code")
        return handler(*args, **kwargs)

    def astype(self, dtype, copy=True):
        dtype = np.dtype(dtype)
        if dtype == self.dtype and not copy:
            return self
        return apply("astype", [self], dtype=dtype)

    def copy(self, order="K"):
        if order not in ("K", "A", "C", "F", None):
            raise with_location(ValueError, f"order must be one of 'C', 'F', 'A', or 'K' "
                                f"(got {order!r})")
        if order == "F" and self.ndim > 1:
            raise with_location(UnsupportedError, "copy(order='F') of a multi-dimensional "
                                "array: traced results are C-ordered")
        return apply("astype", [self], dtype=self.dtype)

    __copy__ = copy

    def __deepcopy__(self, memo):
        return self.copy()

    @property
    def __class__(self):
        """What eager NumPy holds here, so isinstance(x, np.ndarray) takes the same branch: an
        ndarray, a NumPy scalar type (x.sum()) or a Python scalar type (a scalar argument)."""
        node = self.node
        if node.weak:
            return {"b": bool, "f": float}.get(node.dtype.kind, int)
        return node.dtype.type if returns_numpy_scalar(node) else np.ndarray

    itemsize = property(lambda self: self.dtype.itemsize)
    nbytes = property(lambda self: self.dtype.itemsize * self.size)
    real = property(lambda self: self)  # traced dtypes are real
    imag = property(lambda self: np.zeros_like(self))

    def __round__(self, ndigits=None):
        if not self._is_eager_scalar():
            raise with_location(TypeError, "type numpy.ndarray doesn't define __round__ method")
        if ndigits is None or self.node.weak:  # Python's round gives a Python value
            return _no_conversion("round()")(self)
        return np.round(self, ndigits)

    def __divmod__(self, other):
        return self // other, self % other

    def __rdivmod__(self, other):
        return other // self, other % self

    def __contains__(self, value):
        return bool((self == value).any())  # needs the values: the bool() error names the line

    def conj(self):
        return self.copy()  # traced dtypes are real

    conjugate = conj

    def _writes_in_place(name):  # noqa: N805 (called while the class body runs)
        def method(self, *args, **kwargs):
            raise with_location(TraceError, f"ndarray.{name} writes in place, which tracing "
                                "does not support yet")
        method.__name__ = name
        return method

    def _numpy_method(name):  # noqa: N805 (called while the class body runs)
        def method(self, *args, **kwargs):
            return getattr(np, name)(self, *args, **kwargs)
        method.__name__ = name
        return method

    for _name in ("take", "diagonal", "trace", "searchsorted", "choose", "compress", "nonzero",
                  "argsort", "argpartition"):
        locals()[_name] = _numpy_method(_name)
    for _name in ("partition", "resize", "setfield", "itemset"):
        locals()[_name] = _writes_in_place(_name)
    del _name, _numpy_method, _writes_in_place

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        from .numpy_api import transpose
        return transpose(self, axes or None)

    T = property(lambda self: self.transpose())

    def _is_eager_scalar(self):
        """True if eager NumPy would hold a Python or NumPy scalar here, not an array."""
        return self.node.weak or returns_numpy_scalar(self.node)

    def clip(self, min=None, max=None, **kwargs):
        return np.clip(self, min, max, **kwargs)

    def round(self, decimals=0):
        return np.round(self, decimals)

    # views and shape methods (the NumPy functions in numpy_api.py do the work)

    def __getitem__(self, key):
        from .numpy_api import getitem
        return getitem(self, key)

    def reshape(self, *shape, order="C", copy=None):
        from .numpy_api import reshape
        return reshape(self, shape[0] if len(shape) == 1 else shape, order=order, copy=copy)

    def ravel(self, order="C"):
        from .numpy_api import ravel
        return ravel(self, order)

    def flatten(self, order="C"):
        return self.ravel(order).copy()  # flatten always returns a fresh array

    def squeeze(self, axis=None):
        from .numpy_api import squeeze
        return squeeze(self, axis)

    def swapaxes(self, axis1, axis2):
        from .numpy_api import swapaxes
        return swapaxes(self, axis1, axis2)

    mT = property(lambda self: np.matrix_transpose(self))

    def repeat(self, repeats, axis=None):
        return np.repeat(self, repeats, axis)

    def dot(self, b):
        return np.dot(self, b)

    def fill(self, value):
        self[...] = value

    def view(self, dtype=None, type=None):
        if (dtype is None or np.dtype(dtype) == self.dtype) and type is None:
            return self[...]  # a new view of the same memory
        raise with_location(UnsupportedError, "ndarray.view with another dtype or type is not "
                            "supported in traced code")

    @property
    def flat(self):
        return _FlatIndexer(self)

    def sort(self, axis=-1, kind=None, order=None, *, stable=None):
        from .numpy_api import sort
        mutation.write(self, None, sort(self, axis, kind, order, stable=stable))

    def put(self, indices, values, mode="raise"):
        np.put(self, indices, values, mode)

    def __setitem__(self, key, value):
        from .numpy_api import assign
        assign(self, key, value)

    def _inplace(self, ufunc, other):
        if self._is_eager_scalar():  # `s += x` on a scalar rebinds s to a new value
            return python_operator(ufunc, self, other)
        return call_ufunc(ufunc, self, other, out=self)


class _FlatIndexer:
    """x.flat[key]: the flat positions key selects, as index arrays into x (C order), so
    reads are copies, as NumPy's flatiter gives, and writes land in x whatever its layout."""

    def __init__(self, proxy):
        self._proxy = proxy

    def _key(self, key):
        p = self._proxy
        positions = key if isinstance(key, Proxy) else np.arange(p.size)[key]
        return np.unravel_index(positions, p.shape)

    def __getitem__(self, key):
        return self._proxy[self._key(key)]

    def __setitem__(self, key, value):
        self._proxy[self._key(key)] = value

    def __len__(self):
        return self._proxy.size


def call_ufunc(ufunc, *inputs, out=None, dtype=None, **kwargs):
    if ufunc is np.divmod and out is None and dtype is None and not kwargs:
        return call_ufunc(np.floor_divide, *inputs), call_ufunc(np.remainder, *inputs)
    op = UFUNC_OPS.get(ufunc)
    if op is None:
        raise with_location(UnsupportedError,
                            f"np.{ufunc.__name__} is not supported in traced code")
    if out is not None:
        return _into(ufunc, call_ufunc(ufunc, *inputs, dtype=dtype, **kwargs), out)
    unknown = {k: v for k, v in kwargs.items()
               if not (k == "casting" and v == "same_kind") and not (k == "where" and v is True)}
    if unknown:
        raise with_location(UnsupportedError, f"np.{ufunc.__name__} with {sorted(unknown)} is not "
                            "supported in traced code")
    if dtype is not None:
        inputs = [apply("astype", [x], dtype=np.dtype(dtype)) for x in inputs]
    return apply(op.name, inputs)


def _into(ufunc, result, out):
    """Write a ufunc's result into `out` (NumPy's out=, and in-place operators): same shape,
    cast by NumPy's same_kind rule (its own error otherwise)."""
    out = out[0] if isinstance(out, tuple) and len(out) == 1 else out
    if not isinstance(out, Proxy):
        raise with_location(TraceError, f"np.{ufunc.__name__}(..., out=...) into an array that "
                            "is not traced (made with NumPy inside the function, or captured) is "
                            "not supported yet")
    if out._is_eager_scalar():
        raise with_location(TypeError, "return arrays must be of ArrayType")
    if len(result.shape) > len(out.shape) or any(
            r not in (1, o) for r, o in zip(result.shape[::-1], out.shape[::-1])):
        raise with_location(ValueError, f"non-broadcastable output operand with shape "
                            f"{out.shape} doesn't match the broadcast shape {result.shape}")
    if result.dtype != out.dtype and not np.can_cast(result.dtype, out.dtype, "same_kind"):
        # NumPy's own exception (a TypeError subclass), raised by NumPy on dummy operands
        ufunc(*[np.zeros((), result.dtype)] * ufunc.nin, out=np.zeros((), out.dtype))
    mutation.write(out, None, result)
    return out


_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
           "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power,
           "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor,
           "lshift": np.left_shift, "rshift": np.right_shift, "matmul": np.matmul}
_COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
            "gt": np.greater, "ge": np.greater_equal}
_UNARY = {"neg": np.negative, "pos": np.positive, "abs": np.absolute, "invert": np.invert}


# Python operators keep bools as bools only for these; otherwise bool arithmetic is int arithmetic
_BOOL_PRESERVING = {np.bitwise_and, np.bitwise_or, np.bitwise_xor, *_COMPARE.values()}


def _is_weak(x):
    if isinstance(x, Proxy):
        return x.node.weak
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def _fast_power(base, exponent):
    """NumPy's `array ** scalar` shortcut (fast_scalar_power): ** 2 is np.square for any
    numeric array (bool ** 2 is int8), and for float arrays ** -1 is np.reciprocal and ** 0.5 is
    np.sqrt (so (-inf) ** 0.5 is nan and (-0.0) ** 0.5 is -0.0, unlike pow)."""
    if not isinstance(base, Proxy) or base._is_eager_scalar():
        return None
    if type(exponent) is int and exponent == 2:
        return np.square
    if base.dtype.kind == "f" and (type(exponent) is int and exponent == -1
                                   or type(exponent) is float and exponent == 0.5):
        return np.reciprocal if exponent == -1 else np.sqrt
    return None


def python_operator(ufunc, *inputs):
    """A Python operator: on Python scalars only it follows Python (weak result, True + True
    is 2), otherwise NumPy's ufunc."""
    if any(isinstance(x, selection.Selection) for x in inputs):
        return NotImplemented  # Python asks the selection's reflected operator
    if ufunc is np.power and len(inputs) == 2 and _fast_power(*inputs) is not None:
        return call_ufunc(_fast_power(*inputs), inputs[0])
    if not all(_is_weak(x) for x in inputs):
        return call_ufunc(ufunc, *inputs)
    if ufunc not in _BOOL_PRESERVING:
        inputs = [int(x) if type(x) is bool else
                  apply("astype", [x], _weak=True, dtype=np.dtype(np.int64))
                  if isinstance(x, Proxy) and x.dtype == np.bool_ else x for x in inputs]
    return apply(UFUNC_OPS[ufunc].name, inputs, _weak=True)


def _install_operators():
    for name, uf in _BINARY.items():
        setattr(Proxy, f"__{name}__", lambda self, other, uf=uf: python_operator(uf, self, other))
        setattr(Proxy, f"__r{name}__", lambda self, other, uf=uf: python_operator(uf, other, self))
        setattr(Proxy, f"__i{name}__", lambda self, other, uf=uf: self._inplace(uf, other))
    for name, uf in _COMPARE.items():
        setattr(Proxy, f"__{name}__", lambda self, other, uf=uf: python_operator(uf, self, other))
    for name, uf in _UNARY.items():
        setattr(Proxy, f"__{name}__", lambda self, uf=uf: python_operator(uf, self))


_install_operators()


# ---------------------------------------------------------------------------------------------
# tracing a function

def is_array_leaf(x):
    return isinstance(x, (np.ndarray, np.generic, bool, int, float))


def input_node(value, name, index):
    """The graph input for one argument leaf: arrays and NumPy scalars are strongly typed,
    Python scalars are weak (NEP 50) and passed by value to kernels."""
    if type(value) in (bool, int, float):
        dtype = {bool: np.bool_, int: np.int64, float: np.float64}[type(value)]
        return Node("input", (), {"name": name, "index": index, "scalar": True}, (), dtype, True)
    if type(value) is not np.ndarray and isinstance(value, np.ndarray) \
            and not isinstance(value, Proxy):
        raise UnsupportedError(f"argument {name!r} is a {type(value).__module__}."
                               f"{type(value).__name__}; tracejit traces plain ndarrays (a "
                               "subclass's own behaviour, such as a mask, would be lost)")
    if isinstance(value, Proxy):  # tracing a function of another trace's values (tj.grad)
        node = value.node
        return Node("input", (), {"name": name, "index": index, "scalar": node.weak},
                    node.shape, node.dtype, node.weak)
    dtype = check_dtype(value.dtype, f"argument {name!r}")
    return Node("input", (), {"name": name, "index": index,
                              "scalar": isinstance(value, np.generic)}, np.shape(value), dtype)


def trace(fn, leaves, treedef, names, is_static, nested=False):
    """Run fn on proxies standing for the array leaves; static leaves are passed as they are.
    A nested trace (tj.grad inside traced code) may read the enclosing trace's values and
    leaves captured state to it; any other trace reads its captured state live."""
    parent = current_trace() if nested else None
    capture = None
    if not nested:
        statics = [(name, leaf) for leaf, name, static in zip(leaves, names, is_static) if static]
        capture = Capture(find_slots(fn, statics), len(leaves))
    tr = Trace(getattr(fn, "__name__", "f"), parent, capture)
    inputs, call_leaves = [], []
    for i, (leaf, name, static) in enumerate(zip(leaves, names, is_static)):
        if static:
            call_leaves.append(randomness.wrap(leaf))  # a generator's draws are recorded
            continue
        try:
            node = input_node(leaf, name, i)
        except TracejitError as e:  # name the line that called the traced function
            raise with_location(type(e), str(e)) from None
        inputs.append(node)
        contiguous = type(leaf) is not np.ndarray or leaf.flags.c_contiguous
        call_leaves.append(Proxy(node, tr, mutation.Buffer(node, i, contiguous)))
    args, kwargs = pytree.unflatten(treedef, call_leaves)
    previous = current_trace()
    _state.trace = tr
    _state.conversion_error = None
    generators = [] if nested else [
        v for v in [*(s.value for s in capture.slots), *leaves]
        if isinstance(v, randomness.GENERATORS)]
    try:
        with randomness.draws_recorded(generators), patches.installed():
            result = randomness.with_wrapped_generators(fn)(*args, **kwargs)
    except Exception as e:
        refused = _state.conversion_error
        if refused is not None and not isinstance(e, TracejitError):
            raise refused from e  # NumPy turned tracejit's refusal into an error of its own
        raise
    finally:
        _state.trace = previous
        tr.active = False
    out_leaves, out_tree = pytree.flatten(result)
    outputs, first_seen, alias, first_base, memory = [], {}, [], {}, []
    returns_input = {}  # result position -> argument leaf it returns, after writing into it
    for leaf in out_leaves:
        if isinstance(leaf, Proxy):
            if not tr.sees(leaf._trace):
                raise with_location(TraceError, "the function returned a value traced elsewhere")
            base = leaf._base
            if base is not None and base.input is not None and base.version and not nested:
                if leaf._path:
                    raise with_location(TraceError, "the function returns a view of an argument "
                                        "it writes into, which tracing does not support yet",
                                        fn_location(fn) or user_location(1))
                returns_input[len(outputs)] = base.input
            outputs.append(leaf.node)
        elif is_array_leaf(leaf):
            outputs.append(const_node(leaf))
        elif isinstance(leaf, selection.Selection):
            selection.refuse("returning it", fn_location(fn) or user_location(1))
        else:
            raise with_location(UnsupportedError, f"the function returned a value of type "
                                f"{type(leaf).__name__}; traced functions return arrays, "
                                "scalars, or tuples, lists and dicts of them",
                                fn_location(fn) or user_location(1))
        alias.append(first_seen.setdefault(id(leaf), len(alias)))
        memory.append(first_base.setdefault(view_base(outputs[-1]), len(memory)))
    # out_alias: which results are the same object; out_memory: which share memory (one is a
    # view of the other's base). Simplification may merge equal values; these keep the
    # returned arrays as distinct as eager NumPy's.
    # arguments the function wrote into: their last versions are extra outputs, copied into
    # the caller's arrays at the end of the call
    writes = mutation.written_inputs(p for p in call_leaves if isinstance(p, Proxy))
    if writes and nested:
        raise with_location(TraceError, "tj.grad of a function that writes into its arguments "
                            "is not supported; write into a copy", fn_location(fn))
    for _, node in writes:
        outputs.append(node)
        alias.append(len(alias))
        memory.append(len(memory))
    meta = {"out_alias": tuple(alias), "out_memory": tuple(memory),
            "writes": tuple(i for i, _ in writes), "returns_input": returns_input}
    if capture is not None:
        capture.check_unwritten()
        inputs += list(capture.inputs.values())
        meta["guard"] = capture.guard()
        meta["captured"] = capture.live_values()
    return Graph(tr.name, inputs, outputs, out_tree, meta=meta)


def fn_location(fn):
    code = getattr(fn, "__code__", None)
    return (code.co_filename, code.co_firstlineno) if code else None


@functools.lru_cache(maxsize=1024)
def leaf_names(fn, treedef):
    """(name, parameter) for every leaf: readable input names (parameter names, suffixed for
    leaves inside containers) and the parameter each leaf belongs to."""
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        params = []
    args_def, kwargs_def = treedef.children

    def walk(td, base, param, out):
        if td.kind == "leaf":
            out.append((base, param))
            return
        keys = (td.meta if td.kind in ("dict", "namespace") else td.meta[1]
                if td.kind == "dataclass" else td.meta._fields if td.kind == "namedtuple"
                else range(len(td.children)))
        for k, child in zip(keys, td.children):
            walk(child, f"{base}_{k}", param, out)

    names = []
    for i, td in enumerate(args_def.children):
        param = params[i] if i < len(params) else f"arg{i}"
        walk(td, param, param, names)
    for key, td in zip(kwargs_def.meta, kwargs_def.children):
        walk(td, str(key), str(key), names)
    return tuple(names)
