"""NumPy functions that proxies understand, mapped onto the op table (`__array_function__`).

Each handler receives the same arguments as the NumPy function and records ops with `apply`.
A function missing here raises UnsupportedError when traced.
"""

import numpy as np

from .errors import ShapeError, UnsupportedError, with_location
from .tracing import Proxy, apply, call_ufunc

FUNCTIONS = {}


def implements(*funcs):
    def register(handler):
        for f in funcs:
            FUNCTIONS[f] = handler
        return handler
    return register


def shape_of(x):
    return x.shape if isinstance(x, Proxy) else np.shape(x)


def normalize_axis(axis, ndim):
    if not -ndim <= axis < ndim:
        raise with_location(ShapeError, f"axis {axis} is out of bounds for an array of dimension "
                            f"{ndim}")
    return axis % ndim


@implements(np.where)
def where(condition, x=None, y=None):
    if x is None or y is None:
        raise with_location(UnsupportedError, "np.where(condition) with one argument has a "
                            "data-dependent shape; use the three-argument form")
    if not (isinstance(condition, Proxy) and condition.dtype == np.bool_):
        condition = call_ufunc(np.not_equal, condition, False)
    return apply("where", [condition, x, y])


@implements(np.clip)
def clip(a, a_min=None, a_max=None, out=None, **kwargs):
    if out is not None:
        raise with_location(UnsupportedError, "np.clip(..., out=...) is not supported")
    if a_min is None and a_max is None:
        raise with_location(ValueError, "One of max or min must be given")
    if not isinstance(a, Proxy) and not isinstance(a, np.generic):
        a = np.asarray(a)  # NumPy makes `a` an array: a Python scalar `a` is strongly typed
    elif isinstance(a, Proxy) and a.node.weak:
        a = apply("astype", [a], dtype=a.dtype)
    if a_min is None:
        return call_ufunc(np.minimum, a, a_max)
    if a_max is None:
        return call_ufunc(np.maximum, a, a_min)
    return call_ufunc(np._core.umath.clip, a, a_min, a_max)


@implements(np.round, np.around)
def round_(a, decimals=0, out=None):
    if decimals != 0 or out is not None:
        raise with_location(UnsupportedError, "np.round with decimals or out is not supported")
    return call_ufunc(np.rint, a) if np.dtype(a.dtype).kind == "f" else a


@implements(np.astype)
def astype(x, dtype, copy=True, **kwargs):
    return x.astype(dtype, copy=copy)


@implements(np.copy)
def copy(a, order="K", subok=False):
    return a.copy()


@implements(np.transpose)
def transpose(a, axes=None):
    ndim = len(shape_of(a))
    if axes is None:
        axes = tuple(reversed(range(ndim)))
    axes = tuple(normalize_axis(int(ax), ndim) for ax in axes)
    if sorted(axes) != list(range(ndim)):
        raise with_location(ShapeError, f"axes {axes} are not a permutation of {ndim} dimensions")
    result = apply("transpose", [a], axes=axes)
    result.aliased = True
    if isinstance(a, Proxy):
        a.aliased = True  # a view of it now exists: in-place updates would have to reach the view
    return result


@implements(np.shape)
def shape(a):
    return shape_of(a)


@implements(np.ndim)
def ndim(a):
    return len(shape_of(a))


@implements(np.size)
def size(a, axis=None):
    s = shape_of(a)
    return int(np.prod(s)) if axis is None else s[axis]


@implements(np.result_type)
def result_type(*arrays_and_dtypes):
    return np.result_type(*(x.dtype if isinstance(x, Proxy) else x for x in arrays_and_dtypes))


# ---------------------------------------------------------------------------------------------
# reductions


# ---------------------------------------------------------------------------------------------
# shape ops, views and creation


# ---------------------------------------------------------------------------------------------
# matmul
