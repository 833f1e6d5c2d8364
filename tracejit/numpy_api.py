"""NumPy functions that proxies understand, mapped onto the op table (`__array_function__`).

Each handler receives the same arguments as the NumPy function and records ops with `apply`.
A function missing here raises UnsupportedError when traced.
"""

import operator
import warnings

import numpy as np

from . import patches
from .errors import ShapeError, TraceError, UnsupportedError, with_location
from .mutation import is_c_contiguous, share, write, write_indexed
from .ops import SUPPORTED_KINDS, UFUNC_OPS, ArrayKey, Index, resolve
from .selection import Selection
from .tracing import Proxy, apply, as_node, call_ufunc, const_node, current_trace

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
def where_(condition, x=None, y=None):
    if x is None or y is None:
        raise with_location(UnsupportedError, "np.where(condition) with one argument has a "
                            "data-dependent shape; use the three-argument form")
    if not (isinstance(condition, (Proxy, np.ndarray)) and condition.dtype == np.bool_):
        condition = call_ufunc(np.not_equal, condition, False)
    return apply("where", [condition, x, y])


@implements(np.clip)
def clip(a, a_min=None, a_max=None, out=None, **kwargs):
    if out is not None:
        return _into_out("clip", clip(a, a_min, a_max, **kwargs), out)
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
    if out is not None:
        return _into_out("round", round_(a, decimals), out, "unsafe")
    decimals = _static_int(decimals, "np.round's decimals")
    integer = a.dtype.kind in "iu"
    if decimals >= 0 and integer:
        return a.copy()
    if decimals == 0:
        return call_ufunc(np.rint, a)  # bool too: rint gives float16, as NumPy's round does
    if a.dtype == np.bool_:
        raise with_location(UnsupportedError, "np.round of a boolean array with decimals: "
                            "NumPy cannot cast the scaled result back to bool")
    # NumPy's steps: scale by a Python float 10**|decimals|, rint, scale back; integers go
    # through float64 and are cast back
    scale, unscale = (np.multiply, np.true_divide) if decimals > 0 else (np.true_divide,
                                                                          np.multiply)
    factor = 10.0 ** abs(decimals)
    result = call_ufunc(unscale, call_ufunc(np.rint, call_ufunc(scale, a, factor)), factor)
    return result.astype(a.dtype) if integer else result


@implements(np.isclose)
def isclose(a, b, rtol=1.e-5, atol=1.e-8, equal_nan=False):
    # NumPy's formula; y becomes inexact first, so abs(y) cannot overflow an integer
    x, y = (v if isinstance(v, (Proxy, int, float)) else np.asarray(v) for v in (a, b))
    if isinstance(y, (Proxy, np.ndarray)):
        y = y.astype(np.result_type(y.dtype, 1.0))
    elif isinstance(y, int):
        y = float(y)
    result = (np.less_equal(abs(x - y), atol + rtol * abs(y)) & np.isfinite(y)) | (x == y)
    if equal_nan:
        result = result | (np.isnan(x) & np.isnan(y))
    return _scalar(result)


@implements(np.polyval)
def polyval(p, x):
    # NumPy's own loop (Horner's rule): the coefficients are NumPy scalars, strongly typed
    p = p if isinstance(p, Proxy) else np.asarray(p)
    x = x if isinstance(x, Proxy) else np.asarray(x)
    y = zeros_like(x)
    for i in range(len(p)):
        y = y * x + p[i]
    return y


@implements(np.sinc)
def sinc(x):
    # NumPy's: sin(pi x) / (pi x), with the machine epsilon in place of a zero
    x = call_ufunc(np.multiply, np.pi, x if isinstance(x, Proxy) else np.asarray(x))
    eps = np.finfo(x.dtype).eps if x.dtype.kind == "f" else 1e-20
    y = where_(x, x, eps)
    return call_ufunc(np.true_divide, call_ufunc(np.sin, y), y)


@implements(np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    if not copy:
        raise with_location(UnsupportedError, "np.nan_to_num(..., copy=False) writes in place, "
                            "which traced code does not support")
    x = x if isinstance(x, Proxy) else np.asarray(x)
    if x.dtype.kind != "f":
        return _scalar(x.copy())
    info = np.finfo(x.dtype)

    def fill(value, default):  # NumPy copies the value in, cast to x's dtype
        value = default if value is None else value
        return value.astype(x.dtype) if isinstance(value, Proxy) else x.dtype.type(value)

    x = where_(call_ufunc(np.isnan, x), fill(nan, 0.0), where_(
        call_ufunc(np.equal, x, np.inf), fill(posinf, info.max), where_(
            call_ufunc(np.equal, x, -np.inf), fill(neginf, info.min), x)))
    return _scalar(x)


def _weak_or_dtype(x):
    """What np.result_type sees for x: Python scalars (traced ones too) stay weakly typed."""
    if isinstance(x, Proxy):
        return {"b": False, "i": 0, "u": 0, "f": 0.0}[x.dtype.kind] if x.node.weak else x.dtype
    return x if type(x) in (int, float, complex) else np.asarray(x).dtype


@implements(np.select)
def select(condlist, choicelist, default=0):
    # NumPy's: the default broadcast to the result, then each choice written where its
    # condition holds, the first condition winning
    if len(condlist) != len(choicelist):
        raise with_location(ValueError, "list of cases must be same length as list of "
                            "conditions")
    if len(condlist) == 0:
        raise with_location(ValueError, "select with an empty condition list is not possible")
    choices = [*choicelist, default]
    dtype = np.result_type(*(_weak_or_dtype(c) for c in choices))
    for i, cond in enumerate(condlist):
        cond_dtype = cond.dtype if isinstance(cond, Proxy) else np.asarray(cond).dtype
        if cond_dtype != np.bool_:
            raise with_location(TypeError, f"invalid entry {i} in condlist: should be boolean "
                                "ndarray")
    result = choices[-1]
    for cond, choice in zip(reversed(condlist), reversed(choicelist)):
        result = where_(cond, choice, result)
    shape = np.broadcast_shapes(*(shape_of(x) for x in (*condlist, *choices)))
    if not isinstance(result, Proxy):
        result = apply("astype", [np.asarray(result)], dtype=dtype)
    if result.dtype != dtype:
        result = result.astype(dtype)
    if tuple(shape_of(result)) != shape:
        result = broadcast_to(result, shape).copy()
    return result


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
    return share(apply("transpose", [a], axes=axes), a, "transpose", {"axes": axes})


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
        if initial is not _NOVALUE and a.size:  # the extreme of the values and `initial`
            _only_defaults(op, out, where=where)
            return call_ufunc(np.maximum if op == "max" else np.minimum,
                              _reduce(op, a, axis, keepdims), _as_dtype(initial, a.dtype))
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


@implements(np.ptp)
def ptp(a, axis=None, out=None, keepdims=False):
    _only_defaults("ptp", out)
    return call_ufunc(np.subtract, max_(a, axis, keepdims=keepdims),
                      min_(a, axis, keepdims=keepdims))


# The nan-functions as NumPy writes them: NaNs replaced by a neutral value, then the plain
# reduction. Integer and boolean arrays have no NaNs. An all-NaN slice gives NaN, as in
# NumPy, but without NumPy's RuntimeWarning.

def _isnan(a):
    return call_ufunc(np.isnan, a) if a.dtype.kind == "f" else None


@implements(np.nansum)
def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=_NOVALUE, where=True):
    nan = _isnan(a)
    a = a if nan is None else where_(nan, 0, a)
    return sum_(a, axis, dtype, out, keepdims, initial, where)


@implements(np.nanmean)
def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
    nan = _isnan(a)
    if nan is None:
        return mean(a, axis, dtype, out, keepdims, where=where)
    _only_defaults("nanmean", out, where=where)
    total = sum_(where_(nan, 0, a), axis, dtype, keepdims=keepdims)
    count = sum_(call_ufunc(np.logical_not, nan), axis, np.intp, keepdims=keepdims)
    return call_ufunc(np.true_divide, total, count).astype(total.dtype)  # NumPy: out=total


def _nan_extreme(name, reduce, fill):
    def handler(a, axis=None, out=None, keepdims=False, initial=_NOVALUE, where=True):
        _only_defaults(name, out, initial, where)
        nan = _isnan(a)
        if nan is None:
            return reduce(a, axis, keepdims=keepdims)
        best = reduce(where_(nan, fill, a), axis, keepdims=keepdims)
        return _scalar(where_(all_(nan, axis, keepdims=keepdims), np.nan, best))
    return handler


nanmax = implements(np.nanmax)(_nan_extreme("nanmax", max_, -np.inf))
nanmin = implements(np.nanmin)(_nan_extreme("nanmin", min_, np.inf))


@implements(np.count_nonzero)
def count_nonzero(a, axis=None, *, keepdims=False):
    return _reduce("sum", a.astype(np.bool_), axis, keepdims, dtype=np.dtype(np.intp))


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
    # NumPy's steps; its check that the weights do not sum to zero reads values, and is skipped
    # (the result is then inf or nan)
    a = a if isinstance(a, Proxy) else np.asarray(a)
    ndim = len(shape_of(a))
    if axis is not None:
        axis = tuple(normalize_axis(ax, ndim) for ax in _static_ints(axis, "axis"))
    keepdims = keepdims is not _NOVALUE and bool(keepdims)
    if weights is None:
        avg = mean(a, axis, keepdims=keepdims)
        scl = avg.dtype.type(_count(a, reduction_axes(axis, ndim)))
    else:
        w = weights if isinstance(weights, Proxy) else np.asarray(weights)
        if tuple(shape_of(a)) != tuple(shape_of(w)):
            if axis is None:
                raise with_location(TypeError, "Axis must be specified when shapes of a and "
                                    "weights differ.")
            if tuple(shape_of(w)) != tuple(shape_of(a)[ax] for ax in axis):
                raise with_location(ShapeError, "Shape of weights must be consistent with shape "
                                    "of a along specified axis.")
            w = transpose(w, tuple(np.argsort(axis)))
            w = reshape(w, tuple(s if ax in axis else 1 for ax, s in enumerate(shape_of(a))))
        if a.dtype.kind in "biu":
            dtype = np.result_type(a.dtype, w.dtype, "f8")
        else:
            dtype = np.result_type(a.dtype, w.dtype)
        scl = sum_(w, axis, dtype, keepdims=keepdims)
        avg = call_ufunc(np.true_divide, sum_(call_ufunc(np.multiply, a, w, dtype=dtype), axis,
                                              keepdims=keepdims), scl)
    if not returned:
        return avg
    if tuple(shape_of(scl)) != tuple(shape_of(avg)):
        scl = broadcast_to(scl, shape_of(avg)).copy()
    return avg, scl


def _at_least_2d_rows(x, dtype):
    """array(x, ndmin=2, dtype=dtype), as np.cov makes its variables."""
    x = x.astype(dtype) if isinstance(x, Proxy) else np.array(x, dtype=dtype)
    return reshape(x, (1,) * (2 - len(shape_of(x))) + tuple(shape_of(x)))


@implements(np.cov)
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *,
        dtype=None):
    # NumPy's steps, without frequency or analytic weights
    if fweights is not None or aweights is not None:
        raise with_location(UnsupportedError, "np.cov with fweights= or aweights= is not "
                            "supported in traced code")
    m = m if isinstance(m, Proxy) else np.asarray(m)
    if len(shape_of(m)) > 2:
        raise with_location(ValueError, "m has more than 2 dimensions")
    if y is not None:
        y = y if isinstance(y, Proxy) else np.asarray(y)
        if len(shape_of(y)) > 2:
            raise with_location(ValueError, "y has more than 2 dimensions")
    if dtype is None:
        dtype = np.result_type(m.dtype, *(() if y is None else (y.dtype,)), np.float64)
    X = _at_least_2d_rows(m, dtype)
    if not rowvar and len(shape_of(m)) != 1:
        X = transpose(X)
    if shape_of(X)[0] == 0:
        return np.array([]).reshape(0, 0)
    if y is not None:
        y = _at_least_2d_rows(y, dtype)
        if not rowvar and shape_of(y)[0] != 1:
            y = transpose(y)
        X = concatenate((X, y), axis=0)
    ddof = (0 if bias else 1) if ddof is None else _static_int(ddof, "np.cov's ddof")
    fact = shape_of(X)[1] - ddof
    if fact <= 0:
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=2)
        fact = 0.0
    X = call_ufunc(np.subtract, X, getitem(mean(X, axis=1), (slice(None), None)))
    c = call_ufunc(np.matmul, X, transpose(X))
    with np.errstate(divide="ignore"):
        scale = np.true_divide(1, fact)  # NumPy: c *= 1 / fact, in c's dtype
    c = call_ufunc(np.multiply, c, scale)
    return squeeze(c if c.dtype == dtype else c.astype(dtype))


@implements(np.corrcoef)
def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    c = cov(x, y, rowvar, dtype=dtype)
    if not len(shape_of(c)):  # one variable: nan for a zero, nan or inf variance, else 1
        return call_ufunc(np.true_divide, c, c)
    stddev = call_ufunc(np.sqrt, diagonal(c))
    c = call_ufunc(np.true_divide, c, getitem(stddev, (slice(None), None)))
    c = call_ufunc(np.true_divide, c, getitem(stddev, (None, slice(None))))
    return clip(c, -1, 1)


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
        if out is not None:
            return _into_out(op, handler(a, axis, dtype), out, "unsafe")
        if axis is not None:
            axis = normalize_axis(operator.index(axis), a.ndim)
        return apply(op, [a], axis=axis, dtype=None if dtype is None else np.dtype(dtype))
    return handler


cumsum = implements(np.cumsum)(_scan("cumsum"))
cumprod = implements(np.cumprod)(_scan("cumprod"))


@implements(np.diff)
def diff(a, n=1, axis=-1, prepend=_NOVALUE, append=_NOVALUE):
    n = _static_int(n, "np.diff's order n")
    if n < 0:
        raise with_location(ValueError, f"order must be non-negative but got {n}")
    if n == 0:
        return a
    a = a if isinstance(a, Proxy) else np.asarray(a)
    shape = a.shape
    if not shape:
        raise with_location(ValueError, "diff requires input that is at least one dimensional")
    axis = normalize_axis(_static_int(axis, "axis"), len(shape))
    edge = shape[:axis] + (1,) + shape[axis + 1:]
    parts = [a]
    if prepend is not _NOVALUE:
        parts.insert(0, prepend if len(shape_of(prepend)) else broadcast_to(prepend, edge))
    if append is not _NOVALUE:
        parts.append(append if len(shape_of(append)) else broadcast_to(append, edge))
    if len(parts) > 1:
        a = concatenate(parts, axis)
    ufunc = np.not_equal if a.dtype == np.bool_ else np.subtract
    before = (slice(None),) * axis
    for _ in range(n):
        a = call_ufunc(ufunc, getitem(a, before + (slice(1, None),)),
                       getitem(a, before + (slice(None, -1),)))
    return a

# np.convolve sums shifted slices, one per weight: a kernel longer than this is not unrolled
MAX_CONVOLVE_TAPS = 64


@implements(np.convolve)
def convolve(a, v, mode="full"):
    # NumPy's: np.correlate(a, v[::-1], mode) with the shorter operand as the weights
    a, v = (x if isinstance(x, Proxy) else np.asarray(x) for x in (a, v))
    a, v = (reshape(x, (1,)) if not len(shape_of(x)) else x for x in (a, v))
    if len(shape_of(a)) != 1 or len(shape_of(v)) != 1:
        raise with_location(ValueError, "object too deep for desired array")
    if not shape_of(a)[0] or not shape_of(v)[0]:
        raise with_location(ValueError, f"{'a' if not shape_of(a)[0] else 'v'} cannot be empty")
    if shape_of(v)[0] > shape_of(a)[0]:
        a, v = v, a
    n, m = shape_of(a)[0], shape_of(v)[0]
    if m > MAX_CONVOLVE_TAPS:
        raise with_location(UnsupportedError, f"np.convolve with {m} weights: traced code "
                            f"unrolls at most {MAX_CONVOLVE_TAPS}")
    pads = {"valid": (0, 0), "same": (m // 2, m - m // 2 - 1), "full": (m - 1, m - 1)}
    if mode not in pads:
        raise with_location(ValueError, f"mode must be one of 'valid', 'same', or 'full' (got "
                            f"{mode!r})")
    dtype = np.result_type(a.dtype, v.dtype)
    a, v = a.astype(dtype), v.astype(dtype)
    w = [getitem(v, m - 1 - i) for i in range(m)]
    left, right = pads[mode]
    # output k sums a[k - left + i] * w[i] over the i that fall inside a, in order of i; the
    # middle outputs read no padding, the edges mask the terms that would (NumPy skips them)
    parts = [_correlate_edge(a, w, left, True)] if left else []
    parts.append(_sum_terms([call_ufunc(np.multiply, getitem(a, slice(i, i + n - m + 1)), w[i])
                             for i in range(m)]))
    if right:
        parts.append(_correlate_edge(a, w, right, False))
    return parts[0] if len(parts) == 1 else concatenate(parts)


def _sum_terms(terms):
    total = terms[0]
    for t in terms[1:]:
        total = call_ufunc(np.add, total, t)
    return total


def _correlate_edge(a, w, count, at_start):
    """The `count` outputs of a correlation that read before the start (or past the end) of a:
    a few elements of a next to zeros; the terms that read a zero are masked out."""
    m = len(w)
    zeros = np.zeros(count, a.dtype)
    if at_start:  # output k reads a[k - count + i]
        padded = concatenate([zeros, getitem(a, slice(0, m - 1))])
    else:  # output k reads a[n - m + 1 + k + i]
        padded = concatenate([getitem(a, slice(shape_of(a)[0] - m + 1, None)), zeros])
    terms = []
    for i, wi in enumerate(w):
        product = call_ufunc(np.multiply, getitem(padded, slice(i, i + count)), wi)
        pos = np.arange(count) + i  # where the terms read in `padded`
        inside = pos >= count if at_start else pos < m - 1
        terms.append(product if inside.all() else where_(inside, product, a.dtype.type(0)))
    return _sum_terms(terms)


@implements(np.trapezoid)
def trapezoid(y, x=None, dx=1.0, axis=-1):
    # NumPy's own steps, so dtypes and rounding agree
    y, x = (v if isinstance(v, (Proxy, type(None))) else np.asarray(v) for v in (y, x))
    nd = len(y.shape)
    axis = normalize_axis(_static_int(axis, "axis"), nd)
    if x is None:
        d = dx
    elif len(shape_of(x)) == 1:
        d = diff(x)
        d = reshape(d, tuple(shape_of(d)[0] if i == axis else 1 for i in range(nd)))
    else:
        d = diff(x, axis=axis)
    before = (slice(None),) * axis
    total = y[before + (slice(1, None),)] + y[before + (slice(None, -1),)]
    return sum_(d * total / 2.0, axis)


@implements(np.gradient)
def gradient(f, *varargs, axis=None, edge_order=1):
    # NumPy's steps for uniform spacing: central differences inside, one-sided at the edges
    f = f if isinstance(f, Proxy) else np.asarray(f)
    ndim = len(shape_of(f))
    axes = tuple(range(ndim)) if axis is None else tuple(
        normalize_axis(ax, ndim) for ax in _static_ints(axis, "axis"))
    if len(set(axes)) != len(axes):
        raise with_location(ShapeError, f"repeated axis in np.gradient's axis={axis!r}")
    if not varargs:
        spacing = [1.0] * len(axes)
    elif len(varargs) == 1 and not len(shape_of(varargs[0])):
        spacing = list(varargs) * len(axes)
    elif len(varargs) == len(axes):
        spacing = list(varargs)
    else:
        raise with_location(TypeError, "invalid number of arguments")
    if any(len(shape_of(dx)) for dx in spacing):
        raise with_location(UnsupportedError, "np.gradient with coordinate arrays is not "
                            "supported in traced code; pass scalar spacings")
    edge_order = _static_int(edge_order, "np.gradient's edge_order")
    if edge_order not in (1, 2):
        raise with_location(ValueError, "'edge_order' greater than 2 not supported")
    otype = f.dtype
    if otype.kind != "f":
        f = f.astype(np.float64) if otype.kind in "iu" else f
        otype = np.dtype(np.float64)
    out = []
    for ax, dx in zip(axes, spacing):
        if shape_of(f)[ax] < edge_order + 1:
            raise with_location(ValueError, "Shape of array too small to calculate a numerical "
                                "gradient, at least (edge_order + 1) elements are required.")

        def part(start, stop, ax=ax):
            return getitem(f, (slice(None),) * ax + (slice(start, stop),))

        inner = (part(2, None) - part(None, -2)) / (2. * dx)
        if edge_order == 1:
            first = (part(1, 2) - part(0, 1)) / dx
            last = (part(-1, None) - part(-2, -1)) / dx
        else:
            first = (-1.5 / dx * part(0, 1) + 2. / dx * part(1, 2)) + -0.5 / dx * part(2, 3)
            last = (0.5 / dx * part(-3, -2) + -2. / dx * part(-2, -1)) + 1.5 / dx * part(-1, None)
        parts = [p if p.dtype == otype else p.astype(otype) for p in (first, inner, last)]
        out.append(concatenate(parts, axis=ax))
    return out[0] if len(out) == 1 else tuple(out)


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
    if out is not None:
        return _into_out(f"{ufunc.__name__}.reduce", ufunc_reduce(
            ufunc, a, axis, dtype, keepdims=keepdims, initial=initial, where=where), out)
    _only_defaults(f"{ufunc.__name__}.reduce", out, initial, where)
    attrs = {"dtype": None if dtype is None else np.dtype(dtype)} if op in ("sum", "prod") else {}
    if dtype is not None and not attrs:
        a = a.astype(dtype)
    return _reduce(op, a, axis, keepdims, **attrs)


# ---------------------------------------------------------------------------------------------
# shape ops, views and creation

def _scalar(x):
    """x, or for a 0-d x a NumPy scalar (its one element), as NumPy functions return."""
    return getitem(x, ()) if not shape_of(x) else x


def _view(op_name, a, **attrs):
    """Record a view of `a`: it shares a's buffer, so writes through either reach both."""
    return share(apply(op_name, [a], **attrs), a, op_name, attrs)


def _static_int(value, what):
    if isinstance(value, Proxy):
        if value.node.weak:  # a Python scalar argument: traced again with its value
            value.__index__()
        raise with_location(UnsupportedError, f"{what} must be known while tracing, not a traced "
                            "value (mark the argument static with static_argnames)")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise with_location(UnsupportedError, f"{what} must be an integer, not {value!r}")
    return int(value)


def _static_ints(values, what):
    if isinstance(values, (tuple, list)):
        return tuple(_static_int(v, what) for v in values)
    return (_static_int(values, what),)


def _normalize_index(key, shape):
    """A basic NumPy index (ints, slices, None, Ellipsis) as an Index covering every dimension."""
    for k in key:
        if isinstance(k, (bool, np.bool_)) or not (
                k is None or k is Ellipsis or isinstance(k, (int, np.integer, slice))):
            raise with_location(UnsupportedError, f"index {k!r}: advanced (integer array or "
                                "boolean) indexing is not supported in traced code; use ints, "
                                "slices, None and ...")
    if sum(k is Ellipsis for k in key) > 1:
        raise with_location(ShapeError, "an index can only have a single ellipsis ('...')")
    consumed = sum(k is not None and k is not Ellipsis for k in key)
    if consumed > len(shape):
        raise with_location(ShapeError, f"too many indices for an array of shape {shape}: "
                            f"{consumed} were indexed")
    if Ellipsis not in key:
        key = key + (Ellipsis,)
    at = key.index(Ellipsis)
    key = key[:at] + (slice(None),) * (len(shape) - consumed) + key[at + 1:]
    index, dims = [], iter(shape)
    for k in key:
        if k is None:
            index.append(None)
            continue
        n = next(dims)
        if isinstance(k, slice):
            for part in (k.start, k.stop, k.step):
                if part is not None:
                    _static_int(part, "a slice bound")
            if k.step == 0:
                raise with_location(ShapeError, "slice step cannot be zero")
            start, stop, step = k.indices(n)
            index.append((start, None if stop < 0 else stop, step))
        else:
            i = int(k)
            if not -n <= i < n:
                raise with_location(ShapeError, f"index {i} is out of bounds for an axis of "
                                    f"size {n}")
            index.append(i % n)
    return Index(index)


def _is_index_array(k):
    return isinstance(k, (Proxy, list, np.ndarray))


def getitem(a, key):
    if isinstance(a, Proxy) and a.node.weak:
        raise with_location(TypeError, f"a Python {a.dtype.kind == 'f' and 'float' or 'int'} "
                            "argument cannot be indexed")
    key = _mask_then_full_slices(key if isinstance(key, tuple) else (key,))
    if len(key) == 1 and _is_bool_mask(key[0]) and isinstance(key[0], Proxy):
        _check_mask(key[0], a, "indexing")
        return Selection(a, key[0])  # its length depends on the mask's values
    key = _concrete_masks_as_indices(key)
    arrays = [p for p, k in enumerate(key) if _is_index_array(k)]
    if arrays:
        return _gather(a, key, arrays)
    index = _normalize_index(key, a.shape)
    if all(isinstance(e, int) for e in index):  # one element: a copy, as NumPy's scalar is
        return apply("getitem", [a], index=index)
    return _view("getitem", a, index=index)


def assign(target, key, value):
    """target[key] = value on a traced array: basic indexing, integer index arrays (an
    `index_put`), or a boolean mask of the target's shape or of its leading axes with a scalar
    value (a traced condition, `x[x < 0] = 0`)."""
    key = _mask_then_full_slices(key if isinstance(key, tuple) else (key,))
    if len(key) == 1 and _is_bool_mask(key[0]):
        mask, mshape = key[0], tuple(shape_of(key[0]))
        _check_mask(mask, target, "assignment")
        if isinstance(value, Selection):  # `v[m] = -v[m]`, `x[m] += 1`: through the same mask
            if not isinstance(mask, Proxy) or not value.same_mask(mask):
                raise with_location(TraceError, "assignment of a boolean-mask selection "
                                    "through another mask: the two lengths are known only "
                                    "at run time; use np.where")
            value = value.values
        elif len(shape_of(value)) != 0:
            if not isinstance(mask, Proxy):  # a mask known while tracing: its index arrays
                assign(target, _concrete_masks_as_indices(key), value)
                return
            raise with_location(UnsupportedError, "assignment of an array through a boolean "
                                "mask (its length depends on the mask) is not supported in "
                                "traced code; assign a scalar, or use np.where")
        if len(mshape) < target.ndim:  # a mask of rows: x[rows_mask] = 0
            mask = reshape(mask, mshape + (1,) * (target.ndim - len(mshape)))
        write(target, None, where_(mask, value, target))
        return
    if not isinstance(value, Proxy):
        value = _from_nested(value) if _contains_proxy(value) else np.asarray(value)
        if value.dtype.kind not in "biuf":
            raise with_location(UnsupportedError, f"assigning a value of dtype {value.dtype} "
                                "in traced code")
    if any(_is_index_array(k) for k in key):
        array_key, idxs, region = _array_key(key, target.shape)
        value = value if isinstance(value, Proxy) and value.dtype == target.dtype else \
            apply("astype", [value], dtype=target.dtype)
        write_indexed(target, array_key, idxs, _to_region(value, region))
        return
    write(target, _normalize_index(key, target.shape), value)


def _is_bool_mask(k):
    return isinstance(k, (Proxy, np.ndarray)) and k.dtype == np.bool_


def _mask_then_full_slices(key):
    """x[mask, :] and x[mask, ...] are x[mask]."""
    if len(key) > 1 and _is_bool_mask(key[0]) and all(
            k is Ellipsis or isinstance(k, slice) and k == slice(None) for k in key[1:]):
        return key[:1]
    return key


def _check_mask(mask, a, what):
    mshape = tuple(shape_of(mask))
    if mshape != tuple(a.shape[:len(mshape)]):
        raise with_location(UnsupportedError, f"{what} through a boolean mask that is not of "
                            "the array's shape (or of its leading axes) is not supported in "
                            "traced code")


def _concrete_masks_as_indices(key):
    """A boolean mask known while tracing (a NumPy array or a list of bools) indexes as its
    nonzero() index arrays, as in NumPy."""
    out = []
    for k in key:
        if isinstance(k, list) and k and all(isinstance(b, (bool, np.bool_)) for b in k):
            k = np.array(k)
        if isinstance(k, np.ndarray) and k.dtype == np.bool_ and k.ndim:
            out.extend(k.nonzero())
        else:
            out.append(k)
    return tuple(out)


def _array_key(key, shape):
    """(ArrayKey, index arrays, the shape of x[key]) for a key with integer index arrays, with
    NumPy's IndexError for a constant index out of range."""
    entries, idxs = [], []
    for k in key:
        if _is_index_array(k):
            entries.append(f"#{len(idxs)}")
            idxs.append(_index_array(k))
        elif isinstance(k, slice):
            entries.append(tuple(None if v is None else _static_int(v, "a slice bound")
                                 for v in (k.start, k.stop, k.step)))
        elif k is None or k is Ellipsis:
            entries.append(k)
        else:
            entries.append(_static_int(k, "an index"))
    key = ArrayKey(entries)
    dummies = [np.zeros(i.shape, np.intp) if isinstance(i, Proxy) else i for i in idxs]
    try:  # NumPy's own shape rules and errors, on a broadcast dummy
        region = np.broadcast_to(np.zeros((), np.bool_), shape)[key.resolve(dummies)].shape
    except IndexError as e:
        raise with_location(IndexError, str(e)) from None
    return key, idxs, region


def _to_region(value, region):
    """value broadcast to the region it is written into (NumPy drops leading unit axes)."""
    vshape = tuple(shape_of(value))
    if len(vshape) > len(region) and all(n == 1 for n in vshape[:len(vshape) - len(region)]):
        value = reshape(value, vshape[len(vshape) - len(region):])
        vshape = tuple(shape_of(value))
    if vshape != tuple(region):
        try:
            np.broadcast_shapes(vshape, region)
        except ValueError:
            raise with_location(ValueError, f"shape mismatch: value array of shape {vshape} "
                                "could not be broadcast to indexing result of shape "
                                f"{tuple(region)}") from None
        value = broadcast_to(value, region)
    return value if isinstance(value, Proxy) else apply("astype", [value], dtype=value.dtype)


_UFUNC_AT = {np.add: "add", np.subtract: "subtract", np.multiply: "multiply",
             np.maximum: "maximum", np.minimum: "minimum", np.fmax: "fmax", np.fmin: "fmin",
             np.bitwise_and: "bitwise_and", np.bitwise_or: "bitwise_or",
             np.bitwise_xor: "bitwise_xor"}


def ufunc_at(ufunc, a, indices, b=None):
    """np.add.at(a, indices, b) and friends (reached through Proxy.__array_ufunc__): b combined
    into a at the indices, a repeated index combining once per occurrence."""
    name = _UFUNC_AT.get(ufunc)
    if name is None or b is None:
        raise with_location(UnsupportedError, f"np.{ufunc.__name__}.at is not supported in "
                            "traced code")
    if not isinstance(a, Proxy) or a._is_eager_scalar():
        raise with_location(TraceError, f"np.{ufunc.__name__}.at into an array that is not "
                            "traced (made with NumPy inside the function, or captured) is not "
                            "supported yet")
    key = indices if isinstance(indices, tuple) else (indices,)
    array_key, idxs, region = _array_key(key, a.shape)
    if not isinstance(b, Proxy):
        b = _from_nested(b) if _contains_proxy(b) else b
        b = b if isinstance(b, Proxy) or type(b) in (bool, int, float) else np.asarray(b)
    # the value in the dtype NumPy's loop reads it in (a Python scalar is weakly typed)
    loop = resolve(ufunc, [a.node, as_node(b, a._trace)])
    if not isinstance(b, Proxy) or b.node.weak or b.dtype != loop[1]:
        b = apply("astype", [b], dtype=loop[1])
    write_indexed(a, array_key, idxs, _to_region(b, region), ufunc=name)


def ufunc_accumulate(ufunc, array, axis=0, dtype=None, out=None):
    """np.add.accumulate, np.maximum.accumulate and friends: a scan on the host."""
    if ufunc.nin != 2 or ufunc not in UFUNC_OPS:
        raise with_location(UnsupportedError, f"np.{ufunc.__name__}.accumulate is not "
                            "supported in traced code")
    _only_defaults(f"{ufunc.__name__}.accumulate", out)
    a = array if isinstance(array, Proxy) else np.asarray(array)
    if not len(shape_of(a)):
        raise with_location(TypeError, "cannot accumulate on a scalar")
    axis = normalize_axis(_static_int(axis, "axis"), len(shape_of(a)))
    return apply("accumulate", [a], ufunc=ufunc.__name__, axis=axis,
                 dtype=None if dtype is None else np.dtype(dtype))


@implements(np.copyto)
def copyto(dst, src, casting="same_kind", where=True):
    if not isinstance(dst, Proxy):
        raise with_location(TraceError, "np.copyto into an array that is not traced is not "
                            "supported yet")
    if where is not True:
        src = np.where(where, src, dst)
    src_dtype = src.dtype if isinstance(src, (Proxy, np.ndarray)) else np.asarray(src).dtype
    if not np.can_cast(src_dtype, dst.dtype, casting):
        np.copyto(np.zeros((), dst.dtype), np.zeros((), src_dtype), casting=casting)  # NumPy's
    write(dst, None, src)


def _index_array(idx):
    if isinstance(idx, (list, tuple)) and _contains_proxy(idx):  # traced ints: x[[i, j]]
        idx = _from_nested(idx)
    if not isinstance(idx, Proxy):
        try:
            # NumPy reads an empty list as an empty integer index
            idx = np.asarray(idx) if not (isinstance(idx, list) and not idx) else \
                np.zeros(0, np.intp)
        except ValueError:
            raise with_location(UnsupportedError, f"index {idx!r} is not an array of "
                                "integers") from None
    if idx.dtype.kind == "b":
        raise with_location(UnsupportedError, "boolean-mask indexing selects a data-dependent "
                            "number of elements, which tracing does not support; use np.where")
    if idx.dtype.kind not in "iu":
        raise with_location(UnsupportedError, f"an index array of dtype {idx.dtype}: only "
                            "integer index arrays gather")
    return idx


def _gather(a, key, positions):
    """x[..., i, ..., j, ...] with integer index arrays: the basic index with a full slice in
    each array's place, then `take` along one axis (several arrays index their axes merged
    into one, see _flat_index). NumPy counts the integers of the key as index arrays too: when
    they are not side by side (a slice, None or ... between them), the gathered dimensions go
    first."""
    shape = shape_of(a)
    idxs = [_index_array(key[p]) for p in positions]
    if not any(k is Ellipsis for k in key):  # `is`: `in` would compare a proxy with ==
        key = key + (Ellipsis,)
    consumed = sum(k is not None and k is not Ellipsis for k in key)
    at = next(i for i, k in enumerate(key) if k is Ellipsis)
    fill = (slice(None),) * max(len(shape) - consumed, 0)
    key = key[:at] + fill + key[at + 1:]
    positions = [p if p < at else p + len(fill) - 1 for p in positions]
    # the axis of the view each array indexes: the slices, Nones and arrays before it
    axes = [sum(isinstance(k, slice) or k is None or i in positions
                for i, k in enumerate(key[:p])) for p in positions]
    basic = _normalize_index(tuple(slice(None) if i in positions else k
                                   for i, k in enumerate(key)), shape)
    whole = len(basic) == len(shape) and all(e == (0, n, 1) for e, n in zip(basic, shape))
    view = a if whole else _view("getitem", a, index=basic)
    for idx, axis in zip(idxs, axes):  # a constant index: NumPy's IndexError now, even if the
        n = shape_of(view)[axis]       # gather turns out unused and is never run
        bad = [] if isinstance(idx, Proxy) else idx[(idx < -n) | (idx >= n)]
        if len(bad):
            raise with_location(IndexError, f"index {bad.flat[0]} is out of bounds for axis "
                                f"{axis} with size {n}")
    if len(idxs) == 1:
        idx, axis = idxs[0], axes[0]
    else:
        view, idx, axis = _flat_index(view, idxs, axes)
    result = apply("take", [view, idx], axis=axis)
    block = sorted(positions + [i for i, k in enumerate(key) if isinstance(k, (int, np.integer))])
    n = len(shape_of(idx))
    if n and block[-1] - block[0] + 1 != len(block):
        result = moveaxis(result, list(range(axis, axis + n)), list(range(n)))
    return result


def _flat_index(view, idxs, axes):
    """Several index arrays on `axes` of `view` as one gather: (the view with those axes merged
    into one, the flat index into it (the index arrays broadcast together), the merged axis).
    An index out of range points past the end of the merged axis, so `take` still raises
    NumPy's IndexError instead of reading a neighbouring row."""
    if axes != list(range(axes[0], axes[0] + len(axes))):  # apart: gather from the front
        view = transpose(view, axes + [d for d in range(len(shape_of(view))) if d not in axes])
        axes = list(range(len(axes)))
    shape = tuple(shape_of(view))
    sizes = [shape[d] for d in axes]
    total = int(np.prod(sizes, dtype=np.int64))
    view = reshape(view, shape[:axes[0]] + (total,) + shape[axes[-1] + 1:])
    flat, valid = 0, True
    for idx, n in zip(idxs, sizes):
        i = idx.astype(np.intp)
        valid = valid & (i >= -n) & (i < n)
        flat = flat * n + np.where(i < 0, i + n, i)
    return view, np.where(valid, flat, total), axes[0]


def _split(ary, indices_or_sections, axis, even):
    shape = shape_of(ary)
    axis = normalize_axis(_static_int(axis, "axis"), len(shape))
    n = shape[axis]
    if isinstance(indices_or_sections, (tuple, list)):
        bounds = [0, *_static_ints(indices_or_sections, "a split index"), n]
    else:
        sections = _static_int(indices_or_sections, "the number of sections")
        if sections <= 0 or (even and n % sections):
            raise with_location(ShapeError, f"an axis of size {n} does not split into "
                                f"{sections} equal sections")
        size, extra = divmod(n, sections)
        bounds = [0]
        for i in range(sections):
            bounds.append(bounds[-1] + size + (i < extra))
    before = (slice(None),) * axis
    return [getitem(ary, before + (slice(lo, hi),)) for lo, hi in zip(bounds, bounds[1:])]


@implements(np.split)
def split(ary, indices_or_sections, axis=0):
    return _split(ary, indices_or_sections, axis, even=True)


@implements(np.array_split)
def array_split(ary, indices_or_sections, axis=0):
    return _split(ary, indices_or_sections, axis, even=False)


@implements(np.flip)
def flip(m, axis=None):
    ndim = len(shape_of(m))
    axes = range(ndim) if axis is None else [normalize_axis(ax, ndim)
                                             for ax in _static_ints(axis, "axis")]
    return getitem(m, tuple(slice(None, None, -1) if d in axes else slice(None)
                            for d in range(ndim)))


@implements(np.flipud)
def flipud(m):
    return flip(m, 0)


@implements(np.fliplr)
def fliplr(m):
    return flip(m, 1)


def _shape_arg(shape):
    if isinstance(shape, (tuple, list)):
        return tuple(_static_int(s, "a shape entry") for s in shape)
    return (_static_int(shape, "a shape"),)


@implements(np.reshape)
def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    if order != "C" or copy:
        raise with_location(UnsupportedError, "reshape supports order='C' without copy=True")
    shape = _shape_arg(newshape if shape is None else shape)
    size = int(np.prod(shape_of(a), dtype=np.int64))
    if shape.count(-1) > 1:
        raise with_location(ShapeError, "can only specify one unknown dimension (-1)")
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        if known == 0 or size % known:
            raise with_location(ShapeError, f"cannot reshape an array of size {size} into "
                                f"shape {shape}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    if any(s < 0 for s in shape) or int(np.prod(shape, dtype=np.int64)) != size:
        raise with_location(ShapeError, f"cannot reshape an array of shape {shape_of(a)} into "
                            f"shape {shape}")
    if shape == tuple(shape_of(a)) and isinstance(a, Proxy):
        view = Proxy(a.node, a._trace)  # a no-op view: the same memory under a second name
        view._base, view._path, view._version = a._buffer(), a._path, a._buffer().version
        return view
    return _view("reshape", a, shape=shape)


@implements(np.ravel)
def ravel(a, order="C"):
    if order != "C":
        raise with_location(UnsupportedError, "ravel supports order='C' only")
    return reshape(a, -1)


@implements(np.squeeze)
def squeeze(a, axis=None):
    shape = shape_of(a)
    if axis is None:
        axes = {i for i, s in enumerate(shape) if s == 1}
    else:
        axes = {normalize_axis(ax, len(shape)) for ax in _static_ints(axis, "axis")}
        for ax in axes:
            if shape[ax] != 1:
                raise with_location(ShapeError, f"cannot squeeze axis {ax} of size {shape[ax]}")
    return reshape(a, tuple(s for i, s in enumerate(shape) if i not in axes))


@implements(np.expand_dims)
def expand_dims(a, axis):
    shape = shape_of(a)
    axes = _static_ints(axis, "axis")
    ndim = len(shape) + len(axes)
    axes = {normalize_axis(ax, ndim) for ax in axes}
    if len(axes) != len(_static_ints(axis, "axis")):
        raise with_location(ShapeError, "repeated axis in expand_dims")
    it = iter(shape)
    return reshape(a, tuple(1 if i in axes else next(it) for i in range(ndim)))


@implements(np.swapaxes)
def swapaxes(a, axis1, axis2):
    ndim = len(shape_of(a))
    axes = list(range(ndim))
    i, j = normalize_axis(axis1, ndim), normalize_axis(axis2, ndim)
    axes[i], axes[j] = axes[j], axes[i]
    return transpose(a, axes)


@implements(np.moveaxis)
def moveaxis(a, source, destination):
    ndim = len(shape_of(a))
    src = [normalize_axis(ax, ndim) for ax in _static_ints(source, "source")]
    dst = [normalize_axis(ax, ndim) for ax in _static_ints(destination, "destination")]
    if len(src) != len(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise with_location(ShapeError, "moveaxis: source and destination need the same number "
                            "of distinct axes")
    order = [ax for ax in range(ndim) if ax not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, order)


@implements(np.matrix_transpose)
def matrix_transpose(x):
    if len(shape_of(x)) < 2:
        raise with_location(ShapeError, "matrix_transpose needs at least 2 dimensions")
    return swapaxes(x, -1, -2)


@implements(np.broadcast_to)
def broadcast_to(array, shape, subok=False):
    return _view("broadcast_to", array, shape=_shape_arg(shape))


def _atleast(a, n):
    """`a` with at least n dimensions, as np.atleast_{n}d pads it (3-d puts a 1-d array's or a
    2-d array's extra unit dimension last)."""
    shape = tuple(shape_of(a))
    if len(shape) >= n:
        return a
    if n == 3 and len(shape) == 2:
        return reshape(a, shape + (1,))
    if n == 3 and len(shape) == 1:
        return reshape(a, (1,) + shape + (1,))
    return reshape(a, (1,) * (n - len(shape)) + shape)


def _atleast_handler(n):
    def handler(*arys):
        out = tuple(_atleast(a, n) for a in arys)
        return out[0] if len(out) == 1 else out
    return handler


for _n, _f in enumerate((np.atleast_1d, np.atleast_2d, np.atleast_3d), start=1):
    implements(_f)(_atleast_handler(_n))


def _arrays(arrays, what):
    arrays = [a if isinstance(a, Proxy) else _from_nested(a) if _contains_proxy(a)
              else np.asarray(a) for a in arrays]
    if not arrays:
        raise with_location(ValueError, f"{what} needs at least one array")
    return arrays


@implements(np.concatenate)
def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    if out is not None or dtype is not None:
        raise with_location(UnsupportedError, "np.concatenate with out= or dtype= is not "
                            "supported in traced code")
    arrays = _arrays(arrays, "concatenate")
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    ndim = len(shape_of(arrays[0]))
    if ndim == 0:
        raise with_location(ShapeError, "zero-dimensional arrays cannot be concatenated")
    return apply("concatenate", arrays, axis=normalize_axis(_static_int(axis, "axis"), ndim))


@implements(np.stack)
def stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    arrays = _arrays(arrays, "stack")
    shapes = {tuple(shape_of(a)) for a in arrays}
    if len(shapes) != 1:
        raise with_location(ShapeError, f"all input arrays must have the same shape, not "
                            f"{sorted(shapes)}")
    ndim = len(shapes.pop()) + 1
    axis = normalize_axis(_static_int(axis, "axis"), ndim)
    return concatenate([expand_dims(a, axis) for a in arrays], axis, out, dtype, casting)


@implements(np.hstack)
def hstack(tup, dtype=None, casting="same_kind"):
    arrays = [_atleast(a, 1) for a in _arrays(tup, "hstack")]
    return concatenate(arrays, 0 if len(shape_of(arrays[0])) == 1 else 1, dtype=dtype)


@implements(np.vstack)
def vstack(tup, dtype=None, casting="same_kind"):
    arrays = [_atleast(a, 2) for a in _arrays(tup, "vstack")]
    return concatenate(arrays, 0, dtype=dtype)


@implements(np.roll)
def roll(a, shift, axis=None):
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), shape_of(a))
    ndim = len(shape_of(a))
    shifts, axes = _static_ints(shift, "shift"), _static_ints(axis, "axis")
    axes = tuple(normalize_axis(ax, ndim) for ax in axes)
    if len(shifts) != len(axes) and 1 not in (len(shifts), len(axes)):
        raise with_location(ShapeError, f"np.roll: {len(shifts)} shifts do not match "
                            f"{len(axes)} axes")
    # NumPy pairs shifts with axes (broadcasting a single one); keep its own arguments' form
    return apply("roll", [a], shift=shifts if isinstance(shift, (tuple, list)) else shifts[0],
                 axis=axes if isinstance(axis, (tuple, list)) else axes[0])


@implements(np.tile)
def tile(A, reps):
    reps = _static_ints(reps, "reps")
    if any(r < 0 for r in reps):
        raise with_location(ShapeError, f"np.tile: negative repetitions {reps}")
    return apply("tile", [A], reps=reps)


@implements(np.repeat)
def repeat(a, repeats, axis=None):
    repeats = _static_int(repeats, "np.repeat's count (a per-element count array is not "
                          "supported)")
    if repeats < 0:
        raise with_location(ShapeError, f"np.repeat: negative count {repeats}")
    if axis is not None:
        axis = normalize_axis(_static_int(axis, "axis"), len(shape_of(a)))
    return apply("repeat", [a], repeats=repeats, axis=axis)


@implements(np.tril)
def tril(m, k=0):
    # NumPy's: a constant mask from np.tri, then where
    mask = np.tri(*shape_of(m)[-2:], k=_static_int(k, "k"), dtype=bool)
    return where_(mask, m, np.zeros(1, m.dtype))


@implements(np.triu)
def triu(m, k=0):
    mask = np.tri(*shape_of(m)[-2:], k=_static_int(k, "k") - 1, dtype=bool)
    return where_(mask, np.zeros(1, m.dtype), m)


@implements(np.meshgrid)
def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    if indexing not in ("xy", "ij"):
        raise with_location(ValueError, "Valid values for `indexing` are 'xy' and 'ij'.")
    ndim = len(xi)
    unit = (1,) * ndim
    out = [reshape(x, unit[:i] + (-1,) + unit[i + 1:]) for i, x in enumerate(xi)]
    if indexing == "xy" and ndim > 1:
        out[0] = reshape(out[0], (1, -1) + unit[2:])
        out[1] = reshape(out[1], (-1, 1) + unit[2:])
    if not sparse:
        shape = np.broadcast_shapes(*(shape_of(x) for x in out))
        out = [broadcast_to(x, shape) for x in out]
    return tuple(x.copy() if copy else x for x in out)


def _like(prototype, dtype, shape, value):
    dtype = np.dtype(prototype.dtype if dtype is None else dtype)
    shape = tuple(shape_of(prototype)) if shape is None else _shape_arg(shape)
    if isinstance(value, Proxy):  # a traced fill value: copy it out across the shape
        return apply("astype", [apply("broadcast_to", [value], shape=shape)], dtype=dtype)
    value = np.array(value).astype(dtype).item()  # NumPy casts the fill value unsafely
    return apply("full", [], shape=shape, dtype=dtype, value=value)


def _constructor(name, fill):
    """np.zeros/ones/empty/full called from traced code: a traced array (fusing with its users
    like zeros_like), so the function can write into it. Dtypes kernels do not hold stay
    NumPy's own arrays."""
    original = getattr(np, name)

    def make(shape, *args, **kwargs):
        bound = _CONSTRUCTOR_PARAMS[name](shape, *args, **kwargs)
        value = bound.get("fill_value", fill)
        dtype = bound.get("dtype")
        if dtype is None and name != "full":
            dtype = np.float64
        elif dtype is None:
            dtype = value.dtype if isinstance(value, Proxy) else np.array(value).dtype
        if isinstance(value, Proxy) and not value._is_eager_scalar() or \
                np.dtype(dtype).kind not in SUPPORTED_KINDS or isinstance(shape, Proxy):
            return original(shape, *args, **kwargs)
        return _like(None, np.dtype(dtype), shape, value)

    patches.wrap(np, name, make)


def _params(*names):
    def bind(shape, *args, **kwargs):
        return {**dict(zip(names, args)), **kwargs}
    return bind


_CONSTRUCTOR_PARAMS = {"zeros": _params("dtype"), "ones": _params("dtype"),
                       "empty": _params("dtype"), "full": _params("fill_value", "dtype")}
# np.empty gives zeros here: its contents are unspecified, and zeros keep runs deterministic
for _name, _fill in (("zeros", 0), ("ones", 1), ("empty", 0), ("full", None)):
    _constructor(_name, _fill)
del _name, _fill


# np.array and np.asarray of a list or tuple with traced values inside (`np.array([[c, -s],
# [s, c]])`): the elements stacked, with NumPy's dtype and shape. Anything else (no traced value
# inside, or a traced array on its own, whose refusal names the conversion) is NumPy's own call.

_np_array, _np_asarray = np.array, np.asarray


def _contains_proxy(obj):
    if isinstance(obj, Proxy):
        return True
    return isinstance(obj, (list, tuple)) and any(_contains_proxy(o) for o in obj)


def _dummy_leaf(x):
    """What NumPy's array coercion sees for a traced leaf: a Python scalar for a weak value, a
    NumPy scalar for a 0-d one, else an array of its shape and dtype (a broadcast zero)."""
    if x.node.weak:
        return {"b": False, "f": 0.0}.get(x.dtype.kind, 0)
    if not x.shape:
        return x.dtype.type(0)
    return np.broadcast_to(np.zeros((), x.dtype), x.shape)


def _dummy_nested(obj):
    if isinstance(obj, Proxy):
        return _dummy_leaf(obj)
    if isinstance(obj, (list, tuple)):
        return [_dummy_nested(o) for o in obj]
    return obj


def _from_nested(obj, dtype=None, **kwargs):
    """np.array(obj, dtype, **kwargs) for nested lists and tuples holding traced values: each
    level stacked. NumPy decides the dtype and shape (and raises its own errors) on a copy of
    the nesting with dummies in place of the traced values."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            like = _np_array(_dummy_nested(obj), dtype=dtype, **kwargs)
    except (ValueError, TypeError) as e:
        raise with_location(type(e), str(e)) from None
    if like.dtype.kind not in SUPPORTED_KINDS:
        raise with_location(UnsupportedError, f"np.array of traced values with dtype "
                            f"{like.dtype}; tracejit supports bool, integer and float arrays")

    natural = like if not kwargs.get("ndmin") else _np_array(_dummy_nested(obj), like.dtype)
    leaves = []  # (depth, leaf): traced values and the parts with none inside, in order

    def walk(x, depth):
        if isinstance(x, (list, tuple)) and _contains_proxy(x):
            for e in x:
                walk(e, depth + 1)
        else:
            leaves.append((depth, x))

    walk(obj, 0)
    inner = natural.shape[max(d for d, _ in leaves):]
    parts = []
    for _, x in leaves:  # each as rows of the innermost shape, then one concatenate
        if isinstance(x, Proxy):
            x = x if x.dtype == like.dtype and not x.node.weak else x.astype(like.dtype)
        else:
            x = _np_array(x, dtype=like.dtype)
        parts.append(reshape(x, (-1,) + inner))
    return reshape(concatenate(parts), like.shape)


def _array_of_traced(original, x, dtype=None, copy=True, order="K", subok=False, ndmin=0,
                     **kwargs):
    """np.array(x) of a traced array is a copy, np.asarray(x) is x itself (a copy only for
    another dtype), as NumPy's: writes through the result reach x exactly when eager NumPy's do."""
    if kwargs or subok or ndmin and original is not _np_array \
            or order not in ("K", "A", "C", None):
        return original(x, dtype, order=order, **kwargs)  # NumPy's refusal names the call
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    if original is _np_array and copy is False and dtype != x.dtype:
        raise with_location(ValueError, "Unable to avoid copy while creating an array as "
                            "requested.")
    copies = dtype != x.dtype or (original is _np_array and copy is True)
    x = x.astype(dtype) if copies else x
    if x.ndim < ndmin:
        x = _view("reshape", x, shape=(1,) * (ndmin - x.ndim) + x.shape)
    return x


def _array_record(original):
    def record(obj, *args, **kwargs):
        if isinstance(obj, Proxy) and not obj.node.weak:
            kwargs.update(zip(("dtype", "copy", "order", "subok", "ndmin")
                              if original is _np_array else ("dtype", "order"), args))
            return _array_of_traced(original, obj, **kwargs)
        if not isinstance(obj, (list, tuple)) or not _contains_proxy(obj):
            return original(obj, *args, **kwargs)
        kwargs.update(zip(("dtype",) if original is _np_array else ("dtype", "order"), args))
        if kwargs.pop("subok", False) or kwargs.get("order", "K") not in ("K", "A", "C", None):
            return original(obj, **kwargs)  # NumPy's refusal to convert a traced value
        kwargs.pop("order", None)
        return _from_nested(obj, **kwargs)
    return record


patches.wrap(np, "array", _array_record(_np_array))
patches.wrap(np, "asarray", _array_record(_np_asarray))
patches.wrap(np, "asanyarray", _array_record(np.asanyarray))


def _contiguous_record(original):
    def record(a, dtype=None, **kwargs):
        if not isinstance(a, Proxy) or a.node.weak or kwargs:
            return original(a, dtype, **kwargs)
        if not is_c_contiguous(a):
            a = a.copy()  # NumPy copies a view whose strides are not C-ordered
        a = _array_of_traced(_np_asarray, a, dtype)
        return a if a.ndim else _view("reshape", a, shape=(1,))
    return record


patches.wrap(np, "ascontiguousarray", _contiguous_record(np.ascontiguousarray))


def _sequence_record(name):
    """np.stack([[c, -s], [s, c]]) and friends: NumPy dispatches on the arrays in the sequence,
    so traced values inside nested lists reach the handler only through this wrapper."""
    original, handler = getattr(np, name), FUNCTIONS[getattr(np, name)]

    def record(arrays, *args, **kwargs):
        if isinstance(arrays, (list, tuple)) and any(
                not isinstance(a, Proxy) and _contains_proxy(a) for a in arrays):
            return handler(arrays, *args, **kwargs)
        return original(arrays, *args, **kwargs)

    patches.wrap(np, name, record)


def _eye_record(name):
    """np.eye and np.identity called from traced code: a traced constant, so a traced index can
    gather from it (`np.eye(k)[labels]`) and the function can write into it."""
    original = getattr(np, name)

    def make(*args, **kwargs):
        if any(isinstance(v, Proxy) for v in (*args, *kwargs.values())):
            return original(*args, **kwargs)  # a traced size: NumPy's refusal names it
        value = original(*args, **kwargs)
        trace = current_trace()
        if value.dtype.kind not in SUPPORTED_KINDS or trace is None:
            return value
        return Proxy(const_node(value), trace)

    patches.wrap(np, name, make)


_eye_record("eye")
_eye_record("identity")
for _name in ("stack", "hstack", "vstack", "concatenate"):
    _sequence_record(_name)
del _name


@implements(np.zeros_like)
def zeros_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(a, dtype, shape, 0)


# np.empty_like returns zeros here: its contents are unspecified, and zeros keep runs
# deterministic.
@implements(np.empty_like)
def empty_like(prototype, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(prototype, dtype, shape, 0)


@implements(np.ones_like)
def ones_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(a, dtype, shape, 1)


@implements(np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(a, dtype, shape, fill_value)


@implements(np.rot90)
def rot90(m, k=1, axes=(0, 1)):
    axes = tuple(_static_ints(axes, "axes"))
    ndim = len(shape_of(m))
    if len(axes) != 2:
        raise with_location(ValueError, "len(axes) must be 2.")
    if axes[0] == axes[1] or abs(axes[0] - axes[1]) == ndim:
        raise with_location(ValueError, "Axes must be different.")
    if not all(-ndim <= ax < ndim for ax in axes):
        raise with_location(ValueError, f"Axes={axes} out of range for array of ndim={ndim}.")
    k = _static_int(k, "np.rot90's k") % 4
    if k == 0:
        return getitem(m, (slice(None),))
    if k == 2:
        return flip(flip(m, axes[0]), axes[1])
    order = list(range(ndim))
    order[axes[0]], order[axes[1]] = order[axes[1]], order[axes[0]]
    if k == 1:
        return transpose(flip(m, axes[1]), order)
    return flip(transpose(m, order), axes[1])


def _as_pairs(value, ndim, what, static=True):
    """np.pad's per-axis (before, after) pairs from a scalar, a pair or one pair per axis."""
    if isinstance(value, Proxy):
        if static or value.shape:
            raise with_location(UnsupportedError, f"np.pad's {what} must be known while "
                                "tracing")
        return [(value, value)] * ndim
    pairs = np.broadcast_to(np.asarray(value, dtype=object), (ndim, 2)).tolist()
    if static:
        pairs = [tuple(_static_int(v, f"np.pad's {what}") for v in p) for p in pairs]
        if any(v < 0 for p in pairs for v in p):
            raise with_location(ValueError, "index can't contain negative values")
    return pairs


def _pad_side(x, ax, width, at_start, mode, value):
    """The block np.pad puts before (at_start) or after x along axis ax, or None."""
    if not width:
        return None
    shape = tuple(shape_of(x))
    n = shape[ax]
    edge = shape[:ax] + (width,) + shape[ax + 1:]
    if mode == "constant":
        return _like(x, None, edge, value)
    if n == 0:
        raise with_location(ValueError, f"can't extend empty axis {ax} using modes other than "
                            "'constant' or 'empty'")

    def part(start, stop, step=None):
        return getitem(x, (slice(None),) * ax + (slice(start, stop, step),))

    if mode == "edge":
        return broadcast_to(part(0, 1) if at_start else part(n - 1, n), edge)
    if width > (n - 1 if mode == "reflect" else n):
        raise with_location(UnsupportedError, f"np.pad mode={mode!r} wider than the axis it "
                            "repeats is not supported in traced code")
    if mode == "wrap":
        return part(n - width, n) if at_start else part(0, width)
    skip = 1 if mode == "reflect" else 0  # reflect leaves out the edge value, symmetric not
    if at_start:
        return part(width - 1 + skip, skip - 1 if skip else None, -1)
    stop = n - 1 - skip - width
    return part(n - 1 - skip, stop if stop >= 0 else None, -1)


@implements(np.pad)
def pad(array, pad_width, mode="constant", **kwargs):
    # each axis in turn, as NumPy pads: the corners come from the axes padded last
    shape = tuple(shape_of(array))
    ndim = len(shape)
    widths = _as_pairs(pad_width, ndim, "pad_width")
    known = {"constant": {"constant_values"}, "edge": set(), "wrap": set(),
             "reflect": {"reflect_type"}, "symmetric": {"reflect_type"}}
    if mode not in known or set(kwargs) - known[mode] or kwargs.get("reflect_type",
                                                                     "even") != "even":
        raise with_location(UnsupportedError, f"np.pad with mode={mode!r} and {sorted(kwargs)} "
                            "is not supported in traced code (constant, edge, wrap, reflect and "
                            "symmetric are)")
    values = _as_pairs(kwargs.get("constant_values", 0), ndim, "constant_values", static=False)
    x = array if isinstance(array, Proxy) else np.asarray(array)
    for ax, (before, after) in enumerate(widths):
        parts = [_pad_side(x, ax, before, True, mode, values[ax][0]), x,
                 _pad_side(x, ax, after, False, mode, values[ax][1])]
        parts = [p for p in parts if p is not None]
        if len(parts) > 1:
            x = concatenate(parts, axis=ax)
    return x if x is not array else x.copy()


@implements(np.insert)
def insert(arr, obj, values, axis=None):
    # one position (a static int): the values, cast to arr's dtype and broadcast, between
    # arr[:obj] and arr[obj:] along the axis
    if isinstance(obj, (slice, tuple, list, np.ndarray, Proxy)):
        raise with_location(UnsupportedError, "np.insert at several positions is not supported "
                            "in traced code; insert at one int position")
    arr = arr if isinstance(arr, Proxy) else np.asarray(arr)
    if axis is None:
        arr, axis = ravel(arr), 0
    shape = tuple(shape_of(arr))
    axis = normalize_axis(_static_int(axis, "axis"), len(shape))
    n = shape[axis]
    index = _static_int(obj, "np.insert's index")
    if not -n <= index <= n:
        raise with_location(IndexError, f"index {obj} is out of bounds for axis {axis} with "
                            f"size {n}")
    index = index + n if index < 0 else index
    if isinstance(values, Proxy):
        values = values.astype(arr.dtype)
    else:
        values = np.array(values, dtype=arr.dtype)
    values = reshape(values, (1,) * (len(shape) - len(shape_of(values))) + tuple(shape_of(values)))
    values = moveaxis(values, 0, axis)
    new = shape_of(values)[axis]
    values = broadcast_to(values, shape[:axis] + (new,) + shape[axis + 1:])
    lead = (slice(None),) * axis
    return concatenate([getitem(arr, lead + (slice(None, index),)), values,
                        getitem(arr, lead + (slice(index, None),))], axis=axis)


@implements(np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    # NumPy's components, in the promoted dtype
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = (v if isinstance(v, Proxy) else np.asarray(v) for v in (a, b))
    if not len(shape_of(a)) or not len(shape_of(b)):
        raise with_location(ValueError, "At least one array has zero dimension")
    a = moveaxis(a, normalize_axis(_static_int(axisa, "axisa"), len(shape_of(a))), -1)
    b = moveaxis(b, normalize_axis(_static_int(axisb, "axisb"), len(shape_of(b))), -1)
    na, nb = shape_of(a)[-1], shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise with_location(ValueError, "incompatible dimensions for cross product\n"
                            "(dimension must be 2 or 3)")
    dtype = np.promote_types(a.dtype, b.dtype)
    a, b = a.astype(dtype), b.astype(dtype)
    ai = [getitem(a, (Ellipsis, i)) for i in range(na)]
    bi = [getitem(b, (Ellipsis, i)) for i in range(nb)]
    if na == 2 and nb == 2:
        return ai[0] * bi[1] - ai[1] * bi[0]
    if na == 2:
        cp = [ai[1] * bi[2], -(ai[0] * bi[2]), ai[0] * bi[1] - ai[1] * bi[0]]
    elif nb == 2:
        cp = [-(ai[2] * bi[1]), ai[2] * bi[0], ai[0] * bi[1] - ai[1] * bi[0]]
    else:
        cp = [ai[1] * bi[2] - ai[2] * bi[1], ai[2] * bi[0] - ai[0] * bi[2],
              ai[0] * bi[1] - ai[1] * bi[0]]
    shape = np.broadcast_shapes(*(shape_of(c) for c in cp))
    cp = [c if tuple(shape_of(c)) == shape else broadcast_to(c, shape) for c in cp]
    axisc = normalize_axis(_static_int(axisc, "axisc"), len(shape) + 1)
    return stack(cp, axis=axisc)


@implements(np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    # gathered (a copy; NumPy returns a read-only view)
    ndim = len(shape_of(a))
    if ndim < 2:
        raise with_location(ValueError, "diag requires an array of at least two dimensions")
    ax1, ax2 = normalize_axis(axis1, ndim), normalize_axis(axis2, ndim)
    if ax1 == ax2:
        raise with_location(ValueError, "axis1 and axis2 cannot be the same")
    a = moveaxis(a, (ax1, ax2), (-2, -1))
    rows, cols = shape_of(a)[-2:]
    offset = _static_int(offset, "the diagonal's offset")
    n = max(0, min(rows + min(offset, 0), cols - max(offset, 0)))
    i = np.arange(n)
    return getitem(a, (Ellipsis, i - min(offset, 0), i + max(offset, 0)))


@implements(np.diag)
def diag(v, k=0):
    shape = tuple(shape_of(v))
    k = _static_int(k, "np.diag's k")
    if len(shape) == 2:
        return diagonal(v, k)
    if len(shape) != 1:
        raise with_location(ValueError, "Input must be 1- or 2-d.")
    # a matrix with v on the k-th diagonal: v along the columns where np.eye(.., k) holds
    n = shape[0] + abs(k)
    zeros = np.zeros(abs(k), dtype=v.dtype)
    row = concatenate([zeros, v] if k > 0 else [v, zeros]) if k else v
    return where_(np.eye(n, k=k, dtype=bool), getitem(row, (None, slice(None))),
                  np.zeros(1, v.dtype))


# ---------------------------------------------------------------------------------------------
# matmul (np.matmul and `@` arrive as the ufunc np.matmul through __array_ufunc__)

@implements(np.dot)
def dot(a, b, out=None):
    if out is not None:
        return _into_out("dot", dot(a, b), out)
    na, nb = len(shape_of(a)), len(shape_of(b))
    if na == 0 or nb == 0:
        return call_ufunc(np.multiply, a, b)
    if na > 2 or nb > 2:
        raise with_location(UnsupportedError, "np.dot of arrays with more than 2 dimensions is "
                            "not supported; use np.matmul (@) for stacks of matrices")
    return call_ufunc(np.matmul, a, b)


@implements(np.inner)
def inner(a, b):
    na, nb = len(shape_of(a)), len(shape_of(b))
    if na == 0 or nb == 0:
        return call_ufunc(np.multiply, a, b)
    if na > 2 or nb > 2:
        raise with_location(UnsupportedError, "np.inner of arrays with more than 2 dimensions "
                            "is not supported")
    return call_ufunc(np.matmul, a, transpose(b) if nb == 2 else b)


@implements(np.vdot)
def vdot(a, b):
    return call_ufunc(np.matmul, ravel(a), ravel(b))


@implements(np.einsum)
def einsum(subscripts, *operands, out=None, optimize=False, dtype=None, order="K",
           casting="safe"):
    """Contractions one pair of operands at a time: the labels of each pair are sorted into
    batch, kept and contracted ones; a product of matrices runs as NumPy's matmul (BLAS) on
    the operands transposed and reshaped to stacks of matrices, the memory-bound forms as a
    multiply and sum that fuse into one kernel (see _contract). Sums over labels
    that appear in one operand only come first. Ellipses, repeated labels within one operand
    (diagonals, traces) and out=/dtype= are not supported."""
    if not isinstance(subscripts, str):
        raise with_location(UnsupportedError, "np.einsum's interleaved form (operand, "
                            "sublist, ...) is not supported; use a subscripts string")
    if out is not None or dtype is not None:
        raise with_location(UnsupportedError, "np.einsum with out= or dtype= is not supported "
                            "in traced code")
    inputs, arrow, output = subscripts.replace(" ", "").partition("->")
    if "." in subscripts:
        raise with_location(UnsupportedError, "np.einsum with an ellipsis ('...') is not "
                            "supported in traced code")
    terms = inputs.split(",")
    if not all(c.isascii() and c.isalpha() for c in inputs.replace(",", "") + output):
        raise with_location(ValueError, f"invalid subscripts {subscripts!r}: use letters")
    if len(terms) != len(operands):
        raise with_location(ValueError, f"np.einsum: {len(terms)} subscript terms for "
                            f"{len(operands)} operands")
    if not arrow:  # implicit output: the labels seen once, in alphabetical order
        output = "".join(sorted(c for c in set(inputs) - {","} if inputs.count(c) == 1))
    operands = [x if isinstance(x, Proxy) else np.asarray(x) for x in operands]
    sizes = {}
    for term, x in zip(terms, operands):
        shape = tuple(shape_of(x))
        if len(term) != len(shape):
            raise with_location(ShapeError, f"np.einsum: subscripts {term!r} for an operand of "
                                f"shape {shape}")
        if len(set(term)) != len(term):
            raise with_location(UnsupportedError, f"np.einsum: the repeated label in {term!r} "
                                "(a diagonal or trace) is not supported in traced code")
        for c, n in zip(term, shape):
            if sizes.get(c, 1) == 1:
                sizes[c] = n
            elif n not in (1, sizes[c]):
                raise with_location(ShapeError, f"np.einsum: label {c!r} has sizes "
                                    f"{sizes[c]} and {n}")
    if len(set(output)) != len(output) or not set(output) <= set(sizes):
        raise with_location(ValueError, f"np.einsum: bad output subscripts {output!r}")
    result, labels = operands[0], terms[0]
    for k in range(1, len(terms)):
        needed = set(output).union(*terms[k + 1:])
        result, labels = _contract(result, labels, operands[k], terms[k], needed, sizes)
    result, labels = _sum_out(result, labels, set(output))
    result = _arrange(result, labels, output, sizes)
    return _scalar(result)


def _sum_out(x, labels, keep):
    """Sum x over the labels not in `keep` (in its own dtype, as einsum does)."""
    axes = tuple(d for d, c in enumerate(labels) if c not in keep)
    if not axes:
        return x, labels
    return (apply("sum", [x], axis=axes, keepdims=False, dtype=x.dtype),
            "".join(c for c in labels if c in keep))


def _arrange(x, labels, order, sizes):
    """x with its axes in `order` and its unit dimensions broadcast to the labels' sizes."""
    if labels != order:
        x = transpose(x, [labels.index(c) for c in order])
    full = tuple(sizes[c] for c in order)
    return x if tuple(shape_of(x)) == full else broadcast_to(x, full)


def _contract(a, la, b, lb, needed, sizes):
    """The einsum of two operands keeping the labels in `needed`: one (batched) matmul for a
    product of matrices (each operand keeps a label of its own and they share a contracted
    one: bound by arithmetic, BLAS wins); otherwise (dot products, matrix-vector and outer
    products: bound by memory) a broadcast multiply summed over the contracted labels, which
    fusion makes one kernel reading each operand once in memory order. (BLAS's dot can be
    faster on an idle machine, but its threads wait for each other on a busy one: 0.26 to
    16 ms for 1M float64 measured minutes apart, where the kernel stayed at 0.6-0.7 ms.)"""
    a, la = _sum_out(a, la, needed | set(lb))
    b, lb = _sum_out(b, lb, needed | set(la))
    batch = [c for c in la if c in lb and c in needed]
    inner = [c for c in la if c in lb and c not in needed]
    left = [c for c in la if c not in lb]
    right = [c for c in lb if c not in la]
    if not (left and right and inner):
        return _multiply_sum(a, la, b, lb, needed)

    def size(cs):
        return int(np.prod([sizes[c] for c in cs], dtype=np.int64))

    lead = tuple(sizes[c] for c in batch)
    a = reshape(_arrange(a, la, "".join(batch + left + inner), sizes),
                lead + (size(left), size(inner)))
    b = reshape(_arrange(b, lb, "".join(batch + inner + right), sizes),
                lead + (size(inner), size(right)))
    product = call_ufunc(np.matmul, a, b)
    shape = lead + tuple(sizes[c] for c in left + right)
    return reshape(product, shape), "".join(batch + left + right)


def _multiply_sum(a, la, b, lb, needed):
    """sum(a * b) over the labels not in `needed`, broadcasting on the labels of the larger
    operand (kept in its own axis order, so it is never transposed) then the other's."""
    if np.prod(shape_of(b), dtype=np.int64) > np.prod(shape_of(a), dtype=np.int64):
        a, la, b, lb = b, lb, a, la
    order = la + "".join(c for c in lb if c not in la)
    if len(order) > len(la):
        a = reshape(a, tuple(shape_of(a)) + (1,) * (len(order) - len(la)))
    b_order = "".join(c for c in order if c in lb)
    if b_order != lb:
        b = transpose(b, [lb.index(c) for c in b_order])
    dims = iter(shape_of(b))  # its own sizes: a unit dimension broadcasts
    b = reshape(b, tuple(next(dims) if c in lb else 1 for c in order))
    return _sum_out(call_ufunc(np.multiply, a, b), order, needed)


@implements(np.outer)
def outer(a, b, out=None):
    if out is not None:
        raise with_location(UnsupportedError, "np.outer(..., out=...) is not supported")
    return call_ufunc(np.multiply, reshape(a, (-1, 1)), ravel(b))


# ---------------------------------------------------------------------------------------------
# more functions benchmark-style kernels use

def ufunc_outer(ufunc, a, b, **kwargs):
    """np.add.outer(a, b) and friends: the ufunc on a with b's axes appended (a broadcast)."""
    if ufunc.nin != 2 or ufunc not in UFUNC_OPS:
        raise with_location(UnsupportedError, f"np.{ufunc.__name__}.outer is not supported in "
                            "traced code")
    a = a if isinstance(a, Proxy) else np.asarray(a)
    return call_ufunc(ufunc, reshape(a, tuple(shape_of(a)) + (1,) * len(shape_of(b))), b,
                      **kwargs)


@implements(np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *,
             device=None):
    """NumPy's formula (start + arange(num) * step, the last point exactly `stop`) for traced
    scalar end points."""
    num = _static_int(num, "linspace's num")
    if num < 0:
        raise with_location(ValueError, f"Number of samples, {num}, must be non-negative.")
    if len(shape_of(start)) or len(shape_of(stop)) or (
            dtype is not None and np.dtype(dtype).kind != "f"):
        raise with_location(UnsupportedError, "np.linspace with array end points or a "
                            "non-float dtype is not supported in traced code")
    div = num - 1 if endpoint else num
    result_dtype = result_type(start, stop, float(num))
    start = _as_dtype(start, result_dtype)
    delta = call_ufunc(np.subtract, _as_dtype(stop, result_dtype), start)
    steps = np.arange(0, num, dtype=result_dtype)
    if div > 0:
        step = call_ufunc(np.true_divide, delta, div)
        y = call_ufunc(np.add, call_ufunc(np.multiply, steps, step), start)
    else:  # one point: NumPy's step is nan
        step = call_ufunc(np.multiply, delta, np.nan)
        y = call_ufunc(np.add, call_ufunc(np.multiply, steps, delta), start)
    if endpoint and num > 1:
        y = concatenate([getitem(y, slice(0, -1)), reshape(_as_dtype(stop, y.dtype), (1,))])
    y = y if dtype is None else y.astype(dtype)
    return (y, step) if retstep else y


def _as_dtype(x, dtype):
    return apply("astype", [x], dtype=dtype) if isinstance(x, Proxy) else np.asarray(x, dtype)


def _into_out(name, result, out, casting="same_kind"):
    """`out=` of a NumPy function that is no ufunc (np.dot, np.clip, np.cumsum): the result
    written into out, which must be traced and of the result's shape, cast by `casting`."""
    out = out[0] if isinstance(out, tuple) and len(out) == 1 else out
    if not isinstance(out, Proxy):
        raise with_location(TraceError, f"np.{name}(..., out=...) into an array that is not "
                            "traced is not supported yet")
    if tuple(out.shape) != tuple(shape_of(result)):
        raise with_location(ValueError, f"output array of shape {tuple(out.shape)} does not "
                            f"match the result's shape {tuple(shape_of(result))}")
    if name == "dot" and out.dtype != result.dtype:
        raise with_location(ValueError, "output array is not acceptable (must have the right "
                            "datatype, number of dimensions, and be a C-Array)")
    if not np.can_cast(result.dtype, out.dtype, casting):  # NumPy's own TypeError
        np.copyto(np.zeros((), out.dtype), np.zeros((), result.dtype), casting=casting)
    write(out, None, result)
    return out


@implements(np.fill_diagonal)
def fill_diagonal(a, val, wrap=False):
    """Writes val along the main diagonal (all axes of equal length, or a 2-d array)."""
    if not isinstance(a, Proxy):
        raise with_location(TraceError, "np.fill_diagonal into an array that is not traced is "
                            "not supported yet")
    shape = tuple(shape_of(a))
    if len(shape) < 2 or len(shape) > 2 and len(set(shape)) != 1:
        raise with_location(ValueError, "All dimensions of input must be of equal length"
                            if len(shape) > 2 else "array must be at least 2-d")
    if len(shape) == 2 and shape[0] > shape[1] + 1 and wrap:
        raise with_location(UnsupportedError, "np.fill_diagonal(..., wrap=True) of a tall "
                            "array is not supported in traced code")
    i = np.arange(min(shape))
    n_val = int(np.prod(shape_of(val)))
    if len(shape_of(val)) and n_val != len(i):  # NumPy repeats val along the diagonal
        val = getitem(ravel(val), np.arange(len(i)) % n_val) if n_val else val
    elif len(shape_of(val)):
        val = ravel(val)
    assign(a, (i,) * len(shape), val)


@implements(np.putmask)
def putmask(a, mask, values):
    """a[mask] = values with values a scalar or of a's shape (NumPy takes values.flat[i] where
    mask.flat[i]); a traced mask gives a `where`."""
    if tuple(shape_of(mask)) != tuple(shape_of(a)):
        raise with_location(ValueError, "putmask: mask and data must be the same size")
    vshape = tuple(shape_of(values))
    if vshape and vshape != tuple(shape_of(a)):
        raise with_location(UnsupportedError, "np.putmask with values neither a scalar nor of "
                            "the array's shape is not supported in traced code")
    if not isinstance(a, Proxy):
        raise with_location(TraceError, "np.putmask into an array that is not traced is not "
                            "supported yet")
    copyto(a, values, casting="unsafe", where=mask)


@implements(np.put)
def put(a, ind, v, mode="raise"):
    """a.flat[ind] = v: an assignment through the flattened array (a view of it)."""
    if mode != "raise":
        raise with_location(UnsupportedError, f"np.put(..., mode={mode!r}) is not supported "
                            "in traced code")
    if not isinstance(a, Proxy):
        raise with_location(TraceError, "np.put into an array that is not traced is not "
                            "supported yet")
    flat = _view("reshape", a, shape=(int(np.prod(a.shape)),))
    idx = _index_array(ind)
    if len(shape_of(v)) and tuple(shape_of(v)) != tuple(shape_of(idx)):
        raise with_location(UnsupportedError, "np.put with values neither a scalar nor of the "
                            "indices' shape is not supported in traced code")
    assign(flat, (idx,), v)


@implements(np.tensordot)
def tensordot(a, b, axes=2):
    """The contracted axes moved to a's end and b's front, then one matmul of 2-d views."""
    na, nb = len(shape_of(a)), len(shape_of(b))
    if isinstance(axes, (int, np.integer)):
        axes_a, axes_b = list(range(na - int(axes), na)), list(range(int(axes)))
    else:
        axes_a, axes_b = ([x] if isinstance(x, (int, np.integer)) else list(x) for x in axes)
    axes_a = [normalize_axis(int(x), na) for x in axes_a]
    axes_b = [normalize_axis(int(x), nb) for x in axes_b]
    sa, sb = tuple(shape_of(a)), tuple(shape_of(b))
    if len(axes_a) != len(axes_b) or any(sa[i] != sb[j] for i, j in zip(axes_a, axes_b)):
        raise with_location(ValueError, "shape-mismatch for sum")
    free_a = [i for i in range(na) if i not in axes_a]
    free_b = [j for j in range(nb) if j not in axes_b]
    k = int(np.prod([sa[i] for i in axes_a], dtype=np.int64))
    a2 = reshape(transpose(a, free_a + axes_a), (-1, k))
    b2 = reshape(transpose(b, axes_b + free_b), (k, -1))
    return reshape(call_ufunc(np.matmul, a2, b2),
                   tuple(sa[i] for i in free_a) + tuple(sb[j] for j in free_b))


@implements(np.trace)
def trace_(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    if out is not None:
        raise with_location(UnsupportedError, "np.trace(..., out=...) is not supported")
    return sum_(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


@implements(np.append)
def append(arr, values, axis=None):
    arr, values = _arrays([arr, values], "append")
    if axis is None:
        return concatenate([ravel(arr), ravel(values)])
    return concatenate([arr, values], axis=axis)


@implements(np.column_stack)
def column_stack(tup):
    arrays = _arrays(tup, "column_stack")
    return concatenate([reshape(a, (-1, 1)) if len(shape_of(a)) < 2 else a for a in arrays],
                       axis=1)


@implements(np.sort)
def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    return _sorting("sort", a, axis, kind, order, stable)


@implements(np.argsort)
def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    return _sorting("argsort", a, axis, kind, order, stable)


def _sorting(op, a, axis, kind, order, stable):
    """NumPy's own sort on the host: axis=None sorts the flattened array."""
    if order is not None:
        raise with_location(UnsupportedError, f"np.{op}(..., order=...) is not supported in "
                            "traced code")
    if stable:
        kind = "stable"
    if axis is None:
        a, axis = ravel(a), -1
    if not len(shape_of(a)):
        raise with_location(np.exceptions.AxisError, f"axis {axis} is out of bounds for array "
                            "of dimension 0")
    axis = normalize_axis(_static_int(axis, "axis"), len(shape_of(a)))
    return apply(op, [a], axis=axis, kind=kind)


def _square(a, what):
    shape = tuple(shape_of(a))
    if len(shape) < 2:
        raise with_location(np.linalg.LinAlgError, f"{len(shape)}-dimensional array given. "
                            "Array must be at least two-dimensional")
    if shape[-1] != shape[-2]:
        raise with_location(np.linalg.LinAlgError, "Last 2 dimensions of the array must be "
                            "square")


@implements(np.linalg.solve)
def solve(a, b):
    _square(a, "solve")
    na, nb = len(shape_of(a)), len(shape_of(b))
    if not (na == 2 and nb in (1, 2) or nb == na and shape_of(a)[:-2] == shape_of(b)[:-2]):
        raise with_location(UnsupportedError, "np.linalg.solve with broadcast batch dimensions "
                            "is not supported in traced code")
    if shape_of(b)[-1 if nb == 1 else -2] != shape_of(a)[-1]:
        raise with_location(ValueError, "solve: Input operand 1 has a mismatch in its core "
                            "dimension 0")
    return apply("solve", [a, b])


@implements(np.linalg.inv)
def inv(a):
    _square(a, "inv")
    return apply("inv", [a])


@implements(np.linalg.det)
def det(a):
    _square(a, "det")
    return apply("det", [a])


@implements(np.take_along_axis)
def take_along_axis(arr, indices, axis=-1):
    """arr[..., indices, ...] with the other axes indexed by aranges that broadcast against
    indices: one gather."""
    shape, ishape = tuple(shape_of(arr)), tuple(shape_of(indices))
    if axis is None:
        return take_along_axis(ravel(arr), indices, 0)
    if len(ishape) != len(shape):
        raise with_location(ValueError, "`indices` and `arr` must have the same number of "
                            "dimensions")
    axis = normalize_axis(_static_int(axis, "axis"), len(shape))
    key = tuple(indices if d == axis else np.arange(n).reshape(
        (1,) * d + (n,) + (1,) * (len(shape) - d - 1)) for d, n in enumerate(shape))
    return getitem(arr, key)


@implements(np.unravel_index)
def unravel_index(indices, shape, order="C"):
    if order != "C":
        raise with_location(UnsupportedError, "np.unravel_index supports order='C' only")
    dims = _static_ints(shape, "a shape entry")
    out, stride = [], 1
    for n in reversed(dims):
        out.append(call_ufunc(np.remainder, call_ufunc(np.floor_divide, indices, stride), n))
        stride *= n
    return tuple(reversed(out))


@implements(np.kron)
def kron(a, b):
    """Every product a[i] * b[j] laid out blockwise (arrays of up to two dimensions)."""
    na, nb = len(shape_of(a)), len(shape_of(b))
    if na != nb or na not in (1, 2):
        raise with_location(UnsupportedError, "np.kron of arrays with different or more than "
                            "two dimensions is not supported in traced code")
    sa, sb = tuple(shape_of(a)), tuple(shape_of(b))
    if na == 1:
        return ravel(ufunc_outer(np.multiply, a, b))
    product = call_ufunc(np.multiply, reshape(a, (sa[0], 1, sa[1], 1)),
                         reshape(b, (1, sb[0], 1, sb[1])))
    return reshape(product, (sa[0] * sb[0], sa[1] * sb[1]))


@implements(np.median)
def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """The mean of the middle values of the sorted array, nan where the slice holds a nan (it
    sorts last), as NumPy's."""
    if out is not None:
        raise with_location(UnsupportedError, "np.median(..., out=...) is not supported")
    shape_kept = (1,) * len(shape_of(a)) if axis is None else None
    if axis is None:
        a, axis = ravel(a), 0
    if isinstance(axis, (tuple, list)):
        raise with_location(UnsupportedError, "np.median over several axes is not supported "
                            "in traced code")
    axis = normalize_axis(_static_int(axis, "axis"), len(shape_of(a)))
    n = shape_of(a)[axis]
    if n == 0:
        raise with_location(UnsupportedError, "np.median of an empty axis is not supported in "
                            "traced code")
    s = moveaxis(sort(a, axis), axis, -1)
    mid = getitem(s, (Ellipsis, slice((n - 1) // 2, n // 2 + 1)))
    result = mean(mid, axis=-1, keepdims=False)
    if s.dtype.kind == "f":
        result = where_(call_ufunc(np.isnan, getitem(s, (Ellipsis, -1))),
                        _as_dtype(np.nan, result.dtype), result)
    if keepdims:
        result = reshape(expand_dims(result, axis), shape_kept) if shape_kept else \
            expand_dims(result, axis)
    return _scalar(result)


def _indices_from(name):
    original = getattr(np, name.replace("_from", ""))

    def handler(arr, k=0):
        shape = tuple(shape_of(arr))
        if name == "diag_indices_from":
            if len(shape) < 2 or len(set(shape)) != 1:
                raise with_location(ValueError, "All dimensions of input must be of equal "
                                    "length" if len(shape) >= 2 else
                                    "input array must be at least 2-d")
            return original(shape[0], len(shape))
        if len(shape) != 2:
            raise with_location(ValueError, "input array must be 2-d")
        return original(shape[0], k, shape[1])
    return implements(getattr(np, name))(handler)


for _name in ("diag_indices_from", "triu_indices_from", "tril_indices_from"):
    _indices_from(_name)
del _name


@implements(np.real)
def real(val):
    return val.real


@implements(np.imag)
def imag(val):
    return val.imag


@implements(np.searchsorted)
def searchsorted(a, v, side="left", sorter=None):
    if sorter is not None or side not in ("left", "right"):
        raise with_location(UnsupportedError, "np.searchsorted with sorter= is not supported "
                            "in traced code" if sorter is not None else
                            f"side must be 'left' or 'right' (got {side!r})")
    if len(shape_of(a)) != 1:
        raise with_location(ValueError, "object too deep for desired array")
    return _scalar(apply("searchsorted", [a, v], side=side))


@implements(np.interp)
def interp(x, xp, fp, left=None, right=None, period=None):
    """NumPy's own piecewise-linear interpolation on the host."""
    if left is not None or right is not None or period is not None:
        raise with_location(UnsupportedError, "np.interp with left=, right= or period= is not "
                            "supported in traced code")
    if len(shape_of(xp)) != 1 or tuple(shape_of(xp)) != tuple(shape_of(fp)):
        raise with_location(ValueError, "fp and xp are not of the same length." if len(
            shape_of(xp)) == 1 else "object too deep for desired array")
    if not shape_of(xp)[0]:
        raise with_location(ValueError, "array of sample points is empty")
    return _scalar(apply("interp", [x, xp, fp]))


@implements(np.histogram)
def histogram(a, bins=10, range=None, density=None, weights=None):
    """Counts (or summed weights) over `bins` equal bins, with NumPy's edges: the counts and
    the edges are two host steps of NumPy's own np.histogram."""
    if not isinstance(bins, (int, np.integer)) or isinstance(bins, bool) or density:
        raise with_location(UnsupportedError, "np.histogram with bin edges, a bin rule or "
                            "density=True is not supported in traced code; give the number "
                            "of bins")
    if range is not None:
        range = tuple(float(_static_number(r)) for r in range)
    args = [a] if weights is None else [a, weights]
    if weights is not None and tuple(shape_of(weights)) != tuple(shape_of(a)):
        raise with_location(ValueError, "weights should have the same shape as a.")
    return tuple(apply("histogram", args, bins=int(bins), range=range, part=part)
                 for part in (0, 1))


def _static_number(x):
    if isinstance(x, Proxy):
        raise with_location(UnsupportedError, "np.histogram's range must be known while "
                            "tracing")
    return x


@implements(np.linalg.cholesky)
def cholesky(a, /, *, upper=False):
    _square(a, "cholesky")
    lower = apply("cholesky", [a])
    return matrix_transpose(lower) if upper else lower
