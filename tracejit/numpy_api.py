"""NumPy functions that proxies understand, mapped onto the op table (`__array_function__`).

Each handler receives the same arguments as the NumPy function and records ops with `apply`.
A function missing here raises UnsupportedError when traced.
"""

import operator

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

_NOVALUE = np._NoValue


def reduction_axes(axis, ndim):
    """axis=None, an int or a tuple of ints (negative allowed) -> sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = [normalize_axis(operator.index(ax), ndim) for ax in axes]
    if len(set(out)) != len(out):
        raise with_location(ShapeError, f"duplicate value in axis={axis!r}")
    return tuple(sorted(out))


def _only_defaults(name, out=None, initial=_NOVALUE, where=True):
    if out is not None or initial is not _NOVALUE or where is not True:
        raise with_location(UnsupportedError, f"np.{name} with out=, initial= or where= is not "
                            "supported in traced code")


def _reduce(op, a, axis, keepdims, **attrs):
    return apply(op, [a], axis=reduction_axes(axis, a.ndim), keepdims=bool(keepdims), **attrs)


def _count(a, axes):
    return int(np.prod([a.shape[d] for d in axes], dtype=np.int64))


@implements(np.sum)
def sum_(a, axis=None, dtype=None, out=None, keepdims=False, initial=_NOVALUE, where=True):
    _only_defaults("sum", out, initial, where)
    return _reduce("sum", a, axis, keepdims, dtype=None if dtype is None else np.dtype(dtype))


@implements(np.prod)
def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=_NOVALUE, where=True):
    _only_defaults("prod", out, initial, where)
    return _reduce("prod", a, axis, keepdims, dtype=None if dtype is None else np.dtype(dtype))


def _simple(op):
    def handler(a, axis=None, out=None, keepdims=False, initial=_NOVALUE, where=True):
        _only_defaults(op, out, initial, where)
        return _reduce(op, a, axis, keepdims)
    return handler


max_ = implements(np.max, np.amax)(_simple("max"))
min_ = implements(np.min, np.amin)(_simple("min"))


@implements(np.any)
def any_(a, axis=None, out=None, keepdims=False, *, where=True):
    _only_defaults("any", out, where=where)
    return _reduce("any", a, axis, keepdims)


@implements(np.all)
def all_(a, axis=None, out=None, keepdims=False, *, where=True):
    _only_defaults("all", out, where=where)
    return _reduce("all", a, axis, keepdims)


def _arg(op):
    def handler(a, axis=None, out=None, *, keepdims=False):
        _only_defaults(op, out)
        if axis is not None and isinstance(axis, (tuple, list)):
            raise with_location(TypeError, f"np.{op} takes an integer axis, not {axis!r}")
        return _reduce(op, a, axis, keepdims)
    return handler


argmax = implements(np.argmax)(_arg("argmax"))
argmin = implements(np.argmin)(_arg("argmin"))


def _float_dtype(a, dtype):
    """The dtype mean/var compute in: the one asked for, else float64 for ints and bools."""
    if dtype is not None:
        return np.dtype(dtype)
    return np.dtype(np.float64) if a.dtype.kind in "biu" else a.dtype


def _mean(a, axes, dtype, keepdims):
    # NumPy: sum in dtype (float16 sums in float32), then true_divide by the count
    acc = np.dtype(np.float32) if dtype == np.float16 else dtype
    total = apply("sum", [a], axis=axes, keepdims=keepdims, dtype=acc)
    result = call_ufunc(np.true_divide, total, _count(a, axes))
    return result if result.dtype == dtype else result.astype(dtype)


@implements(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
    _only_defaults("mean", out, where=where)
    return _mean(a, reduction_axes(axis, a.ndim), _float_dtype(a, dtype), keepdims)


def _var(a, axis, dtype, ddof, keepdims, correction):
    if correction is not _NOVALUE:
        ddof = correction
    axes = reduction_axes(axis, a.ndim)
    dtype = _float_dtype(a, dtype)
    mu = _mean(a, axes, dtype, True)
    d = call_ufunc(np.subtract, a, mu)
    total = apply("sum", [call_ufunc(np.multiply, d, d)], axis=axes, keepdims=keepdims,
                  dtype=dtype)
    return call_ufunc(np.true_divide, total, max(_count(a, axes) - ddof, 0))


@implements(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True,
        mean=_NOVALUE, correction=_NOVALUE):
    _only_defaults("var", out, where=where)
    if mean is not _NOVALUE:
        raise with_location(UnsupportedError, "np.var(..., mean=) is not supported")
    return _var(a, axis, dtype, ddof, keepdims, correction)


@implements(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=True,
        mean=_NOVALUE, correction=_NOVALUE):
    _only_defaults("std", out, where=where)
    if mean is not _NOVALUE:
        raise with_location(UnsupportedError, "np.std(..., mean=) is not supported")
    return call_ufunc(np.sqrt, _var(a, axis, dtype, ddof, keepdims, correction))


@implements(np.average)
def average(a, axis=None, weights=None, returned=False, *, keepdims=_NOVALUE):
    if weights is not None or returned:
        raise with_location(UnsupportedError, "np.average with weights= or returned=True is not "
                            "supported in traced code")
    return mean(a, axis, keepdims=keepdims is not _NOVALUE and keepdims)


@implements(np.linalg.norm)
def norm(x, ord=None, axis=None, keepdims=False):
    if x.dtype.kind in "biu":
        x = x.astype(np.float64)
    axes = reduction_axes(axis, x.ndim)
    vector = axis is not None and len(axes) == 1 or axis is None and x.ndim == 1
    if ord is None or (ord == "fro" and len(axes) == 2) or (ord == 2 and vector):
        return call_ufunc(np.sqrt, apply("sum", [call_ufunc(np.multiply, x, x)], axis=axes,
                                         keepdims=bool(keepdims), dtype=None))
    if not vector or isinstance(ord, str):
        raise with_location(UnsupportedError, f"np.linalg.norm with ord={ord!r} over "
                            f"{len(axes)} axes (a matrix norm) is not supported")
    absx = call_ufunc(np.absolute, x)
    if ord == np.inf:
        return _reduce("max", absx, axes, keepdims)
    if ord == -np.inf:
        return _reduce("min", absx, axes, keepdims)
    if ord == 0:
        nonzero = call_ufunc(np.not_equal, x, 0).astype(x.dtype)
        return _reduce("sum", nonzero, axes, keepdims, dtype=None)
    if ord == 1:
        return _reduce("sum", absx, axes, keepdims, dtype=None)
    total = _reduce("sum", call_ufunc(np.power, absx, ord), axes, keepdims, dtype=None)
    return call_ufunc(np.power, total, 1.0 / ord)


def _scan(op):
    def handler(a, axis=None, dtype=None, out=None):
        _only_defaults(op, out)
        if axis is not None:
            axis = normalize_axis(operator.index(axis), a.ndim)
        return apply(op, [a], axis=axis, dtype=None if dtype is None else np.dtype(dtype))
    return handler


cumsum = implements(np.cumsum)(_scan("cumsum"))
cumprod = implements(np.cumprod)(_scan("cumprod"))

# ndarray methods share the handlers: their parameters follow the functions' after `a`
for _name, _handler in (("sum", sum_), ("prod", prod), ("max", max_), ("min", min_),
                        ("any", any_), ("all", all_), ("argmax", argmax), ("argmin", argmin),
                        ("mean", mean), ("var", var), ("std", std), ("cumsum", cumsum),
                        ("cumprod", cumprod)):
    setattr(Proxy, _name, _handler)

_UFUNC_REDUCE = {np.add: "sum", np.multiply: "prod", np.maximum: "max", np.minimum: "min",
                 np.logical_or: "any", np.logical_and: "all"}


def ufunc_reduce(ufunc, a, axis=0, dtype=None, out=None, keepdims=False, initial=_NOVALUE,
                 where=True):
    """np.add.reduce and friends (reached through Proxy.__array_ufunc__)."""
    op = _UFUNC_REDUCE.get(ufunc)
    if op is None:
        raise with_location(UnsupportedError, f"np.{ufunc.__name__}.reduce is not supported "
                            "in traced code")
    _only_defaults(f"{ufunc.__name__}.reduce", out, initial, where)
    attrs = {"dtype": None if dtype is None else np.dtype(dtype)} if op in ("sum", "prod") else {}
    if dtype is not None and not attrs:
        a = a.astype(dtype)
    return _reduce(op, a, axis, keepdims, **attrs)


# ---------------------------------------------------------------------------------------------
# shape ops, views and creation


# ---------------------------------------------------------------------------------------------
# matmul
