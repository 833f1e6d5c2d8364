"""NumPy functions that proxies understand, mapped onto the op table (`__array_function__`).

Each handler receives the same arguments as the NumPy function and records ops with `apply`.
A function missing here raises UnsupportedError when traced.
"""

import operator

import numpy as np

from .errors import ShapeError, UnsupportedError, with_location
from .ops import Index
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

def _view(op_name, a, **attrs):
    """Record a view of `a`. Both become `aliased`: they share memory, so an in-place update
    of one would have to reach the other, which tracing refuses."""
    result = apply(op_name, [a], **attrs)
    result.aliased = True
    if isinstance(a, Proxy):
        a.aliased = True
    return result


def _static_int(value, what):
    if isinstance(value, Proxy):
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
    key = key if isinstance(key, tuple) else (key,)
    arrays = [p for p, k in enumerate(key) if _is_index_array(k)]
    if len(arrays) > 1:
        raise with_location(UnsupportedError, "indexing with several index arrays is not "
                            "supported in traced code; index one axis at a time")
    if arrays:
        return _gather(a, key, arrays[0])
    index = _normalize_index(key, a.shape)
    if all(isinstance(e, int) for e in index):  # one element: a copy, as NumPy's scalar is
        return apply("getitem", [a], index=index)
    return _view("getitem", a, index=index)


def _gather(a, key, p):
    """x[..., idx, ...] with one integer index array: the basic index with a full slice in its
    place, then `take` along the axis that slice lands on. NumPy counts the integers of the key
    as index arrays too: when one is separated from the array by a slice, the gathered
    dimensions go first."""
    idx, shape = key[p], shape_of(a)
    if not isinstance(idx, Proxy):
        try:
            idx = np.asarray(idx)
        except ValueError:
            raise with_location(UnsupportedError, f"index {idx!r} is not an array of "
                                "integers") from None
    if idx.dtype.kind == "b":
        raise with_location(UnsupportedError, "boolean-mask indexing selects a data-dependent "
                            "number of elements, which tracing does not support; use np.where")
    if not any(k is Ellipsis for k in key):  # `is`: `in` would compare a proxy with ==
        key = key + (Ellipsis,)
    consumed = sum(k is not None and k is not Ellipsis for k in key)
    at = next(i for i, k in enumerate(key) if k is Ellipsis)
    fill = (slice(None),) * max(len(shape) - consumed, 0)
    key = key[:at] + fill + key[at + 1:]
    p = p if p < at else p + len(fill) - 1
    axis = sum(isinstance(k, slice) or k is None for k in key[:p])
    basic = _normalize_index(key[:p] + (slice(None),) + key[p + 1:], shape)
    whole = len(basic) == len(shape) and all(e == (0, n, 1) for e, n in zip(basic, shape))
    view = a if whole else _view("getitem", a, index=basic)
    result = apply("take", [view, idx], axis=axis)
    block = sorted([p] + [i for i, k in enumerate(key) if isinstance(k, (int, np.integer))])
    n = len(shape_of(idx))
    if n and block[-1] - block[0] + 1 != len(block):
        result = moveaxis(result, list(range(axis, axis + n)), list(range(n)))
    return result


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
        a.aliased = True  # a no-op view: the same value under a second name
        return Proxy(a.node, a._trace, aliased=True)
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
    arrays = [a if isinstance(a, Proxy) else np.asarray(a) for a in arrays]
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


def _like(prototype, dtype, shape, value):
    dtype = np.dtype(prototype.dtype if dtype is None else dtype)
    shape = tuple(shape_of(prototype)) if shape is None else _shape_arg(shape)
    if isinstance(value, Proxy):  # a traced fill value: copy it out across the shape
        return apply("astype", [apply("broadcast_to", [value], shape=shape)], dtype=dtype)
    value = np.array(value).astype(dtype).item()  # NumPy casts the fill value unsafely
    return apply("full", [], shape=shape, dtype=dtype, value=value)


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


# ---------------------------------------------------------------------------------------------
# matmul (np.matmul and `@` arrive as the ufunc np.matmul through __array_ufunc__)

@implements(np.dot)
def dot(a, b, out=None):
    if out is not None:
        raise with_location(UnsupportedError, "np.dot(..., out=...) is not supported")
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


@implements(np.outer)
def outer(a, b, out=None):
    if out is not None:
        raise with_location(UnsupportedError, "np.outer(..., out=...) is not supported")
    return call_ufunc(np.multiply, reshape(a, (-1, 1)), ravel(b))
