"""The op table: every op is declared here once.

An Op carries its kind, its shape and dtype rule (`infer`), its NumPy reference (`ref`, used by
the interpreter), and for elementwise ops the scalar code template (`code`) the backends inline
into fused loops. Tracing, interpretation, fusion and code generation all read this table.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .errors import ShapeError, UnsupportedError, with_location

ELEMENTWISE, VIEW, INPUT, CONST = "elementwise", "view", "input", "const"


@dataclass(frozen=True)
class Op:
    name: str
    kind: str
    infer: Callable  # (args, attrs) -> (shape, dtype)
    ref: Callable  # NumPy reference: ref(*arg_values, **attrs)
    code: Callable | None = None  # elementwise: (exprs, node, loop_dtypes) -> scalar expression
    loop: Callable | None = None  # elementwise: node -> dtypes the arguments are cast to
    ufunc: np.ufunc | None = None
    vjp: Callable | None = None


OPS = {}
UFUNC_OPS = {}  # np.ufunc -> Op


def register(op):
    OPS[op.name] = op
    if op.ufunc is not None:
        UFUNC_OPS[op.ufunc] = op
    return op


# ---------------------------------------------------------------------------------------------
# shared rules

def broadcast(*shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        shown = " and ".join(str(tuple(s)) for s in shapes)
        raise ShapeError(f"operands with shapes {shown} do not broadcast together") from None


def promotion_type(node):
    """What NumPy's promotion sees for this value: a Python type for weak scalars (NEP 50)."""
    if node.weak and node.dtype.kind != "b":
        return float if node.dtype.kind == "f" else int
    return node.dtype


def resolve(ufunc, args):
    """NumPy's own loop selection: the dtypes the inputs are cast to, then the output dtype."""
    types = tuple(promotion_type(a) for a in args)
    if all(a.weak for a in args):
        types = tuple(a.dtype for a in args)
    try:
        resolved = ufunc.resolve_dtypes(types + (None,) * ufunc.nout)
    except TypeError as e:
        names = ", ".join(str(a.dtype) for a in args)
        raise UnsupportedError(f"np.{ufunc.__name__} has no loop for ({names}): {e}") from None
    for arg, dt in zip(args, resolved):
        if arg.weak and arg.op == "const" and dt.kind in "iu" and arg.dtype.kind == "i":
            value, info = arg.attrs["value"], np.iinfo(dt)
            if not info.min <= value <= info.max:  # NumPy 2 refuses rather than wrapping
                raise with_location(OverflowError, f"Python integer {value} out of bounds "
                                    f"for {dt}")
    return resolved


def cast(expr, src, dst):
    """Scalar code converting `expr` from dtype src to dst with NumPy's casting results."""
    src, dst = np.dtype(src), np.dtype(dst)
    if src == dst:
        return expr
    if dst.kind == "b":
        return f"({expr} != 0)"
    return f"np.{compute_dtype(dst).name}({expr})"


def compute_dtype(dtype):
    """Kernels compute float16 in float32 (Numba has no float16 arithmetic on the CPU)."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


# ---------------------------------------------------------------------------------------------
# elementwise ufuncs

def _is_float(dt):
    return np.dtype(dt).kind == "f"


def _ufunc_op(ufunc, code):
    """An op for a NumPy ufunc. `code` is a format string over the (cast) argument expressions,
    or a function (exprs, loop_dtype) -> str when the code depends on the loop dtype."""

    def infer(args, attrs):
        return broadcast(*(a.shape for a in args)), resolve(ufunc, args)[-1]

    def loop(node):
        return resolve(ufunc, node.args)[: ufunc.nin]

    def render(exprs, node, loop_dtypes):
        dt = np.dtype(loop_dtypes[0])
        return code.format(*exprs) if isinstance(code, str) else code(exprs, dt)

    return register(Op(ufunc.__name__, ELEMENTWISE, infer, ufunc, render, loop, ufunc))


def _by_kind(float_code, int_code, bool_code=None):
    def pick(exprs, dt):
        if dt.kind == "f":
            return float_code.format(*exprs)
        if dt.kind == "b" and bool_code is not None:
            return bool_code.format(*exprs)
        return int_code.format(*exprs)

    return pick


_MAX = "({0} if ({0} >= {1} or {0} != {0}) else {1})"  # NaN-propagating, NumPy's maximum
_MIN = "({0} if ({0} <= {1} or {0} != {0}) else {1})"
_FMAX = "({0} if ({0} >= {1} or {1} != {1}) else {1})"  # NaN-ignoring
_FMIN = "({0} if ({0} <= {1} or {1} != {1}) else {1})"

_ufunc_op(np.add, "({0} + {1})")
_ufunc_op(np.subtract, "({0} - {1})")
_ufunc_op(np.multiply, "({0} * {1})")
_ufunc_op(np.true_divide, "({0} / {1})")
_ufunc_op(np.floor_divide, _by_kind("_ffloordiv({0}, {1})", "_ifloordiv({0}, {1})"))
_ufunc_op(np.remainder, _by_kind("_fmod({0}, {1})", "_imod({0}, {1})"))
def _power_code(exprs, node, loop_dtypes):
    if np.dtype(loop_dtypes[0]).kind != "f":
        return f"_ipow({exprs[0]}, {exprs[1]})"
    if node.args[1].size == 1:  # NumPy's loop takes sqrt for a broadcast exponent of 0.5
        return f"_fpow_scalar_exponent({exprs[0]}, {exprs[1]})"
    return f"({exprs[0]} ** {exprs[1]})"


register(replace(_ufunc_op(np.power, None), code=_power_code))
_ufunc_op(np.negative, "(-{0})")
_ufunc_op(np.positive, "{0}")
_ufunc_op(np.absolute, _by_kind("abs({0})", "abs({0})", "{0}"))
_ufunc_op(np.sign, "(1 if {0} > 0 else (-1 if {0} < 0 else {0}))")
_ufunc_op(np.square, "({0} * {0})")
_ufunc_op(np.sqrt, "np.sqrt({0})")
def _int_reciprocal_of_zero(dt):
    """What NumPy's integer reciprocal gives for 0 on this platform (its C loop divides by 0)."""
    with np.errstate(all="ignore"):
        return int(np.reciprocal(np.zeros(1, dt))[0])


_ufunc_op(np.reciprocal, lambda e, dt: f"(1.0 / {e[0]})" if dt.kind == "f"
          else f"_irecip({e[0]}, {_int_reciprocal_of_zero(dt)})")
_ufunc_op(np.cbrt, "np.cbrt({0})")
for _f in (np.exp, np.exp2, np.expm1, np.log, np.log2, np.log10, np.log1p, np.sin, np.cos,
           np.tan, np.arcsin, np.arccos, np.arctan, np.sinh, np.cosh, np.tanh, np.arcsinh,
           np.arccosh, np.arctanh):
    _ufunc_op(_f, f"np.{_f.__name__}({{0}})")
for _f in (np.floor, np.ceil, np.trunc, np.rint):
    _ufunc_op(_f, _by_kind(f"np.{_f.__name__}({{0}})", "{0}"))
_ufunc_op(np.arctan2, "np.arctan2({0}, {1})")
_ufunc_op(np.hypot, "np.hypot({0}, {1})")
_ufunc_op(np.maximum, _by_kind(_MAX, "max({0}, {1})", "({0} or {1})"))
_ufunc_op(np.minimum, _by_kind(_MIN, "min({0}, {1})", "({0} and {1})"))
_ufunc_op(np.fmax, _by_kind(_FMAX, "max({0}, {1})", "({0} or {1})"))
_ufunc_op(np.fmin, _by_kind(_FMIN, "min({0}, {1})", "({0} and {1})"))
_ufunc_op(np._core.umath.clip, _by_kind(_MIN.format(_MAX, "{2}"),
                                        "min(max({0}, {1}), {2})",
                                        "(({0} or {1}) and {2})"))
_ufunc_op(np.isnan, _by_kind("np.isnan({0})", "False"))
_ufunc_op(np.isinf, _by_kind("np.isinf({0})", "False"))
_ufunc_op(np.isfinite, _by_kind("np.isfinite({0})", "True"))
_ufunc_op(np.signbit, _by_kind("np.signbit({0})", "({0} < 0)"))
_ufunc_op(np.logical_and, "(({0} != 0) and ({1} != 0))")
_ufunc_op(np.logical_or, "(({0} != 0) or ({1} != 0))")
_ufunc_op(np.logical_xor, "(({0} != 0) != ({1} != 0))")
_ufunc_op(np.logical_not, "({0} == 0)")
_ufunc_op(np.equal, "({0} == {1})")
_ufunc_op(np.not_equal, "({0} != {1})")
_ufunc_op(np.less, "({0} < {1})")
_ufunc_op(np.less_equal, "({0} <= {1})")
_ufunc_op(np.greater, "({0} > {1})")
_ufunc_op(np.greater_equal, "({0} >= {1})")
_ufunc_op(np.bitwise_and, "({0} & {1})")
_ufunc_op(np.bitwise_or, "({0} | {1})")
_ufunc_op(np.bitwise_xor, "({0} ^ {1})")
_ufunc_op(np.invert, _by_kind("(~{0})", "(~{0})", "(not {0})"))
_ufunc_op(np.left_shift, lambda e, dt: f"_lshift({e[0]}, {e[1]}, {dt.itemsize * 8})")
_ufunc_op(np.right_shift, lambda e, dt: f"_rshift({e[0]}, {e[1]}, {dt.itemsize * 8})")


# ---------------------------------------------------------------------------------------------
# other elementwise ops

def _scalar_type(node):
    """A representative value for np.result_type: weak scalars stay weak."""
    if node.weak:
        return {"b": False, "i": 0, "u": 0, "f": 0.0}[node.dtype.kind]
    return node.dtype


def _where_infer(args, attrs):
    cond, x, y = args
    dtype = np.result_type(_scalar_type(x), _scalar_type(y))
    return broadcast(cond.shape, x.shape, y.shape), dtype


register(Op("where", ELEMENTWISE, _where_infer, np.where,
            code=lambda e, node, loop: f"({e[1]} if {e[0]} else {e[2]})",
            loop=lambda node: (np.dtype(bool), node.dtype, node.dtype)))


def _astype_infer(args, attrs):
    return args[0].shape, np.dtype(attrs["dtype"])


register(Op("astype", ELEMENTWISE, _astype_infer,
            lambda x, dtype: np.asarray(x).astype(dtype),
            code=lambda e, node, loop: cast(e[0], loop[0], node.dtype),
            loop=lambda node: (node.args[0].dtype,)))


# ---------------------------------------------------------------------------------------------
# reductions


# ---------------------------------------------------------------------------------------------
# matmul (a big op: BLAS through NumPy on the host)


# ---------------------------------------------------------------------------------------------
# creation


# ---------------------------------------------------------------------------------------------
# views (run on the host as NumPy views; kernels read them through strides)

def _transpose_infer(args, attrs):
    axes = attrs["axes"]
    return tuple(args[0].shape[i] for i in axes), args[0].dtype


register(Op("transpose", VIEW, _transpose_infer, lambda x, axes: np.transpose(x, axes)))


def _leaf_infer(args, attrs):
    raise AssertionError("inputs and constants carry their own type")


register(Op("input", INPUT, _leaf_infer, None))
register(Op("const", CONST, _leaf_infer, None))


def returns_numpy_scalar(node):
    """True if eager NumPy holds a NumPy scalar (np.float64(1.0)), not a 0-d array, for this
    value: NumPy scalar arguments and constants, 0-d ufunc results, and scalars' astype."""
    if node.shape != () or node.weak:
        return False
    if node.op == "input":
        return bool(node.attrs.get("scalar"))
    if node.op == "const":
        return isinstance(node.attrs["value"], np.generic)
    if node.op == "astype":
        return returns_numpy_scalar(node.args[0])
    return OPS[node.op].ufunc is not None


SUPPORTED_KINDS = "biuf"


def check_dtype(dtype, what):
    dtype = np.dtype(dtype)
    if dtype.kind not in SUPPORTED_KINDS:
        raise UnsupportedError(f"{what} has dtype {dtype}; tracejit supports bool, integer and "
                               "float arrays")
    return dtype
