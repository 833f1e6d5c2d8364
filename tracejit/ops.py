"""The op table: every op is declared here once.

An Op carries its kind, its shape and dtype rule (`infer`), its NumPy reference (`ref`, used by
the interpreter), and for elementwise ops the scalar code template (`code`) the backends inline
into fused loops. Tracing, interpretation, fusion and code generation all read this table.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .errors import ShapeError, UnsupportedError

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
    vjp: Callable | None = None  # vjp(ans, g, *args, **attrs) -> one cotangent (or None) per arg
    cost: int = 1  # elementwise: work per element, an add being 1 (fusion and parallel loops)
    # host ops: into(*arg_values, out=array, **attrs) stores the result in a planned array
    into: Callable | None = None
    # the argument whose memory `into` may write its result over, where that argument dies
    updates: int | None = None


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
        dtypes = ufunc.resolve_dtypes(types + (None,) * ufunc.nout)
    except TypeError as e:
        names = ", ".join(str(a.dtype) for a in args)
        raise UnsupportedError(f"np.{ufunc.__name__} has no loop for ({names}): {e}") from None
    for a, dt in zip(args, dtypes):
        value = a.attrs.get("value") if a.op == "const" and a.weak else None
        if type(value) is int and dt.kind in "iu" and not (
                np.iinfo(dt).min <= value <= np.iinfo(dt).max):
            raise UnsupportedError(f"Python integer {value} out of bounds for {dt}")
    return dtypes


def cast(expr, src, dst):
    """Scalar code converting `expr` from dtype src to dst with NumPy's casting results."""
    src, dst = np.dtype(src), np.dtype(dst)
    if src == dst:
        return expr
    if dst.kind == "b":
        return f"({expr} != 0)"
    return f"np.{compute_dtype(dst).name}({expr})"


def compute_dtype(dtype):
    """Kernels compute float16 in float32 (Numba has no float16 arithmetic on the CPU) and
    round each float16 result (codegen.result_cast)."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


# ---------------------------------------------------------------------------------------------
# gradient rules: vjp(ans, g, *args, **attrs) gets proxies for the op's result, the cotangent of
# the result and the arguments, and returns one cotangent per argument (None: no gradient). Rules
# are written with traced NumPy calls, so backward graphs are made of table ops and can be
# differentiated again. Cotangents may keep the broadcast shape and the result dtype; autodiff
# reduces them to each argument's shape and dtype with one shared `unbroadcast`.

def emit(op_name, args, **attrs):
    """Record an op by name from a rule (for ops with no NumPy spelling)."""
    from .tracing import apply
    return apply(op_name, args, **attrs)


def nondifferentiable(ans, g, *args, **attrs):
    """Piecewise-constant, integer or boolean results: the gradient is zero (None)."""
    return (None,) * len(args)


def _chooser_vjp(ans, g, x, y):
    """maximum/minimum: the gradient goes to the chosen argument; on a tie each gets half
    (JAX's rule). A NaN result sends no gradient to either side."""
    x_hit, y_hit = x == ans, y == ans
    shared = np.where(x_hit & y_hit, g * 0.5, g)
    return np.where(x_hit, shared, 0.0), np.where(y_hit, shared, 0.0)


def _clip_vjp(ans, g, x, lo, hi):
    """clip is minimum(maximum(x, lo), hi): the chooser rule applied twice."""
    low = np.maximum(x, lo)
    g_low, g_hi = _chooser_vjp(ans, g, low, hi)
    g_x, g_lo = _chooser_vjp(low, g_low, x, lo)
    return g_x, g_lo, g_hi


def _power_vjp(ans, g, x, y):
    # d/dx is 0 where y == 0 (not 0 * inf at x == 0); d/dy uses log(1) where x == 0, as JAX does
    if y.node.is_scalar_const():  # x ** 2 and friends: no select, no pow for small exponents
        k = np.asarray(y.node.attrs["value"]).item()
        dx = None if k == 0 else g * k if k == 1 else g * (k * (x if k == 2 else x ** (y - 1)))
        return dx, None
    dx = np.where(y == 0, 0.0, g * y * x ** (y - 1))
    dy = g * ans * np.log(np.where(x == 0, 1.0, x))
    return dx, dy


_LN2, _LN10 = math.log(2.0), math.log(10.0)


def _degree_factor(dtype, to_degrees):
    """NumPy's deg2rad/rad2deg factor, computed in the loop's own precision (NPY_PIf / 180.0f
    for float32)."""
    pi, half_turn = dtype.type(np.pi), dtype.type(180)
    return half_turn / pi if to_degrees else pi / half_turn


def _degree_code(to_degrees):
    def code(exprs, dt):
        dt = compute_dtype(dt)
        return f"({exprs[0]} * np.{dt.name}({float(_degree_factor(dt, to_degrees))!r}))"
    return code


# ---------------------------------------------------------------------------------------------
# elementwise ufuncs

def _ufunc_op(ufunc, code, vjp=None):
    """An op for a NumPy ufunc. `code` is a format string over the (cast) argument expressions,
    or a function (exprs, loop_dtype) -> str when the code depends on the loop dtype."""

    def infer(args, attrs):
        return broadcast(*(a.shape for a in args)), resolve(ufunc, args)[-1]

    def loop(node):
        return resolve(ufunc, node.args)[: ufunc.nin]

    def render(exprs, node, loop_dtypes):
        dt = np.dtype(loop_dtypes[0])
        return code.format(*exprs) if isinstance(code, str) else code(exprs, dt)

    return register(Op(ufunc.__name__, ELEMENTWISE, infer, ufunc, render, loop, ufunc, vjp))


def _by_kind(float_code, int_code, bool_code=None):
    def pick(exprs, dt):
        if dt.kind == "f":
            return float_code.format(*exprs)
        if dt.kind == "b" and bool_code is not None:
            return bool_code.format(*exprs)
        return int_code.format(*exprs)

    return pick


# NumPy's maximum/minimum: NaN-propagating, and the second operand when the two compare equal
# (maximum(-0.0, 0.0) is 0.0, maximum(0.0, -0.0) is -0.0)
_MAX = "({0} if ({0} > {1} or {0} != {0}) else {1})"
_MIN = "({0} if ({0} < {1} or {0} != {0}) else {1})"
_FMAX = "({0} if ({0} >= {1} or {1} != {1}) else {1})"  # NaN-ignoring
_FMIN = "({0} if ({0} <= {1} or {1} != {1}) else {1})"

_ufunc_op(np.add, "({0} + {1})", lambda ans, g, x, y: (g, g))
_ufunc_op(np.subtract, "({0} - {1})", lambda ans, g, x, y: (g, -g))
_ufunc_op(np.multiply, "({0} * {1})", lambda ans, g, x, y: (g * y, g * x))
_ufunc_op(np.true_divide, "({0} / {1})", lambda ans, g, x, y: (g / y, -g * ans / y))
_ufunc_op(np.floor_divide, _by_kind("_ffloordiv({0}, {1})", "_ifloordiv({0}, {1})"),
          nondifferentiable)
_ufunc_op(np.remainder, _by_kind("_fmod({0}, {1})", "_imod({0}, {1})"),
          lambda ans, g, x, y: (g, -g * np.floor_divide(x, y)))
def _power_code(exprs, node, loop_dtypes):
    if np.dtype(loop_dtypes[0]).kind != "f":
        e = node.args[1]
        if e.dtype.kind == "i" and not (e.is_scalar_const() and e.attrs["value"] >= 0):
            # a negative exponent raises ValueError: the kernel reports it through `_err`
            return f"_ipow_checked({exprs[0]}, {exprs[1]}, _err)"
        return f"_ipow({exprs[0]}, {exprs[1]})"
    if np.dtype(loop_dtypes[0]).char in VECTOR_MATH["power"]:
        if node.args[1].size == 1:
            return f"(np.sqrt({exprs[0]}) if {exprs[1]} == 0.5 else vpower({exprs[0]}, {exprs[1]}))"
        return f"vpower({exprs[0]}, {exprs[1]})"
    if node.args[1].size == 1:  # NumPy's loop takes sqrt for a broadcast exponent of 0.5
        return f"_fpow_scalar_exponent({exprs[0]}, {exprs[1]})"
    return f"({exprs[0]} ** {exprs[1]})"


register(replace(_ufunc_op(np.power, None, _power_vjp), code=_power_code))
_ufunc_op(np.negative, "(-{0})", lambda ans, g, x: (-g,))
_ufunc_op(np.positive, "{0}", lambda ans, g, x: (g,))
# |x| has gradient sign(x): 0 at x == 0, as in JAX
_ufunc_op(np.absolute, _by_kind("abs({0})", "abs({0})", "{0}"),
          lambda ans, g, x: (g * np.sign(x),))
_ufunc_op(np.fabs, "abs({0})", lambda ans, g, x: (g * np.sign(x),))  # float loops only
_ufunc_op(np.sign, "(1 if {0} > 0 else (-1 if {0} < 0 else {0}))", nondifferentiable)
_ufunc_op(np.square, "({0} * {0})", lambda ans, g, x: (g * (2 * x),))
# at 0 the gradient is inf, as NumPy's 0.5 / sqrt(0) gives
_ufunc_op(np.sqrt, "np.sqrt({0})", lambda ans, g, x: (g * (0.5 / ans),))
def _int_reciprocal_of_zero(dt):
    """What NumPy's integer reciprocal gives for 0 on this platform (its C loop divides by 0)."""
    with np.errstate(all="ignore"):
        return int(np.reciprocal(np.zeros(1, dt))[0])


_ufunc_op(np.reciprocal, lambda e, dt: f"(1.0 / {e[0]})" if dt.kind == "f"
          else f"_irecip({e[0]}, {_int_reciprocal_of_zero(dt)})",
          lambda ans, g, x: (-g * (ans * ans),))
_ufunc_op(np.cbrt, "np.cbrt({0})", lambda ans, g, x: (g / (3 * (ans * ans)),))
# Transcendentals with a branch-free, vectorisable version (backends/vecmath.py) for these loop
# dtypes, named v<name> in scalar code: libm is one call per element and stops LLVM vectorising
# the loop. The functions not listed stay on libm.
VECTOR_MATH = {"exp": "efd", "expm1": "efd", "log": "efd", "log1p": "efd", "log2": "efd",
               "log10": "efd", "cosh": "efd", "sinh": "efd", "tanh": "efd",
               "arctan": "efd", "sin": "efd", "cos": "efd", "tan": "efd",
               "power": "efd"}  # dtype chars


def _math_code(name):
    vector = VECTOR_MATH.get(name, "")
    return lambda e, dt: f"{'v' if dt.char in vector else 'np.'}{name}({e[0]})"


for _f, _vjp in (
        (np.exp2, lambda ans, g, x: (g * (ans * _LN2),)),
        (np.expm1, lambda ans, g, x: (g * (ans + 1),)),
        (np.log, lambda ans, g, x: (g / x,)),
        (np.log2, lambda ans, g, x: (g / (x * _LN2),)),
        (np.log10, lambda ans, g, x: (g / (x * _LN10),)),
        (np.log1p, lambda ans, g, x: (g / (x + 1),)),
        (np.sin, lambda ans, g, x: (g * np.cos(x),)),
        (np.cos, lambda ans, g, x: (-g * np.sin(x),)),
        (np.tan, lambda ans, g, x: (g * (1 + ans * ans),)),
        (np.arcsin, lambda ans, g, x: (g / np.sqrt(1 - x * x),)),
        (np.arccos, lambda ans, g, x: (-g / np.sqrt(1 - x * x),)),
        (np.arctan, lambda ans, g, x: (g / (1 + x * x),)),
        (np.sinh, lambda ans, g, x: (g * np.cosh(x),)),
        (np.cosh, lambda ans, g, x: (g * np.sinh(x),)),
        (np.tanh, lambda ans, g, x: (g * (1 - ans * ans),)),
        (np.arcsinh, lambda ans, g, x: (g / np.sqrt(x * x + 1),)),
        (np.arccosh, lambda ans, g, x: (g / (np.sqrt(x - 1) * np.sqrt(x + 1)),)),
        (np.arctanh, lambda ans, g, x: (g / (1 - x * x),))):
    _ufunc_op(_f, _math_code(_f.__name__), _vjp)
_ufunc_op(np.exp, _math_code("exp"),
          lambda ans, g, x: (g * ans,))
for _f in (np.floor, np.ceil, np.trunc, np.rint):
    _ufunc_op(_f, _by_kind(f"np.{_f.__name__}({{0}})", "{0}"), nondifferentiable)
_ufunc_op(np.arctan2, "np.arctan2({0}, {1})",
          lambda ans, g, y, x: (g * x / (x * x + y * y), -g * y / (x * x + y * y)))
_ufunc_op(np.hypot, "np.hypot({0}, {1})", lambda ans, g, x, y: (g * x / ans, g * y / ans))
for _f, _to_degrees in ((np.deg2rad, False), (np.radians, False), (np.rad2deg, True),
                       (np.degrees, True)):
    _ufunc_op(_f, _degree_code(_to_degrees), lambda ans, g, x, k=(
        180 / math.pi if _to_degrees else math.pi / 180): (g * k,))
_ufunc_op(np.logaddexp, "_logaddexp({0}, {1})",
          lambda ans, g, x, y: (g * np.exp(x - ans), g * np.exp(y - ans)))
_ufunc_op(np.logaddexp2, "_logaddexp2({0}, {1})",
          lambda ans, g, x, y: (g * np.exp2(x - ans), g * np.exp2(y - ans)))
_ufunc_op(np.maximum, _by_kind(_MAX, "max({0}, {1})", "({0} or {1})"), _chooser_vjp)
_ufunc_op(np.minimum, _by_kind(_MIN, "min({0}, {1})", "({0} and {1})"), _chooser_vjp)
_ufunc_op(np.fmax, _by_kind(_FMAX, "max({0}, {1})", "({0} or {1})"), _chooser_vjp)
_ufunc_op(np.fmin, _by_kind(_FMIN, "min({0}, {1})", "({0} and {1})"), _chooser_vjp)


def _heaviside_code(exprs, dt):
    """NumPy's heaviside: 0 below zero, x2 at zero, 1 above, and x1 itself when it is NaN."""
    x, h = exprs
    t = compute_dtype(dt).name
    return f"(np.{t}(0.0) if {x} < 0 else ({h} if {x} == 0 else (np.{t}(1.0) if {x} > 0 " \
           f"else {x})))"


# piecewise constant in x1; x2 is the value taken where x1 == 0, so it gets g there
_ufunc_op(np.heaviside, _heaviside_code,
          lambda ans, g, x1, x2: (None, np.where(x1 == 0, g, 0.0)))
_ufunc_op(np._core.umath.clip, _by_kind(_MIN.format(_MAX, "{2}"),
                                        "min(max({0}, {1}), {2})",
                                        "(({0} or {1}) and {2})"), _clip_vjp)
_ufunc_op(np.isnan, _by_kind("np.isnan({0})", "False"), nondifferentiable)
_ufunc_op(np.isinf, _by_kind("np.isinf({0})", "False"), nondifferentiable)
_ufunc_op(np.isfinite, _by_kind("np.isfinite({0})", "True"), nondifferentiable)
_ufunc_op(np.signbit, _by_kind("np.signbit({0})", "({0} < 0)"), nondifferentiable)
_ufunc_op(np.logical_and, "(({0} != 0) and ({1} != 0))", nondifferentiable)
_ufunc_op(np.logical_or, "(({0} != 0) or ({1} != 0))", nondifferentiable)
_ufunc_op(np.logical_xor, "(({0} != 0) != ({1} != 0))", nondifferentiable)
_ufunc_op(np.logical_not, "({0} == 0)", nondifferentiable)
_ufunc_op(np.equal, "({0} == {1})", nondifferentiable)
_ufunc_op(np.not_equal, "({0} != {1})", nondifferentiable)
_ufunc_op(np.less, "({0} < {1})", nondifferentiable)
_ufunc_op(np.less_equal, "({0} <= {1})", nondifferentiable)
_ufunc_op(np.greater, "({0} > {1})", nondifferentiable)
_ufunc_op(np.greater_equal, "({0} >= {1})", nondifferentiable)
_ufunc_op(np.bitwise_and, "({0} & {1})", nondifferentiable)
_ufunc_op(np.bitwise_or, "({0} | {1})", nondifferentiable)
_ufunc_op(np.bitwise_xor, "({0} ^ {1})", nondifferentiable)
_ufunc_op(np.invert, _by_kind("(~{0})", "(~{0})", "(not {0})"), nondifferentiable)
_ufunc_op(np.left_shift, lambda e, dt: f"_lshift({e[0]}, {e[1]}, {dt.itemsize * 8})",
          nondifferentiable)
_ufunc_op(np.right_shift, lambda e, dt: f"_rshift({e[0]}, {e[1]}, {dt.itemsize * 8})",
          nondifferentiable)

# per-element cost of the ops dearer than an add, in the units of cpu.PARALLEL_WORK (calibrated
# on a * b + c, memory-bound, where two cores gain least): about 4 per ns of compute. Measured
# in cache on the 2-core EPYC, float64: vector exp 2.4 ns, log1p, cosh, sin, tanh and sinh
# 3.5-5, tan 8 (two divisions), power 7-8.5 (libm's 14-35); the functions left on libm at 20
_COSTS = {12: ("exp", "exp2", "expm1", "log", "log2", "log10"),
          16: ("log1p", "cosh", "sin", "cos", "arctan", "sinh", "tanh"), 28: ("tan", "power"),
          20: ("arcsin", "arccos", "arcsinh", "arccosh", "arctanh",
               "cbrt", "arctan2", "hypot", "floor_divide", "remainder")}
for _cost, _names in _COSTS.items():
    for _name in _names:
        register(replace(OPS[_name], cost=_cost))
for _name in ("divide", "sqrt", "reciprocal"):
    register(replace(OPS[_name], cost=4))


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
            loop=lambda node: (np.dtype(bool), node.dtype, node.dtype),
            vjp=lambda ans, g, c, x, y: (None, np.where(c, g, 0.0), np.where(c, 0.0, g))))


def _astype_infer(args, attrs):
    return args[0].shape, np.dtype(attrs["dtype"])


register(Op("astype", ELEMENTWISE, _astype_infer,
            lambda x, dtype: np.asarray(x).astype(dtype),
            code=lambda e, node, loop: cast(e[0], loop[0], node.dtype),
            loop=lambda node: (node.args[0].dtype,),
            vjp=lambda ans, g, x, dtype: (g,)))  # autodiff casts g back to x's dtype


def _same_infer(args, attrs):
    return args[0].shape, args[0].dtype


# The identity whose gradient is zero: tj.stop_gradient and values computed under tj.no_grad().
# The compile pipeline removes it after differentiation.
register(Op("stop_gradient", ELEMENTWISE, _same_infer, lambda x: x,
            code=lambda e, node, loop: e[0], loop=lambda node: (node.dtype,),
            vjp=lambda ans, g, x: (None,)))


# ---------------------------------------------------------------------------------------------
# reductions
#
# A reduction op has attrs axis (sorted tuple of non-negative axes, never empty) and keepdims.
# Its `code` is a ReduceCode: how a kernel accumulates it. Sums and products of float32 (and
# float16) accumulate in float64 and round once at the end: at least as accurate as NumPy's
# pairwise float32 summation, so results agree with NumPy to ~1e-6 relative, not bit for bit.
# mean, var, std, average and norm are decompositions into these ops plus elementwise ones
# (numpy_api.py), so fusion sees one small family.

REDUCTION = "reduction"


@dataclass(frozen=True)
class ReduceCode:
    """init(acc_dtype) -> code of the start value; update(acc, x, acc_dtype) -> new value code.
    `arg` ops (argmax/argmin) keep the best value and its index: update is then a condition
    under which x replaces the best value."""

    init: Callable
    update: Callable
    acc: Callable  # (input dtype, result dtype) -> accumulator dtype
    arg: bool = False
    # how partial results over pieces of the axis (Dask chunks) merge: with this reduction
    # (None: the op itself); arg ops merge their values so and keep the chosen value's index
    combine: str | None = None


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if d in axes else n for d, n in enumerate(shape))
    return tuple(n for d, n in enumerate(shape) if d not in axes)


def _dummy(shape, dtype):
    """A tiny array with the same empty dimensions: NumPy's dtype and emptiness rules apply."""
    return np.zeros(tuple(min(n, 1) for n in shape), dtype)


def _reduction_infer(ref):
    def infer(args, attrs):
        (x,) = args
        axes, keepdims = attrs["axis"], attrs["keepdims"]
        try:
            dtype = np.asarray(ref(_dummy(x.shape, x.dtype), **attrs)).dtype
        except ValueError as e:  # max/argmax of an empty axis
            raise ShapeError(str(e)) from None
        return reduced_shape(x.shape, axes, keepdims), dtype
    return infer


def _sum_acc(dt, res):
    return np.dtype(np.float64) if np.dtype(res).kind == "f" else compute_dtype(res)


def _extreme(sign):
    def init(dt):
        dt = np.dtype(dt)
        if dt.kind == "f":
            return f"np.{dt.name}({'-' if sign > 0 else ''}np.inf)"
        if dt.kind == "b":
            return "False" if sign > 0 else "True"
        info = np.iinfo(dt)
        return f"np.{dt.name}({info.min if sign > 0 else info.max})"
    return init


def _same(dt, res):
    return compute_dtype(dt)


_REDUCE_CODE = {
    "sum": ReduceCode(lambda dt: f"np.{dt.name}(0)", lambda a, x, dt: f"({a} + {x})", _sum_acc),
    "prod": ReduceCode(lambda dt: f"np.{dt.name}(1)", lambda a, x, dt: f"({a} * {x})", _sum_acc),
    "max": ReduceCode(_extreme(+1), lambda a, x, dt: _by_kind(_MAX, "max({0}, {1})",
                                                            "({0} or {1})")((a, x), dt), _same),
    "min": ReduceCode(_extreme(-1), lambda a, x, dt: _by_kind(_MIN, "min({0}, {1})",
                                                            "({0} and {1})")((a, x), dt), _same),
    "any": ReduceCode(lambda dt: "False", lambda a, x, dt: f"({a} or {x})",
                      lambda dt, res: np.dtype(bool)),
    "all": ReduceCode(lambda dt: "True", lambda a, x, dt: f"({a} and {x})",
                      lambda dt, res: np.dtype(bool)),
    # NumPy's argmax/argmin: the first extreme, or the first NaN
    "argmax": ReduceCode(_extreme(+1), lambda a, x, dt: _by_kind(
        "({1} > {0} or ({1} != {1} and {0} == {0}))", "{1} > {0}")((a, x), dt), _same, True,
        "max"),
    "argmin": ReduceCode(_extreme(-1), lambda a, x, dt: _by_kind(
        "({1} < {0} or ({1} != {1} and {0} == {0}))", "{1} < {0}")((a, x), dt), _same, True,
        "min"),
}


def _argref(f):
    def ref(x, axis, keepdims):
        flat = len(axis) == np.ndim(x)  # axis=None: the index into the flattened array
        return f(x, axis=None if flat else axis[0], keepdims=keepdims)
    return ref


for _name, _ref in (("sum", np.sum), ("prod", np.prod), ("max", np.max), ("min", np.min),
                    ("any", np.any), ("all", np.all), ("argmax", _argref(np.argmax)),
                    ("argmin", _argref(np.argmin))):
    register(Op(_name, REDUCTION, _reduction_infer(_ref), _ref, code=_REDUCE_CODE[_name]))


# cumulative sums and products run on the host (NumPy): a scan does not fuse into a row loop
# without a sequential dependence, and NumPy's own loop is already a single pass.

def _scan_infer(ref):
    def infer(args, attrs):
        (x,) = args
        dtype = ref(_dummy(x.shape, x.dtype), axis=attrs["axis"], dtype=attrs["dtype"]).dtype
        shape = (x.size,) if attrs["axis"] is None else x.shape
        return shape, dtype
    return infer


HOST = "host"
register(Op("cumsum", HOST, _scan_infer(np.cumsum), np.cumsum))
register(Op("cumprod", HOST, _scan_infer(np.cumprod), np.cumprod))


def _accumulate_ref(x, ufunc, axis, dtype):
    return getattr(np, ufunc).accumulate(x, axis=axis, dtype=dtype)


def _accumulate_infer(args, attrs):
    (x,) = args
    return x.shape, _accumulate_ref(_dummy(x.shape, x.dtype), **attrs).dtype


# np.add.accumulate, np.maximum.accumulate and friends (`ufunc` is the ufunc's name): a scan on
# the host, like cumsum, with the ufunc's own result dtype (np.add.accumulate keeps int32)
register(Op("accumulate", HOST, _accumulate_infer, _accumulate_ref))


# sorting and dense linear algebra run on the host with NumPy's own routines (so ties, NaN
# order and LinAlgError are NumPy's); their shapes and dtypes are NumPy's on tiny operands
def _host_infer(ref):
    def infer(args, attrs):
        return args[0].shape, ref(*[_dummy(a.shape, a.dtype) for a in args], **attrs).dtype
    return infer


def _sort(x, axis, kind):
    return np.sort(x, axis=axis, kind=kind)


def _argsort(x, axis, kind):
    return np.argsort(x, axis=axis, kind=kind)


def _linalg_infer(ref, shape_of):
    def infer(args, attrs):
        a, *rest = args  # a tiny identity matrix, then zeros: NumPy's dtype for these operands
        eye = np.broadcast_to(np.eye(min(a.shape[-1], 1), dtype=a.dtype),
                              tuple(min(n, 1) for n in a.shape))
        return shape_of(*args), ref(eye, *[_dummy(b.shape, b.dtype) for b in rest]).dtype
    return infer


def _searchsorted(a, v, side):
    return np.searchsorted(a, v, side=side)


def _histogram(a, *weights, bins, range, part):
    return np.histogram(a, bins, range, weights=weights[0] if weights else None)[part]


def _histogram_infer(args, attrs):
    dtype = _histogram(*[_dummy(a.shape, a.dtype) for a in args], **attrs).dtype
    return (attrs["bins"] + attrs["part"],), dtype  # bins counts, bins + 1 edges


register(Op("searchsorted", HOST, lambda args, attrs: (
    args[1].shape, _searchsorted(_dummy(args[0].shape, args[0].dtype), _dummy(
        args[1].shape, args[1].dtype), **attrs).dtype), _searchsorted, vjp=nondifferentiable))
def _interp_vjp(ans, g, x, xp, fp):
    # y = fp[k] + slope * (x - xp[k]) on the segment k holding x; constant outside [xp0, xpn]
    n = xp.shape[0]
    if n < 2:
        return np.zeros_like(x), np.zeros_like(xp), np.sum(g) + np.zeros_like(fp)
    k = np.clip(np.searchsorted(xp, x, side="right") - 1, 0, n - 2)
    x0, x1, f0, f1 = xp[k], xp[k + 1], fp[k], fp[k + 1]
    slope = (f1 - f0) / (x1 - x0)
    inside = (x >= xp[0]) & (x <= xp[n - 1])
    t = np.where(inside, (x - x0) / (x1 - x0), np.where(x < xp[0], 0.0, 1.0))
    g_fp, g_xp = np.zeros_like(fp), np.zeros_like(xp)
    np.add.at(g_fp, k, g * (1 - t))
    np.add.at(g_fp, k + 1, g * t)
    np.add.at(g_xp, k, np.where(inside, g * slope * (t - 1), 0.0))
    np.add.at(g_xp, k + 1, np.where(inside, -g * slope * t, 0.0))
    return np.where(inside, g * slope, 0.0), g_xp, g_fp


register(Op("interp", HOST, lambda args, attrs: (args[0].shape, np.interp(*[
    _dummy(a.shape, a.dtype) if a.ndim == 0 else np.zeros(1, a.dtype) for a in args]).dtype),
    np.interp, vjp=_interp_vjp))
register(Op("histogram", HOST, _histogram_infer, _histogram, vjp=nondifferentiable))
def _sort_vjp(ans, g, x, axis, kind):
    # each sorted position's gradient goes back to the element that landed there
    rank = np.argsort(np.argsort(x, axis=axis, kind="stable"), axis=axis, kind="stable")
    return (np.take_along_axis(g, rank, axis=axis),)


register(Op("sort", HOST, _host_infer(_sort), _sort, vjp=_sort_vjp))
register(Op("argsort", HOST, _host_infer(_argsort), _argsort, vjp=nondifferentiable))
def _mT(x):
    return np.swapaxes(x, -1, -2)


def _solve_vjp(ans, g, a, b):
    # x = a^-1 b: gb = a^-T g, ga = -gb x^T (b a vector: an outer product)
    gb = np.linalg.solve(_mT(a), g)
    ga = -np.outer(gb, ans) if b.ndim == 1 else -(gb @ _mT(ans))
    return ga, gb


def _det_vjp(ans, g, a):
    return (np.expand_dims(g * ans, (-1, -2)) * _mT(np.linalg.inv(a)),)


register(Op("solve", HOST, _linalg_infer(np.linalg.solve, lambda a, b: b.shape),
            np.linalg.solve, vjp=_solve_vjp))
register(Op("inv", HOST, _linalg_infer(np.linalg.inv, lambda a: a.shape), np.linalg.inv,
            vjp=lambda ans, g, a: (-(_mT(ans) @ g @ _mT(ans)),)))
register(Op("det", HOST, _linalg_infer(np.linalg.det, lambda a: a.shape[:-2]), np.linalg.det,
            vjp=_det_vjp))
def _cholesky_vjp(ans, g, a):
    # NumPy reads a's lower triangle only: with S = L^-T Phi(L^T g) L^-1 (Phi: the lower
    # triangle, its diagonal halved), the gradient is tril(S + S^T) - diag(S)
    lt_g = _mT(ans) @ g
    eye = np.eye(ans.shape[-1])
    phi = np.tril(lt_g) - 0.5 * eye * lt_g
    inv = np.linalg.inv(ans)
    s = _mT(inv) @ phi @ inv
    return (np.tril(s + _mT(s)) - eye * s,)


register(Op("cholesky", HOST, _linalg_infer(np.linalg.cholesky, lambda a: a.shape),
            np.linalg.cholesky, vjp=_cholesky_vjp))


def _draw(*after, source, method, params, kwargs, **result_and_order):
    """A random draw, made at every call from the generator the function used (np.random's
    global one when source is None), with the same arguments: eager NumPy's stream. `after` is
    the previous draw, which only orders the draws; the attribute `seq` keeps equal draws
    apart (no CSE)."""
    return getattr(np.random if source is None else source, method)(*params, **dict(kwargs))


register(Op("random", HOST, lambda args, attrs: (attrs["shape"], attrs["dtype"]), _draw,
            vjp=nondifferentiable))


def _sum_vjp(ans, g, x, axis, keepdims, dtype=None):
    kept = reduced_shape(x.shape, axis, True)
    return (emit("broadcast_to", [emit("reshape", [g], shape=kept)], shape=x.shape),)


def _extreme_vjp(ans, g, x, axis, keepdims):
    """max/min: the gradient goes to the elements equal to the result, shared among ties."""
    kept = reduced_shape(x.shape, axis, True)
    hit = (x == emit("reshape", [ans], shape=kept)).astype(x.dtype)
    share = emit("reshape", [g], shape=kept) / np.sum(hit, axis=axis, keepdims=True)
    return (hit * share,)


def _prod_vjp(ans, g, x, axis, keepdims, dtype=None):
    """d prod / d x_i is the product of the others, computed without dividing by a zero."""
    kept = reduced_shape(x.shape, axis, True)
    zero = x == 0
    zeros = np.sum(zero, axis=axis, keepdims=True)
    others = np.prod(np.where(zero, 1, x), axis=axis, keepdims=True)
    grad = np.where(zero, np.where(zeros == 1, others, 0), np.where(zeros == 0, others, 0) /
                    np.where(zero, 1, x))
    return (grad * emit("reshape", [g], shape=kept),)


def _cumsum_vjp(ans, g, x, axis, dtype):
    if axis is None:
        return (np.flip(np.cumsum(np.flip(g))).reshape(x.shape),)
    return (np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis),)


def _no_cumprod_gradient(ans, g, x, axis, dtype):
    raise UnsupportedError("np.cumprod has no gradient rule yet")


def _accumulate_vjp(ans, g, x, ufunc, axis, dtype):
    if ufunc == "add":  # a running sum: each input reaches every later output
        return (np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis),)
    raise UnsupportedError(f"np.{ufunc}.accumulate has no gradient rule yet")


# gradient rules of the reductions (autodiff's unbroadcast also emits sums)
for _name, _vjp in (("sum", _sum_vjp), ("max", _extreme_vjp), ("min", _extreme_vjp),
                    ("prod", _prod_vjp), ("any", nondifferentiable), ("all", nondifferentiable),
                    ("argmax", nondifferentiable), ("argmin", nondifferentiable),
                    ("cumsum", _cumsum_vjp), ("cumprod", _no_cumprod_gradient),
                    ("accumulate", _accumulate_vjp)):
    register(replace(OPS[_name], vjp=_vjp))


# ---------------------------------------------------------------------------------------------
# matmul (a big op: BLAS through NumPy on the host)

MATMUL = "matmul"


def _matmul_infer(args, attrs):
    """np.matmul's rules: a 1-d operand gets a unit dimension (removed again from the result),
    leading dimensions broadcast as a batch, and the inner dimensions must agree."""
    a, b = args
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("matmul needs operands with at least one dimension, not a scalar "
                         "(use * to scale)")
    ashape = (1,) + a.shape if a.ndim == 1 else a.shape
    bshape = b.shape + (1,) if b.ndim == 1 else b.shape
    if ashape[-1] != bshape[-2]:
        raise ShapeError(f"matmul: the inner dimensions of shapes {a.shape} and {b.shape} "
                         f"differ ({ashape[-1]} != {bshape[-2]})")
    batch = broadcast(ashape[:-2], bshape[:-2])
    shape = batch + (ashape[-2],) * (a.ndim > 1) + (bshape[-1],) * (b.ndim > 1)
    return shape, resolve(np.matmul, args)[-1]


def _matmul_vjp(ans, g, a, b):
    """1-d operands get their unit dimension back, so the batched 2-d rule covers every case;
    autodiff's unbroadcast sums the batch dimensions an operand was broadcast over."""
    if a.ndim == 1 and b.ndim == 1:
        return g * b, g * a
    a2 = emit("reshape", [a], shape=(1,) + a.shape) if a.ndim == 1 else a
    b2 = emit("reshape", [b], shape=b.shape + (1,)) if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1 or b.ndim == 1:
        g2 = emit("reshape", [g], shape=g.shape[:-1] + (1,) + g.shape[-1:] if a.ndim == 1
                  else g.shape + (1,))
    ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
    gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
    if a.ndim == 1:
        ga = emit("reshape", [ga], shape=ga.shape[:-2] + ga.shape[-1:])
    if b.ndim == 1:
        gb = emit("reshape", [gb], shape=gb.shape[:-1])
    return ga, gb


register(Op("matmul", MATMUL, _matmul_infer, np.matmul, ufunc=np.matmul, vjp=_matmul_vjp,
            into=lambda a, b, out: np.matmul(a, b, out=out)))


# ---------------------------------------------------------------------------------------------
# creation
#
# np.zeros/ones/full/empty/arange/linspace/eye with static arguments do not dispatch to proxies:
# they run at trace time and become constants. The *_like functions dispatch; they record `full`,
# an elementwise op with no inputs, so `np.zeros_like(x) + 1` fuses into one kernel.

def _full_infer(args, attrs):
    return attrs["shape"], np.dtype(attrs["dtype"])


def _full_ref(shape, dtype, value):
    return np.full(shape, value, dtype)


register(Op("full", ELEMENTWISE, _full_infer, _full_ref,
            code=lambda e, node, loop: _literal(node.attrs["value"], node.dtype),
            loop=lambda node: (), vjp=nondifferentiable))


def _literal(value, dtype):
    from .kernels import literal
    return literal(value, dtype)


# ---------------------------------------------------------------------------------------------
# views (run on the host as NumPy views; kernels read them through strides)

def _transpose_infer(args, attrs):
    axes = attrs["axes"]
    return tuple(args[0].shape[i] for i in axes), args[0].dtype


# the ndarray methods: np.transpose and np.reshape add about 0.5 us of dispatch to each call
register(Op("transpose", VIEW, _transpose_infer, lambda x, axes: x.transpose(axes),
            vjp=lambda ans, g, x, axes: (np.transpose(g, tuple(np.argsort(axes))),)))


class Index(tuple):
    """A static basic index, one entry per result-or-source dimension: an int (takes one
    element, drops the dimension), None (a new unit dimension) or (start, stop, step) with the
    bounds already resolved against the shape (stop is None when a negative step runs past 0).
    Plain data, so it hashes, compares and prints as NumPy syntax."""

    def __repr__(self):
        def text(e):
            if e is None:
                return "None"
            if isinstance(e, int):
                return str(e)
            start, stop, step = e
            return f"{start}:{'' if stop is None else stop}" + ("" if step == 1 else f":{step}")
        return "[" + ", ".join(map(text, self)) + "]"

    __str__ = __repr__

    @functools.cached_property
    def key(self):
        """The NumPy key. The trailing Ellipsis makes an all-integer index return a 0-d array
        instead of a scalar, so kernels always receive arrays."""
        return tuple(slice(*e) if isinstance(e, tuple) else e for e in self) + (Ellipsis,)


def _getitem_infer(args, attrs):
    shape, dims = [], iter(args[0].shape)
    for e in attrs["index"]:
        if e is None:
            shape.append(1)
        elif isinstance(e, int):
            next(dims)
        else:
            shape.append(len(range(e[0], -1 if e[1] is None else e[1], e[2])))
            next(dims)
    return tuple(shape) + tuple(dims), args[0].dtype


def _getitem_ref(x, index):
    view = x[index.key]
    return view.copy() if view.ndim == 0 else view  # NumPy gives a scalar (a copy) here


def _getitem_vjp(ans, g, x, index):
    return (emit("scatter", [g], index=index, shape=x.shape),)


register(Op("getitem", VIEW, _getitem_infer, _getitem_ref, vjp=_getitem_vjp))


def _reshape_infer(args, attrs):
    shape = attrs["shape"]
    if int(np.prod(shape, dtype=np.int64)) != args[0].size:
        raise ShapeError(f"cannot reshape an array of shape {args[0].shape} into shape {shape}")
    return shape, args[0].dtype


# Reshape is a view when NumPy can express it with strides (always for contiguous operands and
# for adding or removing unit dimensions); otherwise NumPy copies, as it would eagerly.
register(Op("reshape", VIEW, _reshape_infer, lambda x, shape: x.reshape(shape),
            vjp=lambda ans, g, x, shape: (emit("reshape", [g], shape=x.shape),)))


def _broadcast_to_infer(args, attrs):
    shape = attrs["shape"]
    if broadcast(args[0].shape, shape) != shape:
        raise ShapeError(f"cannot broadcast an array of shape {args[0].shape} to shape {shape}")
    return shape, args[0].dtype


# the cotangent of a broadcast is a sum, done by autodiff's unbroadcast
register(Op("broadcast_to", VIEW, _broadcast_to_infer,
            lambda x, shape: np.broadcast_to(x, shape), vjp=lambda ans, g, x, shape: (g,)))


# Copying shape ops run NumPy's own copy loops on the host: they move memory without
# arithmetic, so a kernel would do no better, and the consumers read the result contiguously.
COPY = "copy"


def _setitem_into(base, value, out, index):
    if out is not base:  # else the base dies here and is written in place
        np.copyto(out, base)
    out[index.key] = value  # NumPy copies first where value overlaps out


def _setitem_ref(base, value, index):
    out = base.copy()
    _setitem_into(base, value, out, index)
    return out


def _setitem_vjp(ans, g, base, value, index):
    return (emit("setitem", [g, np.zeros_like(value)], index=index),
            emit("getitem", [g], index=index))


# base with the region `index` replaced by value (of the region's shape and base's dtype): one
# version of a buffer written in place by traced code (mutation.py)
register(Op("setitem", COPY, lambda args, attrs: (args[0].shape, args[0].dtype), _setitem_ref,
            vjp=_setitem_vjp, into=_setitem_into, updates=0))


def _scatter_ref(g, index, shape):
    out = np.zeros(shape, np.asarray(g).dtype)
    out[index.key] = g
    return out


# zeros of `shape` with g written at a basic index: the gradient of getitem (no index repeats)
register(Op("scatter", COPY, lambda args, attrs: (attrs["shape"], args[0].dtype), _scatter_ref,
            vjp=lambda ans, g, x, index, shape: (emit("getitem", [g], index=index),)))


def _scatter_add_ref(g, idx, axis, shape):
    out = np.zeros(shape, np.asarray(g).dtype)
    np.add.at(out, (slice(None),) * axis + (idx,), g)
    return out


# zeros of `shape` with g added at an index array (repeats accumulate): the gradient of take
register(Op("scatter_add", COPY, lambda args, attrs: (attrs["shape"], args[0].dtype),
            _scatter_add_ref, vjp=lambda ans, g, x, idx, axis, shape: (
                emit("take", [g, idx], axis=axis), None)))


class ArrayKey(tuple):
    """A static NumPy key with integer index arrays in it, one entry per key item: an int, None,
    Ellipsis, (start, stop, step) for a slice (as written, not resolved), or "#k" for the k-th
    index array (an argument of the op). Plain data, so it hashes and prints as NumPy syntax."""

    def resolve(self, idxs):
        """The NumPy key, with the index arrays (values or proxies) in their places."""
        return tuple(idxs[int(e[1:])] if isinstance(e, str) else slice(*e)
                     if isinstance(e, tuple) else e for e in self)

    def __repr__(self):
        def text(e):
            if e is Ellipsis:
                return "..."
            if isinstance(e, tuple):
                start, stop, step = ("" if v is None else v for v in e)
                return f"{start}:{stop}" + ("" if step == "" else f":{step}")
            return str(e)
        return "[" + ", ".join(map(text, self)) + "]"

    __str__ = __repr__


@functools.lru_cache(maxsize=1024)
def indexed_shape(shape, key, idx_shapes):
    """The shape of `x[key]` for an x of `shape` and index arrays of `idx_shapes` (NumPy's own
    rules, on a broadcast dummy; NumPy's IndexError for a key that does not fit)."""
    dummy = np.broadcast_to(np.zeros((), np.bool_), shape)
    return dummy[key.resolve([np.zeros(s, np.intp) for s in idx_shapes])].shape


def _index_put_infer(args, attrs):
    base, value, *idxs = args
    for idx in idxs:
        if idx.dtype.kind not in "iu":
            raise UnsupportedError(f"an index array of dtype {idx.dtype}: only integer index "
                                   "arrays assign")
    region = indexed_shape(base.shape, attrs["key"], tuple(i.shape for i in idxs))
    if value.shape != region:
        raise ShapeError(f"index_put: a value of shape {value.shape} for a region of shape "
                         f"{region}")
    return base.shape, base.dtype


def _index_put_into(base, value, *idxs, out, key, ufunc):
    if out is not base:  # else the base dies here and is written in place
        np.copyto(out, base)
    if ufunc is None:
        out[key.resolve(idxs)] = value  # a repeated index keeps the last write, as NumPy does
    else:
        getattr(np, ufunc).at(out, key.resolve(idxs), value)


def _index_put_ref(base, value, *idxs, key, ufunc):
    out = np.array(base, copy=True)
    _index_put_into(base, value, *idxs, out=out, key=key, ufunc=ufunc)
    return out


def _index_put_vjp(ans, g, base, value, *idxs, key, ufunc):
    k = key.resolve(idxs)
    if ufunc == "add":
        return (g, g[k]) + (None,) * len(idxs)
    if ufunc == "subtract":
        return (g, -g[k]) + (None,) * len(idxs)
    if ufunc is not None:
        raise UnsupportedError(f"np.{ufunc}.at has no gradient rule yet")
    g_base = emit("index_put", [g, np.zeros_like(value), *idxs], key=key, ufunc=None)
    # an element written twice keeps only the last value: the others get no gradient
    positions = np.arange(value.size, dtype=np.intp).reshape(value.shape)
    if all(i.node.op == "const" for i in idxs):
        winner = np.full(base.shape, -1, np.intp)
        winner[key.resolve([i.node.attrs["value"] for i in idxs])] = positions
        last = winner[key.resolve([i.node.attrs["value"] for i in idxs])] == positions
        g_value = g[k] if last.all() else np.where(last, g[k], 0)
    else:
        unwritten = emit("full", [], shape=base.shape, dtype=np.dtype(np.intp), value=-1)
        winner = emit("index_put", [unwritten, positions, *idxs], key=key, ufunc=None)
        g_value = np.where(winner[k] == positions, g[k], 0)
    return (g_base, g_value) + (None,) * len(idxs)


# base with value written at a key with integer index arrays (`x[idx] = v`, `x[:, idx] = v`,
# `x[rows, cols] = v`), or combined with `ufunc.at` (`np.add.at(x, idx, v)`: repeats
# accumulate); value has the shape of base[key]. One version of a buffer (mutation.py), written
# on the host by NumPy, so negative indices, repeats and IndexError are NumPy's own.
register(Op("index_put", COPY, _index_put_infer, _index_put_ref, vjp=_index_put_vjp,
            into=_index_put_into, updates=0))


def _concatenate_infer(args, attrs):
    axis, first = attrs["axis"], args[0].shape
    for a in args:
        if a.ndim != len(first):
            raise ShapeError(f"concatenate: all inputs need {len(first)} dimensions; one has "
                             f"shape {a.shape}")
        if a.shape[:axis] + a.shape[axis + 1:] != first[:axis] + first[axis + 1:]:
            raise ShapeError(f"concatenate: shapes {first} and {a.shape} differ outside axis "
                             f"{axis}")
    shape = first[:axis] + (sum(a.shape[axis] for a in args),) + first[axis + 1:]
    return shape, np.result_type(*(a.dtype for a in args))


def _concatenate_vjp(ans, g, *xs, axis):
    grads, start = [], 0
    for x in xs:
        index = Index((0, n, 1) if d != axis else (start, start + x.shape[axis], 1)
                      for d, n in enumerate(g.shape))
        grads.append(emit("getitem", [g], index=index))
        start += x.shape[axis]
    return tuple(grads)


register(Op("concatenate", COPY, _concatenate_infer,
            lambda *xs, axis: np.concatenate(xs, axis=axis), vjp=_concatenate_vjp))


def _take_infer(args, attrs):
    x, idx = args
    if idx.dtype.kind not in "iu":
        raise UnsupportedError(f"an index array of dtype {idx.dtype}: only integer index "
                               "arrays gather")
    axis = attrs["axis"]
    return x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype


# A gather: one integer index array (traced or constant) along one axis, as x[idx] does. An
# index out of range raises NumPy's IndexError when it runs, as it does eagerly.
register(Op("take", COPY, _take_infer, lambda x, idx, axis: np.take(x, idx, axis=axis),
            vjp=lambda ans, g, x, idx, axis: (
                emit("scatter_add", [g, idx], axis=axis, shape=x.shape), None)))


def _same_shape_infer(args, attrs):
    return args[0].shape, args[0].dtype


def _roll_vjp(ans, g, x, shift, axis):
    back = tuple(-s for s in shift) if isinstance(shift, tuple) else -shift
    return (emit("roll", [g], shift=back, axis=axis),)


register(Op("roll", COPY, _same_shape_infer,
            lambda x, shift, axis: np.roll(x, shift, axis), vjp=_roll_vjp))


def _tile_infer(args, attrs):
    shape, reps = args[0].shape, attrs["reps"]
    n = max(len(shape), len(reps))
    shape = (1,) * (n - len(shape)) + shape
    reps = (1,) * (n - len(reps)) + reps
    return tuple(s * r for s, r in zip(shape, reps)), args[0].dtype


def _tile_vjp(ans, g, x, reps):
    n = g.ndim
    shape = (1,) * (n - x.ndim) + x.shape
    reps = (1,) * (n - len(reps)) + tuple(reps)
    split = emit("reshape", [g], shape=tuple(v for r, s in zip(reps, shape) for v in (r, s)))
    summed = emit("sum", [split], axis=tuple(range(0, 2 * n, 2)), keepdims=False)
    return (emit("reshape", [summed], shape=x.shape),)


register(Op("tile", COPY, _tile_infer, lambda x, reps: np.tile(x, reps), vjp=_tile_vjp))


def _repeat_infer(args, attrs):
    shape, axis = args[0].shape, attrs["axis"]
    if axis is None:
        return (args[0].size * attrs["repeats"],), args[0].dtype
    return shape[:axis] + (shape[axis] * attrs["repeats"],) + shape[axis + 1:], args[0].dtype


def _repeat_vjp(ans, g, x, repeats, axis):
    shape = (x.size,) if axis is None else x.shape
    axis = 0 if axis is None else axis
    split = emit("reshape", [g], shape=shape[:axis] + (shape[axis], repeats) + shape[axis + 1:])
    summed = emit("sum", [split], axis=(axis + 1,), keepdims=False)
    return (emit("reshape", [summed], shape=x.shape),)


register(Op("repeat", COPY, _repeat_infer,
            lambda x, repeats, axis: np.repeat(x, repeats, axis), vjp=_repeat_vjp))


def view_base(node):
    """The node whose memory a chain of views reads."""
    while OPS[node.op].kind == VIEW:
        node = node.args[0]
    return node


def _leaf_infer(args, attrs):
    raise AssertionError("inputs and constants carry their own type")


register(Op("input", INPUT, _leaf_infer, None))
register(Op("const", CONST, _leaf_infer, None))


def returns_numpy_scalar(node):
    """True if eager NumPy holds a NumPy scalar (np.float64(1.0)), not a 0-d array, for this
    value: NumPy scalar arguments and constants, 0-d ufunc and reduction results, an index that
    takes one element, and scalars' astype."""
    if node.shape != () or node.weak:
        return False
    if node.op == "input":
        return bool(node.attrs.get("scalar"))
    if node.op == "const":
        return isinstance(node.attrs["value"], np.generic)
    if node.op == "astype":
        return returns_numpy_scalar(node.args[0])
    return OPS[node.op].ufunc is not None or OPS[node.op].kind == REDUCTION \
        or node.op in ("getitem", "take", "det") or node.op == "random" and node.attrs["scalar"]


SUPPORTED_KINDS = "biuf"


def check_dtype(dtype, what):
    dtype = np.dtype(dtype)
    if dtype.kind not in SUPPORTED_KINDS:
        raise UnsupportedError(f"{what} has dtype {dtype}; tracejit supports bool, integer and "
                               "float arrays")
    return dtype
