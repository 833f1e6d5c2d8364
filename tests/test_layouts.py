"""Results in the inputs' memory order: elementwise results of F-ordered operands (arguments,
transposes) are F-contiguous, as NumPy's ufuncs give them (order='K'), with values, dtype and
shape as NumPy's; mixed C and F operands give C, as in NumPy. memory.fortran_values states the
rule; where NumPy's order is not that simple (a strided or reversed operand, F 3-d with C 2-d)
only values are compared. Most tests trace `fma` so that they share its compiled kernels."""

import os

import numpy as np
import pytest
from conftest import array_leaves, check_against_numpy

import tracejit as tj
from tracejit.backends.cpu import PARALLEL_WORK
from tracejit.kernels import CONTIGUOUS, FORTRAN, STRIDED, array_layout

SLOW = (pytest.mark.slow, pytest.mark.skipif(not os.environ.get("TRACEJIT_SLOW"),
                                             reason="set TRACEJIT_SLOW=1"))


def fortran(shape, dtype=np.float64, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    return np.asfortranarray(x > 0 if dtype == np.bool_ else x.astype(dtype))


def check_layout(fn, *args, **options):
    """check_against_numpy, then the layout of each array result of a cached call, C- and
    F-contiguous flags both, against NumPy's."""
    traced = check_against_numpy(fn, *args, **options)
    with np.errstate(all="ignore"):
        expected = fn(*args)
        result = traced(*args)
    for r, e in zip(array_leaves(result), array_leaves(expected), strict=True):
        assert (r.flags.c_contiguous, r.flags.f_contiguous) == \
            (e.flags.c_contiguous, e.flags.f_contiguous), (r.strides, e.strides)
    return traced, result


def fma(a, b, c):
    return a * b + c


@pytest.mark.parametrize("dtype", [np.float64] + [  # bool: also in the parallel test
    pytest.param(d, marks=SLOW) for d in (np.float32, np.int64, np.bool_)],
    ids=lambda d: np.dtype(d).name)
def test_f_ordered_arguments_give_an_f_ordered_result(dtype):
    _, result = check_layout(fma, *(fortran((37, 23), dtype, seed) for seed in range(3)))
    assert result.flags.f_contiguous and not result.flags.c_contiguous


def test_transposed_arguments_and_transposes_inside():
    x, y, z = (np.ascontiguousarray(fortran((23, 37), seed=s)) for s in range(3))
    _, result = check_layout(fma, x.T, y.T, z.T)  # F-contiguous arguments
    assert result.flags.f_contiguous
    _, result = check_layout(lambda a, b, c: a.T * b.T + c.T, x, y, z)  # transposed inside
    assert result.flags.f_contiguous
    _, result = check_layout(lambda a, b, c: (a.T * b.T + c).T, x, y, z.T)  # and back to C
    assert result.flags.c_contiguous


def test_copies_are_c_ordered():
    """`x.copy()` and `np.ascontiguousarray` give C-contiguous arrays, as NumPy's do."""
    f = fortran((31, 29))
    _, result = check_layout(lambda a: a.copy(), f)
    assert result.flags.c_contiguous
    _, result = check_layout(lambda a: np.ascontiguousarray(a), f)
    assert result.flags.c_contiguous
    c = np.ascontiguousarray(f)
    _, result = check_layout(lambda a: np.ascontiguousarray(a.T), c)
    assert result.flags.c_contiguous


def test_mixed_c_and_f_operands_give_c():
    f = fortran((31, 29))
    c = np.ascontiguousarray(f)
    traced, result = check_layout(fma, f, c, f)
    assert result.flags.c_contiguous
    # each argument order is its own signature, with its own result layout
    assert traced(f, f, f).flags.f_contiguous and traced.cache_info().traces == 2


def test_broadcast_rows_columns_and_scalars_keep_f_order():
    a = fortran((40, 30))
    row, col = np.linspace(-1, 1, 30), np.linspace(0, 2, 40)[:, None]
    _, result = check_layout(lambda a, r, c: a * r + c * 2.0 - np.float32(1.5), a, row, col)
    assert result.flags.f_contiguous


def test_three_d_f_order_with_a_broadcast_f_operand():
    a, b, m = fortran((6, 7, 8)), fortran((6, 7, 8), seed=1), fortran((7, 8), seed=2)
    _, result = check_layout(fma, a, b, m)  # an F-ordered 2-d operand: NumPy keeps F
    assert result.flags.f_contiguous


@pytest.mark.parametrize("view", ["reversed rows", "every other column", "C reversed"])
def test_negative_strides_and_strided_views(view):
    a = fortran((30, 20))
    x = {"reversed rows": a[::-1], "every other column": a[:, ::-2],
         "C reversed": np.ascontiguousarray(a)[::-1, ::-1]}[view]
    assert array_layout(x) == STRIDED
    f = fortran(x.shape, seed=1)
    traced = check_against_numpy(fma, f, x, f)
    assert traced(f, x, f).flags.c_contiguous  # any strides: C order, as before


def test_unfused_intermediates_are_stored_in_f_order():
    """One kernel per op: F-ordered intermediates live in the arena in F order, and kernels
    write over them in place in that order."""
    a, b, c = (fortran((50, 40), seed=s) for s in range(3))
    traced, result = check_layout(lambda a, b, c: a * b + (a * b) * c, a, b, c, fuse=False)
    assert result.flags.f_contiguous
    memory = traced.explain(a, b, c).memory
    assert memory.arena_bytes and all(v in memory.fortran for b in memory.storage
                                      for v in b.values)


def test_f_order_on_the_parallel_path():
    n = 1024
    assert n * n * 2 >= PARALLEL_WORK  # a * b + c costs 2 per element
    # bool: no streaming stores, so one parallel loop to compile; forced, as 4 MB of bool is
    # too little memory traffic for the backend to pick threads
    args = [fortran((n, n), np.bool_, seed=s) for s in range(3)]
    traced, result = check_layout(fma, *args, parallel=True)
    assert result.flags.f_contiguous and "prange" in str(traced.explain(*args))


@pytest.mark.parametrize("case", [pytest.param(c, marks=SLOW) for c in (
    "broadcast, parallel", "reduction, unfused", "F 3-d, C 2-d")])
def test_slow_layout_cases(case):
    n = 1024
    if case == "broadcast, parallel":  # the loop nest in F order, not the flat loop
        _, result = check_layout(fma, fortran((n, n)), np.linspace(0, 1, n), fortran((n, n)))
        assert result.flags.f_contiguous
    elif case == "reduction, unfused":  # a reduction reads an F-ordered value by its strides
        _, result = check_layout(lambda a, b: np.sin(a) * b - (np.sin(a) * b).sum(axis=0),
                                 fortran((50, 40)), fortran((50, 40), seed=1), fuse=False)
        assert result.flags.f_contiguous
    else:  # NumPy gives neither order: values only
        a, m = fortran((6, 7, 8)), np.ascontiguousarray(fortran((7, 8), seed=1))
        assert check_against_numpy(fma, a, a, m)(a, a, m).flags.c_contiguous


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TRACEJIT_SLOW"), reason="set TRACEJIT_SLOW=1")
def test_float16_f_ordered():
    _, result = check_layout(fma, *(fortran((20, 30), np.float16, s) for s in range(3)))
    assert result.dtype == np.float16 and result.flags.f_contiguous


def test_in_place_update_of_an_f_ordered_argument():
    """`x += y` on an F-contiguous argument is computed straight into it (no copy back)."""
    def update(x, y):
        x += y * 2.0
        x -= 1.0

    x, y = fortran((33, 21)), fortran((33, 21), seed=1)
    traced = tj.trace(update, fallback="raise")
    for _ in range(2):
        expected = x + y * 2.0 - 1.0
        traced(x, y)
        np.testing.assert_allclose(x, expected, rtol=1e-12)
        assert x.flags.f_contiguous
    assert "copyto" not in traced.explain(x, y).executable.source


def test_memory_plan_names_f_ordered_buffers():
    a = fortran((20, 30))
    assert "(F order)" in str(tj.trace(fma).explain(a, a, a))


def test_layout_classes():
    assert array_layout(np.ones((3, 4))) == CONTIGUOUS
    assert array_layout(np.ones((3, 4), order="F")) == FORTRAN
    assert array_layout(np.ones((1, 4), order="F")) == CONTIGUOUS  # both orders: C
    assert array_layout(np.ones((3, 4))[:, ::2]) == STRIDED


CAPTURED = None


def test_captured_array_rebound_to_another_layout_retraces():
    global CAPTURED
    CAPTURED = fortran((12, 10))
    traced = tj.trace(lambda x, y: x * CAPTURED + y, fallback="raise")
    x = fortran((12, 10), seed=1)
    assert traced(x, x).flags.f_contiguous
    CAPTURED = fortran((24, 10), seed=2)[::2]  # strided now, same shape and dtype
    assert array_layout(CAPTURED) == STRIDED
    np.testing.assert_allclose(traced(x, x), x * CAPTURED + x, rtol=1e-12)
    assert traced.cache_info().traces == 2
