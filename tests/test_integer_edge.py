"""Integer arithmetic at its edges, as NumPy computes it: MIN // -1 wraps to MIN, x // 0 and
x % 0 give 0, and a negative integer power raises ValueError (reported by the kernel through
its error flag). Serial and parallel kernels, elementwise and inside reductions."""

import numpy as np
import pytest
from conftest import check_against_numpy

import tracejit as tj

INTS = [np.int64, np.int32, np.uint64]
PARALLEL = pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])


def edge_pairs(dtype):
    """Every pair of the dtype's edge values: MIN, MAX, 0, +-1 and a few others."""
    info = np.iinfo(dtype)
    vals = np.array(sorted({info.min, info.max, 0, 1, 2, 7, info.max - 1}
                           | ({-1, -2, -7, info.min + 1} if info.min else set())), dtype)
    a, b = np.meshgrid(vals, vals)
    return a.ravel().copy(), b.ravel().copy()


@PARALLEL
@pytest.mark.parametrize("dtype", INTS, ids=lambda d: np.dtype(d).name)
def test_floor_divide_and_remainder(dtype, parallel):
    a, b = edge_pairs(dtype)
    check_against_numpy(lambda a, b: (a // b, a % b, divmod(a, b), np.sum(a // b)), a, b,
                        parallel=parallel)


@PARALLEL
def test_constant_divisors_minus_one_and_zero(parallel):
    for dtype in (np.int64, np.int32):
        a = np.array([np.iinfo(dtype).min, 5, -5, 0], dtype)
        check_against_numpy(lambda a: (a // -1, a % -1, a // 0, a % 0), a, parallel=parallel)
    with np.errstate(all="ignore"):
        f = tj.trace(lambda a: a // -1, parallel=parallel)
        assert f(np.array([np.iinfo(np.int64).min]))[0] == np.iinfo(np.int64).min


@PARALLEL
@pytest.mark.parametrize("dtype", [np.int64, np.int32], ids=lambda d: np.dtype(d).name)
def test_negative_integer_power_raises(dtype, parallel):
    a = np.arange(-3, 5, dtype=dtype)
    f = tj.trace(lambda a, b: (a ** b, np.sum(a ** b)), fallback="raise", parallel=parallel)
    b = np.abs(a)
    check_against_numpy(lambda a, b: (a ** b, np.sum(a ** b)), a, b, parallel=parallel)
    b[5] = -1
    with pytest.raises(ValueError, match="Integers to negative integer powers are not allowed"):
        f(a, b)
    # the flag belongs to one call: the next call with valid exponents succeeds
    np.testing.assert_array_equal(f(a, np.abs(b))[0], a ** np.abs(b))
    check_against_numpy(lambda a, b: a ** b, a, b, parallel=parallel)  # NumPy raises too


@PARALLEL
def test_negative_power_of_a_scalar_and_in_row_kernels(parallel):
    a = np.arange(1, 13, dtype=np.int64).reshape(3, 4)
    for fn in (lambda a: a ** -1, lambda a: (a ** (a - 5)).sum(axis=1),
               lambda a: (a ** (a - 5)).max(axis=0), lambda a: a - (a ** (a - 2)).sum(axis=1,
                                                                                  keepdims=True)):
        check_against_numpy(fn, a, parallel=parallel)  # NumPy raises: so must the kernel
    check_against_numpy(lambda a, k: (a ** k, (a ** (a - 1)).sum(axis=1)), a, 3,
                        parallel=parallel)
    check_against_numpy(lambda a, k: a ** k, a, -2, parallel=parallel)
    empty = np.zeros(0, np.int64)
    check_against_numpy(lambda a: a ** -1, empty, parallel=parallel)  # no element: no error


def test_powers_that_cannot_be_negative_are_not_checked():
    a = np.arange(5, dtype=np.int64)
    for fn, args in [(lambda a: a ** 3, (a,)), (lambda a, b: a ** b, (a, a.astype(np.uint8))),
                     (lambda a, b: a ** b, (a, a > 2))]:
        check_against_numpy(fn, *args)
        (k,) = tj.trace(fn).explain(*args).kernels
        assert "_err" not in k.source
    (k,) = tj.trace(lambda a, b: a ** b).explain(a, a).kernels
    assert "_ipow_checked" in k.source


def test_float_power_has_no_error_flag():
    x = np.linspace(0.5, 2, 7)
    (k,) = tj.trace(lambda a, b: a ** b * 2).explain(x, -x).kernels
    assert "_err" not in k.source
    check_against_numpy(lambda a, b: a ** b * 2, x, -x)
