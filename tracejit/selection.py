"""Boolean-mask selections: `x[mask]` with a traced mask.

Its length depends on the mask's values, so it is no array while tracing: a Selection keeps the
pair (values, mask), values being x as it was when selected. What does not need the length is
exact: elementwise arithmetic with scalars and with selections through the same mask (or with
arrays broadcasting against the axes the mask leaves), the reductions whose result does not
depend on the order or number of the picked elements (sum, mean, prod, any, all,
count_nonzero), and assignment back through the same mask (`v[m] = -v[m]`, `x[m] += 1`, a
`where`). Anything else (its shape, indexing it, max of a possibly empty selection, returning
it) raises a TraceError naming the line, and the function falls back to eager NumPy.
"""

import operator

import numpy as np

from .errors import TraceError, UnsupportedError, with_location


def refuse(what, location=None):
    raise with_location(TraceError, f"{what} needs the length of x[mask], which depends on the "
                        "traced mask's values, unknown while tracing; use np.where(mask, ...) "
                        "instead", location)


class Selection:
    """x[mask] for a traced boolean mask of x's shape or of its leading axes."""

    __array_priority__ = 2000  # above the proxy's: `proxy + selection` asks the selection
    __hash__ = object.__hash__

    def __init__(self, values, mask):
        # snapshots (new proxies of the current values, no buffer): later writes into x or
        # the mask's array do not change this copy
        self.values = type(values)(values.node, values._trace)
        self.mask = type(mask)(mask.node, mask._trace)

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def ndim(self):
        return 1 + self.values.ndim - self.mask.ndim

    shape = property(lambda self: refuse("the shape"))
    size = property(lambda self: refuse("the size"))

    def __len__(self):
        refuse("len()")

    def __iter__(self):
        refuse("iteration")

    def __getitem__(self, key):
        refuse("indexing")

    def __setitem__(self, key, value):
        refuse("assignment into a copy")

    def __array__(self, *args, **kwargs):
        refuse("np.asarray()")

    def __bool__(self):
        refuse("bool()")

    __float__ = __int__ = __index__ = __bool__

    def __repr__(self):
        return f"Traced<selection of {self.values!r}>"

    def same_mask(self, mask):
        return same_value(self.mask.node, mask.node)

    def filled(self, fill):
        """x with the unselected elements replaced by `fill`: x's shape, known while tracing."""
        return np.where(self.broadcast_mask(), self.values, fill)

    def broadcast_mask(self):
        extra = self.values.ndim - self.mask.ndim
        return self.mask.reshape(self.mask.shape + (1,) * extra) if extra else self.mask

    # elementwise

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method == "reduce" and ufunc in _UFUNC_REDUCE and len(inputs) == 1:
            return _REDUCTIONS[_UFUNC_REDUCE[ufunc]](self, **kwargs)
        if method != "__call__" or "out" in kwargs:
            refuse(f"np.{ufunc.__name__}.{method}" if method != "__call__" else "out=")
        return self._elementwise(lambda *xs: ufunc(*xs, **kwargs), inputs)

    def __array_function__(self, func, types, args, kwargs):
        if func in _FUNCTIONS:
            return _FUNCTIONS[func](*args, **kwargs)
        if func in (np.where, np.clip):
            return self._elementwise(lambda *xs: func(*xs, **kwargs), args)
        refuse(f"np.{func.__name__}")

    def _elementwise(self, fn, operands):
        values = []
        for x in operands:
            if isinstance(x, Selection):
                if not self.same_mask(x.mask):
                    refuse("arithmetic between selections through different masks")
                values.append(x.values)
            elif np.ndim(x) > self.values.ndim - self.mask.ndim:
                # a whole array pairs with the selected elements only by their count
                refuse("arithmetic with an array")
            else:
                values.append(x)
        result = fn(*values)
        if tuple(result.shape[:self.mask.ndim]) != tuple(self.mask.shape):
            refuse("broadcasting")
        return Selection(result, self.mask)

    def astype(self, dtype, copy=True):
        return Selection(self.values.astype(dtype), self.mask)

    def copy(self):
        return self

    # reductions

    def sum(self, axis=None, dtype=None, keepdims=False, **kwargs):
        return _sum(self, axis, dtype, keepdims=keepdims, **kwargs)

    def mean(self, axis=None, dtype=None, keepdims=False, **kwargs):
        return _mean(self, axis, dtype, keepdims=keepdims, **kwargs)

    def prod(self, axis=None, dtype=None, keepdims=False, **kwargs):
        return _prod(self, axis, dtype, keepdims=keepdims, **kwargs)

    def any(self, axis=None, keepdims=False, **kwargs):
        return _any(self, axis, keepdims=keepdims, **kwargs)

    def all(self, axis=None, keepdims=False, **kwargs):
        return _all(self, axis, keepdims=keepdims, **kwargs)

    def max(self, *args, **kwargs):
        _extreme(self, "max")

    def min(self, *args, **kwargs):
        _extreme(self, "min")


def _install_operators():
    names = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
             "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power,
             "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}
    for name, uf in names.items():
        setattr(Selection, f"__{name}__", lambda s, o, uf=uf: uf(s, o))
        setattr(Selection, f"__r{name}__", lambda s, o, uf=uf: uf(o, s))
        setattr(Selection, f"__i{name}__", lambda s, o, uf=uf: _inplace(uf, s, o))
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        uf = getattr(np, {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal",
                          "gt": "greater", "ge": "greater_equal"}[name])
        setattr(Selection, f"__{name}__", lambda s, o, uf=uf: uf(s, o))
    for name, uf in {"neg": np.negative, "pos": np.positive, "abs": np.absolute,
                     "invert": np.invert}.items():
        setattr(Selection, f"__{name}__", lambda s, uf=uf: uf(s))


def _inplace(ufunc, sel, other):
    """`x[m] += v`: NumPy adds into the copy x[m] (its dtype, its casting rule), then Python
    assigns that copy back through the mask."""
    def dummy(x):
        return np.zeros(1, x.dtype) if hasattr(x, "dtype") else x
    ufunc(dummy(sel), dummy(other), out=np.zeros(1, sel.dtype))  # NumPy's own casting error
    result = ufunc(sel, other)
    return result if result.dtype == sel.dtype else result.astype(sel.dtype)


_install_operators()


# ---------------------------------------------------------------------------------------------
# reductions: the unselected elements filled with the reduction's identity

def _axes(sel, axis, keepdims):
    """The reduced axes of sel.values for an axis of the selection (its axis 0 stands for the
    mask's axes)."""
    lead = sel.mask.ndim
    if axis is None:
        if keepdims and lead != 1:
            refuse("keepdims=True")
        return None
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        a = operator.index(a)
        if not -sel.ndim <= a < sel.ndim:
            raise with_location(np.exceptions.AxisError, f"axis {a} is out of bounds for array "
                                f"of dimension {sel.ndim}")
        a %= sel.ndim
        out.extend(range(lead) if a == 0 else [a + lead - 1])
    if keepdims and lead != 1 and 0 in out:
        refuse("keepdims=True")
    return tuple(out)


def _plain(name, kwargs):
    unknown = {k for k, v in kwargs.items() if v is not None and not (k == "where" and v is True)}
    if unknown:
        raise with_location(UnsupportedError, f"np.{name} of a boolean-mask selection with "
                            f"{sorted(unknown)} is not supported in traced code")


def _sum(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    _plain("sum", {"out": out, **kwargs})
    return np.sum(a.filled(0), axis=_axes(a, axis, keepdims), dtype=dtype, keepdims=keepdims)


def _prod(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    _plain("prod", {"out": out, **kwargs})
    return np.prod(a.filled(1), axis=_axes(a, axis, keepdims), dtype=dtype, keepdims=keepdims)


def _any(a, axis=None, out=None, keepdims=False, **kwargs):
    _plain("any", {"out": out, **kwargs})
    return np.any(a.filled(False), axis=_axes(a, axis, keepdims), keepdims=keepdims)


def _all(a, axis=None, out=None, keepdims=False, **kwargs):
    _plain("all", {"out": out, **kwargs})
    return np.all(a.filled(True), axis=_axes(a, axis, keepdims), keepdims=keepdims)


def _count_nonzero(a, axis=None, *, keepdims=False):
    return np.count_nonzero(a.filled(0), axis=_axes(a, axis, keepdims), keepdims=keepdims)


def _mean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """The sum over the selected elements by their count, in NumPy's dtype (an empty
    selection gives nan, as NumPy's mean does)."""
    _plain("mean", {"out": out, **kwargs})
    axes = _axes(a, axis, keepdims)
    if dtype is None:
        dtype = np.float64 if a.dtype.kind in "biu" else a.dtype
    total = np.sum(a.filled(0), axis=axes, dtype=dtype, keepdims=keepdims)
    lead = a.mask.ndim
    count = np.count_nonzero(a.mask) if axes is None or set(range(lead)) <= set(axes) else 1
    for ax in range(lead, a.values.ndim):
        if axes is None or ax in axes:
            count = count * a.values.shape[ax]
    result = np.true_divide(total, count)
    return result if result.dtype == np.dtype(dtype) else result.astype(dtype)


def _extreme(a, name):
    raise with_location(UnsupportedError, f"np.{name} of a boolean-mask selection: NumPy raises "
                        "for an empty selection, which cannot be known while tracing; use "
                        f"np.{name}(np.where(mask, x, fill)) with a fill value of your choice")


_REDUCTIONS = {"sum": _sum, "prod": _prod, "any": _any, "all": _all}
_UFUNC_REDUCE = {np.add: "sum", np.multiply: "prod", np.logical_or: "any",
                 np.logical_and: "all"}
_FUNCTIONS = {np.sum: _sum, np.prod: _prod, np.any: _any, np.all: _all, np.mean: _mean,
              np.count_nonzero: _count_nonzero,
              np.max: lambda a, *args, **kw: _extreme(a, "max"),
              np.min: lambda a, *args, **kw: _extreme(a, "min"),
              np.amax: lambda a, *args, **kw: _extreme(a, "max"),
              np.amin: lambda a, *args, **kw: _extreme(a, "min")}


# ---------------------------------------------------------------------------------------------
# the same mask, computed twice

def same_value(a, b, _seen=None):
    """True if graph nodes a and b compute the same value: the same node, or the same pure op
    on the same arguments (`x[x > 0] = -x[x > 0]` builds its mask twice). Random draws differ."""
    if a is b:
        return True
    seen = {} if _seen is None else _seen
    key = (id(a), id(b))
    if key in seen:
        return seen[key]
    same = (a.op == b.op and a.op not in ("input", "random") and a.shape == b.shape
            and a.dtype == b.dtype and a.weak == b.weak and len(a.args) == len(b.args)
            and _same_attrs(a.attrs, b.attrs)
            and all(same_value(x, y, seen) for x, y in zip(a.args, b.args)))
    seen[key] = same
    return same


def _same_attrs(a, b):
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, (np.ndarray, np.generic)) or isinstance(y, (np.ndarray, np.generic)):
            if type(x) is not type(y) or np.asarray(x).dtype != np.asarray(y).dtype \
                    or not np.array_equal(x, y):
                return False
        elif type(x) is not type(y) or x != y:
            return False
    return True
