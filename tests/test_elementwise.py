"""Elementwise ops: every supported ufunc, operator and dtype, checked against NumPy.

Each case traces a tiny function with ``fallback="raise"`` (so nothing silently runs eagerly)
and compares result type, dtype, shape and values with eager NumPy on the same inputs. Where
NumPy rejects a dtype (e.g. ``np.negative`` on bool) the traced function must raise too; those
cases carry ``numpy-rejects`` in their test id, computed by asking NumPy.

Arrays are small so that each (op, dtype) compiles one tiny kernel.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from conftest import (
    DTYPES,
    assert_same,
    check_against_numpy,
    dtype_id,
    graph_mentions_op,
    numpy_result,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tracejit as tj

nan, inf = math.nan, math.inf

# --------------------------------------------------------------------------------------------
# Input values per domain. Float inputs always get the IEEE specials appended (NaN, +-inf,
# +-0 and a negative number), so out-of-domain behaviour (NaN, inf) must match NumPy too.
# --------------------------------------------------------------------------------------------

FLOAT_SPECIALS = [nan, inf, -inf, 0.0, -0.0, -1.5]

FLOAT_DOMAINS = {
    "any": [-3.75, -2.5, -1.0, -0.5, 0.25, 0.5, 1.5, 2.5, 3.0, 7.125],
    "pos": [0.125, 0.5, 1.0, 1.5, 2.0, 3.75, 10.0, 1000.0],
    "unit": [-1.0, -0.99, -0.75, -0.5, -0.125, 0.25, 0.5, 0.875, 0.99, 1.0],
    "ge1": [1.0, 1.25, 2.0, 3.5, 10.0, 100.0],
    "gtm1": [-0.75, -0.5, -1e-3, 1e-8, 0.5, 2.0, 10.0],
    "exp": [-20.0, -3.5, -1.0, -1e-6, 1e-7, 0.5, 2.0, 10.0, 30.0],
    "trig": [-3.0, -1.2, -0.5, 0.1, 0.7, 1.2, 2.5, 6.0],
    "round": [-3.7, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.2, 0.49999997, 4.5, 1e10 + 0.5],
    "nonzero": [-3.75, -2.0, -0.5, 0.25, 1.0, 3.0, 7.0],
}

INT_DOMAINS = {
    "any": [-7, -3, -1, 0, 1, 2, 5, 100],
    "pos": [1, 2, 3, 4, 10, 100, 1000],
    "unit": [-1, 0, 1],
    "ge1": [1, 2, 3, 10, 100],
    "gtm1": [0, 1, 2, 10, 1000],
    "exp": [-5, -1, 0, 1, 2, 10],
    "trig": [-3, -1, 0, 1, 2, 6],
    "round": [-7, -3, -1, 0, 1, 2, 5, 100],
    "nonzero": [-7, -3, -1, 1, 2, 5, 100],
}

BOOL_VALUES = [True, False, True, True, False, False, True]


def unary_input(domain: str, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.array(FLOAT_DOMAINS[domain] + FLOAT_SPECIALS, dtype=dtype)
    if dtype.kind == "b":
        return np.array([True] * 5 if domain == "nonzero" else BOOL_VALUES, dtype=dtype)
    return np.array(INT_DOMAINS[domain], dtype=dtype)


# Binary inputs: pairs chosen to hit signed zeros, NaN in either operand, inf - inf, 0 ** 0,
# 1 ** nan, nan ** 0, negative ** fractional, floor division and remainder with negative
# operands and zero divisors (floats), equal pairs for comparisons.
FLOAT_A = [-3.75, -2.5, -1.0, -0.5, 0.0, 0.25, 1.5, 2.5, 7.125, nan, 1.0, nan, inf, inf, -inf,
           0.0, -0.0, 2.0, -8.0, 3.0]
FLOAT_B = [2.0, -1.5, 3.0, -0.5, 1.0, 0.25, -4.0, 2.5, -2.0, 1.0, nan, nan, inf, -inf, 3.0,
           0.0, 0.0, -0.0, 1.0 / 3.0, 0.0]
INT_A = [-7, -3, -1, 0, 1, 2, 5, 100, 6, -8, 3, 4]
INT_B = [2, -3, 4, 5, -1, 3, 2, 7, -4, 3, 3, 2]  # no zeros: see test_integer_division_by_zero
INT_EXPONENTS = [0, 1, 2, 3, 2, 1, 0, 2, 3, 1, 4, 5]  # NumPy rejects negative int exponents
BOOL_A = [True, False, True, False, True, True, False, False]
BOOL_B = [True, True, False, False, True, False, True, False]


def binary_inputs(domain: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.array(FLOAT_A, dtype=dtype), np.array(FLOAT_B, dtype=dtype)
    if dtype.kind == "b":
        b = [True] * len(BOOL_A) if domain == "div" else BOOL_B
        return np.array(BOOL_A, dtype=dtype), np.array(b, dtype=dtype)
    b = INT_EXPONENTS if domain == "pow" else INT_B
    return np.array(INT_A, dtype=dtype), np.array(b, dtype=dtype)


UNARY = [
    (np.negative, "any"),
    (np.positive, "any"),
    (np.absolute, "any"),
    (np.sign, "any"),
    (np.square, "any"),
    (np.sqrt, "pos"),
    (np.reciprocal, "nonzero"),
    (np.exp, "exp"),
    (np.exp2, "exp"),
    (np.expm1, "exp"),
    (np.log, "pos"),
    (np.log2, "pos"),
    (np.log10, "pos"),
    (np.log1p, "gtm1"),
    (np.sin, "trig"),
    (np.cos, "trig"),
    (np.tan, "trig"),
    (np.arcsin, "unit"),
    (np.arccos, "unit"),
    (np.arctan, "any"),
    (np.sinh, "exp"),
    (np.cosh, "exp"),
    (np.tanh, "exp"),
    (np.arcsinh, "any"),
    (np.arccosh, "ge1"),
    (np.arctanh, "unit"),
    (np.floor, "round"),
    (np.ceil, "round"),
    (np.trunc, "round"),
    (np.rint, "round"),
    (np.deg2rad, "any"),
    (np.radians, "any"),
    (np.rad2deg, "trig"),
    (np.degrees, "trig"),
    (np.isnan, "any"),
    (np.isinf, "any"),
    (np.isfinite, "any"),
    (np.logical_not, "any"),
    (np.invert, "any"),
]

BINARY = [
    (np.add, "any"),
    (np.subtract, "any"),
    (np.multiply, "any"),
    (np.true_divide, "div"),
    (np.floor_divide, "div"),
    (np.remainder, "div"),
    (np.power, "pow"),
    (np.arctan2, "any"),
    (np.maximum, "any"),
    (np.minimum, "any"),
    (np.fmax, "any"),
    (np.fmin, "any"),
    (np.hypot, "any"),
    (np.logaddexp, "any"),
    (np.logaddexp2, "any"),
    (np.logical_and, "any"),
    (np.logical_or, "any"),
    (np.logical_xor, "any"),
    (np.equal, "any"),
    (np.not_equal, "any"),
    (np.less, "any"),
    (np.less_equal, "any"),
    (np.greater, "any"),
    (np.greater_equal, "any"),
    (np.bitwise_and, "any"),
    (np.bitwise_or, "any"),
    (np.bitwise_xor, "any"),
]


def _accepts(fn, *args) -> bool:
    return numpy_result(fn, *args)[1] is None


def _case_id(name, dtype, accepted):
    return f"{name}-{dtype_id(dtype)}" + ("" if accepted else "-numpy-rejects")


def _unary_cases():
    for ufunc, domain in UNARY:
        for dtype in DTYPES:
            accepted = _accepts(ufunc, unary_input(domain, dtype))
            yield pytest.param(ufunc, domain, dtype, id=_case_id(ufunc.__name__, dtype, accepted))


def _binary_cases():
    for ufunc, domain in BINARY:
        for dtype in DTYPES:
            accepted = _accepts(ufunc, *binary_inputs(domain, dtype))
            yield pytest.param(ufunc, domain, dtype, id=_case_id(ufunc.__name__, dtype, accepted))


@pytest.mark.parametrize("ufunc, domain, dtype", list(_unary_cases()))
def test_unary_ufunc(ufunc, domain, dtype):
    def fn(a):
        return ufunc(a)

    check_against_numpy(fn, unary_input(domain, dtype))


@pytest.mark.parametrize("ufunc, domain, dtype", list(_binary_cases()))
def test_binary_ufunc(ufunc, domain, dtype):
    def fn(a, b):
        return ufunc(a, b)

    check_against_numpy(fn, *binary_inputs(domain, dtype))


def test_numpy_rejections_are_few():
    """The 'NumPy rejects' branch must stay an exception, not swallow whole ops."""
    rejected = [
        (ufunc.__name__, dtype_id(dtype))
        for ufunc, domain in UNARY
        for dtype in DTYPES
        if not _accepts(ufunc, unary_input(domain, dtype))
    ] + [
        (ufunc.__name__, dtype_id(dtype))
        for ufunc, domain in BINARY
        for dtype in DTYPES
        if not _accepts(ufunc, *binary_inputs(domain, dtype))
    ]
    for name, dtype in rejected:
        # NumPy only rejects arithmetic on bool and bitwise ops on floats
        assert dtype == "bool" or name in {"invert", "bitwise_and", "bitwise_or", "bitwise_xor"}
    assert len(rejected) <= 12, rejected


@pytest.mark.parametrize("ufunc", [np.floor_divide, np.remainder, np.true_divide],
                         ids=lambda u: u.__name__)
@pytest.mark.parametrize("dtype", [np.int32, np.int64], ids=dtype_id)
def test_integer_division_by_zero(ufunc, dtype):
    # NumPy gives 0 for integer // 0 and % 0 (with a RuntimeWarning), +-inf/nan for /.
    a = np.array([-7, 0, 5, 3, 9], dtype=dtype)
    b = np.array([0, 0, 0, 2, -2], dtype=dtype)

    def fn(a, b):
        return ufunc(a, b)

    check_against_numpy(fn, a, b)


# --------------------------------------------------------------------------------------------
# Python operators, including reflected ones with Python scalars on the left.
# --------------------------------------------------------------------------------------------

BINARY_OPERATORS = {
    "a+b": (lambda a, b: a + b, "any"),
    "a-b": (lambda a, b: a - b, "any"),
    "a*b": (lambda a, b: a * b, "any"),
    "a/b": (lambda a, b: a / b, "div"),
    "a//b": (lambda a, b: a // b, "div"),
    "a%b": (lambda a, b: a % b, "div"),
    "a**b": (lambda a, b: a**b, "pow"),
    "a&b": (lambda a, b: a & b, "any"),
    "a|b": (lambda a, b: a | b, "any"),
    "a^b": (lambda a, b: a ^ b, "any"),
    "a==b": (lambda a, b: a == b, "any"),
    "a!=b": (lambda a, b: a != b, "any"),
    "a<b": (lambda a, b: a < b, "any"),
    "a<=b": (lambda a, b: a <= b, "any"),
    "a>b": (lambda a, b: a > b, "any"),
    "a>=b": (lambda a, b: a >= b, "any"),
}

UNARY_OPERATORS = {
    "-a": lambda a: -a,
    "+a": lambda a: +a,
    "abs(a)": lambda a: abs(a),
    "~a": lambda a: ~a,
}

# Operators with a Python scalar on one side. "b" marks the cases whose array operand has to
# be a valid divisor/exponent, so it takes the second array of binary_inputs(domain).
SCALAR_OPERATORS = {
    "1.0-a": (lambda a: 1.0 - a, "any", "a"),
    "1+a": (lambda a: 1 + a, "any", "a"),
    "2*a": (lambda a: 2 * a, "any", "a"),
    "0.5*a": (lambda a: 0.5 * a, "any", "a"),
    "2**a": (lambda a: 2**a, "pow", "b"),
    "2.0**a": (lambda a: 2.0**a, "pow", "b"),
    "3/a": (lambda a: 3 / a, "div", "b"),
    "7//a": (lambda a: 7 // a, "div", "b"),
    "7%a": (lambda a: 7 % a, "div", "b"),
    "1&a": (lambda a: 1 & a, "any", "a"),
    "1|a": (lambda a: 1 | a, "any", "a"),
    "1^a": (lambda a: 1 ^ a, "any", "a"),
    "1<a": (lambda a: 1 < a, "any", "a"),
    "0.5==a": (lambda a: 0.5 == a, "any", "a"),
    "a-1.5": (lambda a: a - 1.5, "any", "a"),
    "a**2": (lambda a: a**2, "any", "a"),
    "a**0.5": (lambda a: a**0.5, "any", "a"),
    "a/2": (lambda a: a / 2, "any", "a"),
    "a//2": (lambda a: a // 2, "any", "a"),
    "a%3": (lambda a: a % 3, "any", "a"),
    "a>=1": (lambda a: a >= 1, "any", "a"),
}


def _operator_cases():
    for name, (fn, domain) in BINARY_OPERATORS.items():
        for dtype in DTYPES:
            accepted = _accepts(fn, *binary_inputs(domain, dtype))
            yield pytest.param(fn, binary_inputs(domain, dtype),
                               id=_case_id(name, dtype, accepted))
    for name, fn in UNARY_OPERATORS.items():
        for dtype in DTYPES:
            args = (unary_input("any", dtype),)
            yield pytest.param(fn, args, id=_case_id(name, dtype, _accepts(fn, *args)))
    for name, (fn, domain, side) in SCALAR_OPERATORS.items():
        for dtype in DTYPES:
            a, b = binary_inputs(domain, dtype)
            args = (a if side == "a" else b,)
            yield pytest.param(fn, args, id=_case_id(name, dtype, _accepts(fn, *args)))


@pytest.mark.parametrize("fn, args", list(_operator_cases()))
def test_operator(fn, args):
    check_against_numpy(fn, *args)


# --------------------------------------------------------------------------------------------
# astype, where, clip
# --------------------------------------------------------------------------------------------


def _astype_source(src, dst) -> np.ndarray:
    src, dst = np.dtype(src), np.dtype(dst)
    if src.kind == "f":
        values = [-2.75, -1.0, -0.0, 0.0, 0.5, 1.0, 2.5, 3.9, 100.25]
        if dst.kind in "fb":  # NaN/inf -> int is undefined in NumPy, so only for these
            values += [nan, inf, -inf]
        return np.array(values, dtype=src)
    if src.kind == "b":
        return np.array(BOOL_VALUES, dtype=src)
    values = [-5, -1, 0, 1, 2, 7, 1000]
    if src == np.int64:
        values += [2**31 + 5, -(2**40) - 3]  # wrap around on the way to int32
    return np.array(values, dtype=src)


@pytest.mark.parametrize("src", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("dst", DTYPES, ids=dtype_id)
def test_astype(src, dst):
    def fn(a):
        return a.astype(dst)

    check_against_numpy(fn, _astype_source(src, dst))


@pytest.mark.parametrize("spelling", ["float32", np.float32, np.dtype("float32"), "f4"],
                         ids=["str", "type", "dtype", "code"])
def test_astype_dtype_spellings(spelling):
    def fn(a):
        return a.astype(spelling) * 2

    check_against_numpy(fn, np.array([1, -2, 3, 40000], dtype=np.int64))


def test_astype_inside_expression():
    def fn(a):
        return (a > 0).astype(np.float32) * a + np.float32(1)

    check_against_numpy(fn, np.array([-1.5, 0.0, 2.0, nan, inf], dtype=np.float32))


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_where(dtype):
    a, b = binary_inputs("any", dtype)

    def fn(cond, a, b):
        return np.where(cond, a, b)

    cond = np.array([i % 3 == 0 for i in range(a.size)])
    check_against_numpy(fn, cond, a, b)


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: np.where(a > b, a, b),
        lambda a, b: np.where(a > 0, a, 0.0),
        lambda a, b: np.where(a > 0, 1, 0),
        lambda a, b: np.where(np.isnan(a), b, a * 2),
        lambda a, b: np.where(a > 0, a.astype(np.int32), b),
    ],
    ids=["max-like", "relu", "int-scalars", "nan-replace", "mixed-dtypes"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_where_variants(fn, dtype):
    check_against_numpy(fn, *binary_inputs("any", dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_clip(dtype):
    def fn(a):
        return np.clip(a, -1, 2)

    check_against_numpy(fn, unary_input("any", dtype))


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, lo, hi: np.clip(a, lo, hi),
        lambda a, lo, hi: a.clip(-1.0, 1.0),
        lambda a, lo, hi: np.clip(a, None, 0.5),
        lambda a, lo, hi: np.clip(a, -0.5, None),
        lambda a, lo, hi: np.clip(a * 2, lo, 1.0) + 1,
    ],
    ids=["array-bounds", "method", "upper-only", "lower-only", "in-expression"],
)
def test_clip_variants(fn):
    a = np.array(FLOAT_A)
    lo = np.linspace(-3, 0, a.size)
    hi = np.linspace(0.5, 4, a.size)
    check_against_numpy(fn, a, lo, hi)


@pytest.mark.parametrize("decimals", [0, 2, -1])
@pytest.mark.parametrize("dtype", DTYPES + (np.float16, np.uint8), ids=dtype_id)
def test_round(dtype, decimals):
    with np.errstate(over="ignore"):  # 1e10 is inf in float16
        a = unary_input("round", dtype) if np.dtype(dtype).kind != "u" else np.arange(
            0, 250, 7, dtype=dtype)
    if np.dtype(dtype).kind == "f":  # halfway cases
        a = np.concatenate([a, np.array([1.005, -2.675, 0.125, 15.0, 25.0], dtype)])
    if np.dtype(dtype).kind == "f":  # scaled by 100, it overflows to inf as in NumPy
        a = np.append(a, np.finfo(dtype).max / 10)
    check_against_numpy(lambda a: np.round(a, decimals), a)
    check_against_numpy(lambda a: a[::-2].round(decimals) * 1, a)


def test_round_of_an_int_is_a_copy():
    traced = check_against_numpy(lambda a: np.round(a), np.arange(4))
    a = np.arange(4)
    assert not np.shares_memory(traced(a), a)


ISCLOSE = {
    "default": lambda a, b: np.isclose(a, b),
    "tolerances": lambda a, b: np.isclose(a, b, rtol=0.1, atol=0.5),
    "equal_nan": lambda a, b: np.isclose(a, b, equal_nan=True),
    "scalar": lambda a, b: np.isclose(a, 2.5),
    "scalar first": lambda a, b: np.isclose(1, b),
    "0-d": lambda a, b: np.isclose(a[0], b[0]),
    "broadcast": lambda a, b: np.isclose(a[:, None], b[None, ::3]),
}


@pytest.mark.parametrize("fn", ISCLOSE.values(), ids=ISCLOSE.keys())
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.bool_], ids=dtype_id)
def test_isclose(fn, dtype):
    a, b = binary_inputs("any", dtype)
    check_against_numpy(fn, a, b)
    if np.dtype(dtype).kind == "f":
        check_against_numpy(fn, a, a + np.asarray(1e-6, dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64], ids=dtype_id)
def test_polyval_and_trapezoid(dtype):
    x = np.linspace(-2, 3, 12).astype(dtype)[::-1]
    coeffs = np.array([2, -3, 0, 1], dtype)
    check_against_numpy(lambda x: np.polyval([2.0, -3.0, 0.5, 1.0], x), x)
    check_against_numpy(lambda x: np.polyval([2, 1], x), x)
    check_against_numpy(lambda p, x: np.polyval(p, x), coeffs, x)
    check_against_numpy(lambda p, x: np.polyval(p, x), coeffs, x[:0])
    check_against_numpy(lambda p: np.polyval(p, 1.5), coeffs)
    check_against_numpy(lambda y, x: np.trapezoid(y, x), x * x, x)
    check_against_numpy(lambda y: np.trapezoid(y, dx=0.5), x)
    check_against_numpy(lambda y: np.trapezoid(y.reshape(3, 4), axis=0), x)
    check_against_numpy(lambda y, x: np.trapezoid(y.reshape(3, 4), x[:4], axis=-1), x, x)
    check_against_numpy(lambda y, x: np.trapezoid(y.reshape(4, 3), x.reshape(4, 3), axis=0),
                        x, x)
    check_against_numpy(lambda y: np.trapezoid(y[:1]), x)


# --------------------------------------------------------------------------------------------
# Shapes and layouts
# --------------------------------------------------------------------------------------------


def _mixed(a, b):
    return np.sin(a) * b + a / (1.0 + b * b)


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((3, 1), (4,)), ((2, 1, 5), (3, 5)), ((1,), (3, 4)), ((4, 1), (1, 4)), ((3, 4), ()),
     ((), (3, 4)), ((5,), (5,))],
    ids=str,
)
def test_broadcasting(shape_a, shape_b):
    rng = np.random.default_rng(0)
    a = np.asarray(rng.standard_normal(shape_a))
    b = np.asarray(rng.standard_normal(shape_b))
    check_against_numpy(_mixed, a, b)


def test_broadcasting_three_way_where():
    def fn(c, x, y):
        return np.where(c, x, y) + x

    c = np.array([[True], [False], [True]])
    x = np.arange(4.0)
    y = np.array(-1.5)
    check_against_numpy(fn, c, x, y)


def test_broadcast_mismatch_raises():
    def fn(a, b):
        return a + b

    traced = tj.trace(fallback="raise")(fn)
    with pytest.raises((tj.ShapeError, ValueError)):
        traced(np.ones(3), np.ones(4))


def test_zero_dim_arrays_give_numpy_scalars():
    def fn(a, b):
        return np.exp(a) * b - 1.0

    traced = check_against_numpy(fn, np.array(0.5), np.array(-2.0))
    out = traced(np.array(0.5), np.array(-2.0))
    assert isinstance(out, np.float64) and not isinstance(out, np.ndarray)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_], ids=dtype_id)
def test_zero_dim_other_dtypes(dtype):
    def fn(a, b):
        return (a + b, a == b, np.maximum(a, b))

    check_against_numpy(fn, np.array(1, dtype=dtype), np.array(0, dtype=dtype))


def test_zero_dim_broadcast_with_array():
    def fn(s, a):
        return a * s + s

    check_against_numpy(fn, np.array(3.0, dtype=np.float32), np.arange(6, dtype=np.float32))


@pytest.mark.parametrize(
    "shape_a, shape_b", [((0,), (0,)), ((3, 0), (3, 0)), ((3, 1), (0,)), ((0,), ())], ids=str
)
def test_empty_arrays(shape_a, shape_b):
    a = np.ones(shape_a)
    b = np.full(shape_b, 2.0)
    check_against_numpy(_mixed, a, b)


def test_empty_int_array():
    def fn(a):
        return (a * 2 + 1, a > 0)

    check_against_numpy(fn, np.zeros((0, 4), dtype=np.int32))


_BASE = np.arange(30.0).reshape(5, 6) * 0.37 - 4.0
_BASE_T = np.arange(30.0).reshape(6, 5) * 0.11 + 1.0
_VEC = np.linspace(-2.0, 3.0, 12)

LAYOUTS = {
    "c-contiguous": _BASE,
    "step-columns": _BASE[:, ::2],
    "transposed": _BASE_T.T,
    "negative-rows": _BASE[::-1],
    "negative-both": _BASE[::-1, ::-2],
    "fortran": np.asfortranarray(_BASE),
    "step-1d": _VEC[::3],
    "negative-1d": _VEC[::-1],
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layouts_unary_binary(name):
    a = LAYOUTS[name]
    # partner with the same shape but a different (C-contiguous) layout
    b = np.ascontiguousarray(np.cos(np.arange(a.size, dtype=np.float64)).reshape(a.shape))
    check_against_numpy(_mixed, a, b)


def test_layouts_both_views():
    def fn(a, b):
        return a * b - np.abs(a)

    check_against_numpy(fn, _BASE[:, ::2], _BASE_T.T[:, 1::2])


def test_view_of_int_array():
    base = np.arange(24, dtype=np.int32).reshape(4, 6)

    def fn(a):
        return a * 3 - (a % 4)

    check_against_numpy(fn, base[::-1, 1::2])


# --------------------------------------------------------------------------------------------
# NumPy 2 promotion with Python scalars and NumPy scalars
# --------------------------------------------------------------------------------------------

PROMOTION_CASES = [
    ("f32*0.5", lambda a: a * 0.5, np.float32, np.float32),
    ("f32+3", lambda a: a + 3, np.float32, np.float32),
    ("i32+1", lambda a: a + 1, np.int32, np.int32),
    ("i32*1.5", lambda a: a * 1.5, np.int32, np.float64),
    ("i64*1.5", lambda a: a * 1.5, np.int64, np.float64),
    ("i32/2", lambda a: a / 2, np.int32, np.float64),
    ("bool+1", lambda a: a + 1, np.bool_, np.int64),
    ("bool*0.5", lambda a: a * 0.5, np.bool_, np.float64),
    ("f32+np.float64", lambda a: a + np.float64(1.0), np.float32, np.float64),
    ("f32*np.float32", lambda a: a * np.float32(2.0), np.float32, np.float32),
    ("i32+np.int64", lambda a: a + np.int64(1), np.int32, np.int64),
    ("i32*np.float32", lambda a: a * np.float32(2.0), np.int32, np.float64),
    ("f32-True", lambda a: a - True, np.float32, np.float32),
]


@pytest.mark.parametrize("fn, dtype, expected_dtype", [c[1:] for c in PROMOTION_CASES],
                         ids=[c[0] for c in PROMOTION_CASES])
def test_scalar_promotion(fn, dtype, expected_dtype):
    a = np.array([1, 2, 3, 4, 5], dtype=dtype)
    traced = check_against_numpy(fn, a)
    assert traced is not None
    assert traced(a).dtype == np.dtype(expected_dtype)


@pytest.mark.parametrize(
    "dtype_a, dtype_b",
    [(np.int32, np.int64), (np.int32, np.float32), (np.int64, np.float32), (np.bool_, np.int32),
     (np.float32, np.float64), (np.bool_, np.float32)],
    ids=lambda d: dtype_id(d),
)
def test_mixed_array_dtypes(dtype_a, dtype_b):
    def fn(a, b):
        return (a + b, a * b, a / b, np.maximum(a, b))

    a = np.array([1, 0, 3, 1, 5], dtype=dtype_a)
    b = np.array([2, 1, 1, 4, 1], dtype=dtype_b)
    check_against_numpy(fn, a, b)


def test_python_int_out_of_range_raises_like_numpy():
    def fn(a):
        return a + 2**40

    a = np.arange(3, dtype=np.int32)
    with pytest.raises(OverflowError):
        fn(a)  # NumPy 2 refuses to cast the Python int to int32
    with pytest.raises(Exception):  # noqa: B017 - any error type is acceptable
        tj.trace(fallback="raise")(fn)(a)


@pytest.mark.parametrize(
    "scalar", [0.5, 2, True, np.float32(2.0), np.float64(0.25), np.int32(3), np.int64(-2)],
    ids=lambda s: f"{type(s).__name__}({s})",
)
@pytest.mark.parametrize("dtype", [np.float32, np.int32], ids=dtype_id)
def test_scalar_arguments(scalar, dtype):
    def fn(a, s):
        return a * s + s

    check_against_numpy(fn, np.array([1, -2, 3, 0, 7], dtype=dtype), scalar)


def test_python_scalar_argument_value_is_not_baked_in():
    def fn(a, s):
        return a * s

    a = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    traced = tj.trace(fallback="raise")(fn)
    assert_same(traced(a, 0.5), fn(a, 0.5))
    assert_same(traced(a, 4.0), fn(a, 4.0))  # same signature: cache hit, new value used
    assert_same(traced(a, -1.25), fn(a, -1.25))
    assert traced.cache_info().traces == 1
    assert traced.cache_info().hits == 2


def test_numpy_scalar_arguments_only():
    def fn(x, y):
        return np.sqrt(x * x + y * y) - x

    check_against_numpy(fn, np.float64(3.0), np.float64(4.0))
    check_against_numpy(fn, np.float32(3.0), np.float32(4.0))


def test_numpy_scalar_with_array():
    def fn(s, a):
        return np.exp(a) * s

    check_against_numpy(fn, np.float32(2.0), np.linspace(-1, 1, 7, dtype=np.float32))


@pytest.mark.parametrize(
    "fn",
    [
        lambda a: np.float32(2.0) * a,
        lambda a: np.float64(1.0) - a,
        lambda a: np.int32(3) + a,
        lambda a: a / np.float32(4.0),
        lambda a: np.float32(0.5) < a,
    ],
    ids=["f32*a", "f64-a", "i32+a", "a/f32", "f32<a"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.int32], ids=dtype_id)
def test_numpy_scalar_operands(fn, dtype):
    check_against_numpy(fn, np.array([1, -2, 3, 0, 7], dtype=dtype))


@pytest.mark.parametrize("dtype", [np.int32, np.int64], ids=dtype_id)
def test_integer_overflow_wraps_like_numpy(dtype):
    info = np.iinfo(dtype)

    def fn(a, b):
        return a * b, a + a, -a, np.abs(a)

    a = np.array([info.max, info.min, info.max // 2 + 7, -3], dtype=dtype)
    b = np.array([4, 3, 5, info.max], dtype=dtype)
    check_against_numpy(fn, a, b)


# --------------------------------------------------------------------------------------------
# Multiple outputs
# --------------------------------------------------------------------------------------------


def test_tuple_outputs():
    def fn(a, b):
        return a + b, a * b, np.sin(a)

    check_against_numpy(fn, np.linspace(-1, 1, 7), np.linspace(2, 3, 7))


def test_single_element_tuple_output():
    def fn(a):
        return (a * 2.0,)

    check_against_numpy(fn, np.linspace(-1, 1, 7))


def test_list_outputs():
    def fn(a, b):
        return [np.exp(a), a > b, (a - b).astype(np.int64)]

    check_against_numpy(fn, np.linspace(-1, 1, 7), np.linspace(1, -1, 7))


def test_dict_outputs():
    def fn(a, b):
        return {"sum": a + b, "diff": a - b, "max": np.maximum(a, b)}

    check_against_numpy(fn, np.arange(5.0), np.full(5, 2.5))


def test_nested_outputs():
    def fn(a, b):
        s = a + b
        return {"pair": (s, s * 2.0), "list": [np.abs(a)]}, b - 1.0

    check_against_numpy(fn, np.linspace(-1, 1, 7), np.linspace(2, 3, 7))


def test_outputs_of_different_shapes_and_dtypes():
    def fn(a, b):
        return a * 2.0, a + b, b > 0, (b * 3).astype(np.int32)

    check_against_numpy(fn, np.linspace(-1, 1, 3).reshape(3, 1), np.linspace(-2, 2, 4))


def test_same_value_returned_twice():
    def fn(a):
        c = np.exp(a) - 1.0
        return c, c

    traced = check_against_numpy(fn, np.linspace(-1, 1, 7))
    x, y = traced(np.linspace(-1, 1, 7))
    assert_same(x, y)


# --------------------------------------------------------------------------------------------
# Fusion
# --------------------------------------------------------------------------------------------


def long_chain(a, b, c):
    return np.exp(-a * a) * np.sin(b) + np.sqrt(np.abs(c)) * 0.5 - a / (1.0 + b * b)


LONG_CHAIN_OPS = sorted(
    ["negative", "multiply", "exp", "sin", "multiply", "absolute", "sqrt", "multiply", "add",
     "multiply", "add", "divide", "subtract"]
)


def _chain_inputs(dtype=np.float64):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 5)).astype(dtype)
    b = rng.standard_normal((3, 5)).astype(dtype)
    c = rng.standard_normal((3, 5)).astype(dtype)
    c[0, 0] = -0.0
    a[1, 2] = nan
    return a, b, c


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_long_chain_matches_numpy(dtype, fuse):
    check_against_numpy(long_chain, *_chain_inputs(dtype), fuse=fuse)


def test_long_chain_is_one_kernel_when_fused():
    traced = tj.trace(fuse=True, fallback="raise")(long_chain)
    explain = traced.explain(*_chain_inputs())
    assert len(explain.kernels) == 1, str(explain)
    assert sorted(explain.kernels[0].ops) == LONG_CHAIN_OPS, explain.kernels[0].ops
    source = explain.kernels[0].source
    assert isinstance(source, str) and source.strip()


def test_long_chain_is_one_kernel_per_op_when_unfused():
    traced = tj.trace(fuse=False, fallback="raise")(long_chain)
    explain = traced.explain(*_chain_inputs())
    assert len(explain.kernels) == len(LONG_CHAIN_OPS), str(explain)
    for kernel in explain.kernels:
        assert len(kernel.ops) == 1, kernel.ops
    assert sorted(k.ops[0] for k in explain.kernels) == LONG_CHAIN_OPS


def test_fused_and_unfused_agree():
    args = _chain_inputs()
    fused = tj.trace(fuse=True, fallback="raise")(long_chain)(*args)
    unfused = tj.trace(fuse=False, fallback="raise")(long_chain)(*args)
    assert_same(fused, unfused)
    assert_same(fused, long_chain(*args))


def test_broadcast_chain_fuses_into_one_kernel():
    def fn(a, b):
        return np.tanh(a * b + 1.0) - b

    traced = tj.trace(fallback="raise")(fn)
    a, b = np.linspace(-1, 1, 3).reshape(3, 1), np.linspace(0, 2, 4)
    assert_same(traced(a, b), fn(a, b))
    explain = traced.explain(a, b)
    assert len(explain.kernels) == 1, str(explain)
    assert sorted(explain.kernels[0].ops) == ["add", "multiply", "subtract", "tanh"]


def test_independent_results_that_share_an_input_are_one_kernel():
    def fn(a, b, c):
        return a - c, a * b, np.sin(b)

    traced = tj.trace(fallback="raise")(fn)
    a, b, c = (np.linspace(k, 3, 12).reshape(3, 4) for k in (-1, 0, 1))
    assert_same(traced(a, b, c), fn(a, b, c))
    (kernel,) = traced.explain(a, b, c).kernels
    assert sorted(kernel.ops) == ["multiply", "sin", "subtract"]
    assert len(kernel.kernel.outputs) == 3


def test_siblings_stay_apart_when_shapes_differ_or_one_feeds_the_other():
    def fn(a, row):
        s = a + 1.0  # shape (3, 4)
        t = row * 2.0  # shape (4,): another iteration shape
        u = a * s.T.sum(axis=1)  # reads a and, through a host view, s
        return s, t, u

    traced = tj.trace(fallback="raise")(fn)
    a, row = np.linspace(0, 1, 12).reshape(3, 4), np.linspace(1, 2, 4)
    assert_same(traced(a, row), fn(a, row))
    for kernel in traced.explain(a, row).kernels:
        assert not {"add", "multiply"} <= set(kernel.ops) or kernel.kernel.kind != "elementwise"


# --------------------------------------------------------------------------------------------
# IR op names are NumPy's ufunc names
# --------------------------------------------------------------------------------------------


def _unary_fn(ufunc):
    def fn(a, b):
        return ufunc(a)

    return fn


def _binary_fn(ufunc):
    def fn(a, b):
        return ufunc(a, b)

    return fn


def _op_name_cases():
    for ufunc, _domain in UNARY:
        dtype = np.int64 if ufunc is np.invert else np.float64
        yield pytest.param(_unary_fn(ufunc), ufunc.__name__, dtype, id=ufunc.__name__)
    for ufunc, _domain in BINARY:
        dtype = np.int64 if ufunc.__name__.startswith("bitwise") else np.float64
        yield pytest.param(_binary_fn(ufunc), ufunc.__name__, dtype, id=ufunc.__name__)
    extra = [
        ("a-b", lambda a, b: a - b, "subtract", np.float64),
        ("a/b", lambda a, b: a / b, "divide", np.float64),
        ("a**b", lambda a, b: a**b, "power", np.float64),
        ("a%b", lambda a, b: a % b, "remainder", np.float64),
        ("-a", lambda a, b: -a, "negative", np.float64),
        ("abs", lambda a, b: abs(a), "absolute", np.float64),
        ("~a", lambda a, b: ~a, "invert", np.int64),
        ("a<b", lambda a, b: a < b, "less", np.float64),
        ("astype", lambda a, b: a.astype(np.float32), "astype", np.float64),
        ("where", lambda a, b: np.where(a > b, a, b), "where", np.float64),
        ("clip", lambda a, b: np.clip(a, -1.0, 1.0), "clip", np.float64),
    ]
    for case_id, fn, name, dtype in extra:
        yield pytest.param(fn, name, dtype, id=case_id)


@pytest.mark.parametrize("fn, name, dtype", list(_op_name_cases()))
def test_ir_op_names(fn, name, dtype):
    a = np.linspace(0.1, 0.9, 4).astype(dtype) if dtype != np.int64 else np.arange(1, 5)
    b = (a[::-1] + 1).astype(dtype)
    traced = tj.trace(fallback="raise")(fn)
    graph = traced.graph(a, b)
    assert graph_mentions_op(graph, name), f"op {name!r} not found in:\n{graph}"


# --------------------------------------------------------------------------------------------
# Property test: random shapes and values for one fused expression
# --------------------------------------------------------------------------------------------

_expr_traced = tj.trace(fallback="raise")(
    lambda a, b: np.where(a > b, np.exp(-a * a), np.tanh(b) * 0.5) + np.maximum(a, b)
)


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=6),
)
def test_random_inputs_fused_expression(data, shape):
    elements = st.one_of(st.floats(-50, 50), st.sampled_from([nan, inf, -inf, -0.0]))
    a = data.draw(hnp.arrays(np.float64, shape, elements=elements))
    b = data.draw(hnp.arrays(np.float64, shape, elements=elements))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.where(a > b, np.exp(-a * a), np.tanh(b) * 0.5) + np.maximum(a, b)
        result = _expr_traced(a, b)
    assert_same(result, expected)


def test_float32_exp_within_3_ulp_over_the_whole_range():
    # the kernel's own vectorisable float32 exp (not libm's): a sweep of every 4099th bit
    # pattern covers overflow, underflow to subnormals and zero, NaN and inf
    x = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = np.concatenate([x, np.float32([-np.inf, np.inf, np.nan, 88.72283, 88.72284, -103.97,
                                       -87.33655, 1e-30, -0.0])])
    got = tj.trace(np.exp, fallback="raise")(x)
    with np.errstate(all="ignore"):
        want = np.exp(x.astype(np.float64))
        want32 = want.astype(np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want32))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want32))
    finite = np.isfinite(want32)
    ulp = np.spacing(want32[finite]).astype(np.float64)
    assert np.max(np.abs(got[finite] - want[finite]) / ulp) <= 3
    assert got[-9:-6].tolist()[:2] == [0.0, np.inf]


STREAMED = [
    (lambda a, b, c: a * b + c, np.float64),
    (lambda a, b, c: (a * b + c, a * b - c), np.float64),  # two outputs
    (lambda a, b, c: a * b - c, np.int64),
    (lambda a, b, c: (a + b) * c, np.float32),
]


@pytest.mark.parametrize("fn, dtype", STREAMED)
def test_outputs_past_the_cache_are_streamed(fn, dtype, monkeypatch):
    # non-temporal stores for big, cheap kernels: lower the size threshold so small arrays
    # take that path; sizes around it and around the chunk size, checked against NumPy
    from tracejit.backends import cpu
    monkeypatch.setattr(cpu, "STREAM_BYTES", 1 << 14)
    traced = tj.trace(fn, fallback="raise", parallel=True)
    for n in (5, 300, cpu.CHUNK, 2 * cpu.CHUNK + 77):
        a, b, c = (np.arange(n, dtype=dtype) % 13 + k for k in (1, 2, 3))
        assert_same(traced(a, b, c), fn(a, b, c))
    (k,) = traced.explain(a, b, c).kernels
    assert "_stream(" in k.source and "_store_fence()" in k.source
    assert "out0_f.ctypes.data != x0_f.ctypes.data" in k.source  # never when in place


def test_streamed_kernels_run_in_place(monkeypatch):
    from tracejit.backends import cpu
    monkeypatch.setattr(cpu, "STREAM_BYTES", 1 << 14)
    fn = lambda a, b, c, d: a * b + c * d - a  # noqa: E731
    traced = tj.trace(fn, fallback="raise", parallel=True, fuse=False)
    a, b, c, d = (np.linspace(k, 5, 40_000) for k in range(4))
    assert_same(traced(a, b, c, d), fn(a, b, c, d))
    assert traced.explain(a, b, c, d).memory.in_place


@pytest.mark.parametrize("fn", [lambda a, b, c: a * b > c,  # a bool output
                                lambda a, b, c: np.exp(a) * b + c,  # too costly per element
                                lambda a, b, c: a + 1.0])  # 8 bytes per float32 element
def test_only_cheap_non_bool_outputs_are_streamed(fn, monkeypatch):
    from tracejit.backends import cpu
    monkeypatch.setattr(cpu, "STREAM_BYTES", 1 << 14)
    a = np.linspace(0, 1, 5000, dtype=np.float32)
    traced = tj.trace(fn, fallback="raise", parallel=True)
    assert_same(traced(a, a, a), fn(a, a, a))
    (k,) = traced.explain(a, a, a).kernels
    assert "_stream(" not in k.source


def test_float16_ops_round_like_numpy():
    # NumPy computes each float16 op in float32 and rounds to float16; kernels do the same, so
    # arithmetic on every float16 value (subnormals, overflow to inf, NaN) matches bit for bit
    x = np.arange(2**16, dtype=np.uint16).view(np.float16)
    y = x[::-1].copy()

    def fn(a, b):
        return (a * b + a / b - np.sqrt(np.abs(a))) * np.float16(0.1) + a * a * a, a // b, a % b

    with np.errstate(all="ignore"):
        want = fn(x, y)
        got = tj.trace(fn, fallback="raise")(x, y)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype == np.float16
        np.testing.assert_array_equal(g.view(np.uint16)[~np.isnan(w)],
                                      w.view(np.uint16)[~np.isnan(w)])
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))


def _layouts(order, arrays):
    if order == "F":
        return [np.asfortranarray(x) for x in arrays]
    if order == "transposed":  # C-contiguous arrays read through .T
        return [np.ascontiguousarray(x.T).T for x in arrays]
    # F, C and a reversed view, in one call
    return [np.asfortranarray(arrays[0]), arrays[1], arrays[2][:, ::-1]]


@pytest.mark.parametrize("order", ["F", "transposed", "mixed"])
def test_strided_loops_follow_the_arrays_memory_order(order):
    # 2-d kernels loop in C order, F order or tiles (partial tiles: 67 x 45), chosen at run time
    rng = np.random.default_rng(3)
    args = _layouts(order, [rng.standard_normal((67, 45)) for _ in range(3)])

    def fn(a, b, c):
        return a * b + np.abs(c) - a[:1] * 0.5, (b > c)

    f = tj.trace(fn, parallel=True, fallback="raise")  # the serial loops differ in range only
    got = f(*args)
    for g, want in zip(got, fn(*args)):
        assert g.dtype == want.dtype and g.shape == want.shape
        np.testing.assert_allclose(g, want, rtol=1e-13, atol=1e-15)
    # element for element the same code as on C-ordered copies: bit-identical results
    same = f(*[np.ascontiguousarray(x) for x in args])
    for g, c in zip(got, same):
        np.testing.assert_array_equal(g, c)
