"""Creation: the *_like functions (recorded as the `full` op, which fuses) and np.zeros, ones,
full, empty, arange, linspace and eye with static arguments (trace-time constants)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_same, check_against_numpy

import tracejit as tj

F32 = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
I64 = np.arange(-5, 7, dtype=np.int64).reshape(4, 3)
BOOL = np.array([True, False, True])

LIKE = {
    "zeros_like": lambda x: np.zeros_like(x),
    "ones_like": lambda x: np.ones_like(x),
    "full_like": lambda x: np.full_like(x, 2.75),
    "full_like negative zero": lambda x: np.full_like(x, -0.0),
    "full_like nan": lambda x: np.full_like(x, np.nan, dtype=np.float64),
    "zeros_like dtype": lambda x: np.zeros_like(x, dtype=np.int32),
    "ones_like shape": lambda x: np.ones_like(x, shape=(2, 5)),
    "full_like dtype and shape": lambda x: np.full_like(x, 3, dtype=np.float32, shape=(7,)),
    "full_like bool": lambda x: np.full_like(x, True, dtype=bool),
    "ones_like of a view": lambda x: np.ones_like(x[::-1].T),
    "zeros_like 0-d": lambda x: np.zeros_like(x, shape=()),
}


@pytest.mark.parametrize("fn", LIKE.values(), ids=LIKE.keys())
@pytest.mark.parametrize("x", [F32, I64, BOOL], ids=["float32", "int64", "bool"])
def test_like_matches_numpy(fn, x):
    check_against_numpy(fn, x)


def test_full_like_casts_the_fill_value_like_numpy():
    check_against_numpy(lambda x: np.full_like(x, 2.7), I64)      # 2
    check_against_numpy(lambda x: np.full_like(x, -1.9), I64)     # -1
    check_against_numpy(lambda x: np.full_like(x, 0.5), BOOL)     # True


def test_full_like_with_a_traced_fill_value():
    check_against_numpy(lambda x, v: np.full_like(x, v), F32, 1.5)
    check_against_numpy(lambda x, v: np.full_like(x, v), I64, np.float32(-2.5))


def test_empty_like_is_zeros():
    result = tj.trace(lambda x: np.empty_like(x), fallback="raise")(F32)
    assert_same(result, np.zeros_like(F32))


def test_like_fuses_with_its_consumer():
    traced = check_against_numpy(lambda x: np.zeros_like(x) + x * 2 + np.ones_like(x), F32)
    assert len(traced.explain(F32).kernels) == 1


def test_accumulating_into_a_like_buffer():
    def f(x):
        acc = np.zeros_like(x)
        for k in range(3):
            acc += x * k
        return acc
    check_against_numpy(f, F32)
    check_against_numpy(f, I64)


# np.zeros & co. do not dispatch on proxies: with static arguments they run while tracing and
# become constants of the graph. Their dtypes are NumPy's own.
CONSTANTS = {
    "zeros": lambda x: np.zeros(3) + x[0, :3],
    "zeros int": lambda x: np.zeros((2, 4), dtype=int) + x[:2],
    "ones float32": lambda x: np.ones((3, 4), dtype=np.float32) * x,
    "full": lambda x: np.full(4, 1.5, dtype=np.float32) + x,
    "full int": lambda x: np.full(4, 7) * x,
    "arange": lambda x: np.arange(4) + x,
    "arange float": lambda x: np.arange(1, 2, 0.25) * x,
    "arange float32": lambda x: np.arange(4, dtype=np.float32) - x,
    "linspace": lambda x: np.linspace(0, 1, 4) + x,
    "linspace float32 no endpoint": lambda x: np.linspace(0, 1, 4, endpoint=False,
                                                          dtype=np.float32) + x,
    "eye": lambda x: np.eye(4)[:3] * x,
    "eye k int": lambda x: np.eye(3, 4, k=1, dtype=int) + x,
    "arange from the shape": lambda x: x * np.arange(x.shape[-1]),
    "returned as is": lambda x: (np.arange(5), np.zeros(2, dtype=np.float32), x + 1),
}


@pytest.mark.parametrize("fn", CONSTANTS.values(), ids=CONSTANTS.keys())
@pytest.mark.parametrize("x", [F32[:, :4], I64[:3, :].repeat(2, 1)[:, :4]],
                         ids=["float32", "int64"])
def test_creation_with_static_arguments(fn, x):
    check_against_numpy(fn, np.ascontiguousarray(x))


def test_np_empty_has_numpy_shape_and_dtype():
    result = tj.trace(lambda x: np.empty((2, 3), dtype=np.float32) * 0 + x, fallback="raise")(
        np.ones(3, dtype=np.float32))
    assert result.shape == (2, 3) and result.dtype == np.float32


def test_traced_size_in_creation_is_a_clear_error():
    traced = tj.trace(lambda x, n: x + np.arange(n[0]), fallback="raise")
    with pytest.raises(tj.TraceError, match=r"test_creation\.py:\d+"):
        traced(np.ones(3), np.array([3]))
    # a Python int argument used as a size is traced with its value
    traced = tj.trace(lambda x, n: x + np.arange(n), fallback="raise")
    assert_same(traced(np.ones(3), 3), np.ones(3) + np.arange(3))
    # a static size traces
    traced = tj.trace(lambda x, n: x + np.arange(n), fallback="raise", static_argnames="n")
    assert_same(traced(np.ones(3), 3), np.ones(3) + np.arange(3))
