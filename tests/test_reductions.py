"""Reductions against NumPy: values, dtypes, shapes, every axis/keepdims combination on small
shapes, the function and method spellings, errors, and how reductions fuse (explain()).

Float32 sums accumulate in float64 inside kernels while NumPy sums float32 pairwise, so float32
results are compared with rtol 1e-5 instead of the default 1e-6.
"""

import itertools
import os

import numpy as np
import pytest
from conftest import DTYPES, assert_same, check_against_numpy, dtype_id

import tracejit as tj
from tracejit.interpret import interpret

F32_RTOL = 1e-5


def rtol_for(*arrays):
    return F32_RTOL if any(np.asarray(a).dtype == np.float32 for a in arrays) else None


def sample(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        return rng.integers(-5, 6, shape).astype(dtype)
    return (rng.standard_normal(shape) * 3).astype(dtype)


def axes_of(ndim):
    singles = list(range(-1, ndim))
    pairs = [tuple(p) for p in itertools.combinations(range(ndim), 2)]
    return [None] + singles + pairs + ([tuple(range(ndim))] if ndim > 2 else [])


AXIS_CASES = [((3, 4), ax) for ax in axes_of(2)] + [((2, 3, 4), ax) for ax in axes_of(3)]


def kernels(fn, *args, **options):
    return tj.trace(fallback="raise", **options)(fn).explain(*args).kernels


# ---------------------------------------------------------------------------------------------
# every axis and keepdims combination

@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape,axis", AXIS_CASES, ids=str)
@pytest.mark.parametrize("name", ["sum", "max", "mean"])
def test_axis_keepdims(name, shape, axis, keepdims):
    x = sample(shape, np.float64)
    check_against_numpy(lambda a: getattr(np, name)(a, axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", axes_of(3), ids=str)
def test_int32_sum_axes_gives_int64(axis, keepdims):
    x = sample((2, 3, 4), np.int32)
    traced = check_against_numpy(lambda a: a.sum(axis=axis, keepdims=keepdims), x)
    assert traced(x).dtype == np.int64


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_reductions_axes(name, axis, keepdims):
    x = sample((2, 3, 4), np.int64)  # many ties: the first occurrence must win
    check_against_numpy(lambda a: getattr(np, name)(a, axis=axis, keepdims=keepdims), x)


# ---------------------------------------------------------------------------------------------
# every op and dtype, as functions and as methods

OPS = {
    "sum": lambda a, ax: np.sum(a, axis=ax),
    "prod": lambda a, ax: np.prod(a, axis=ax),
    "max": lambda a, ax: np.max(a, axis=ax),
    "min": lambda a, ax: a.min(axis=ax),
    "amax": lambda a, ax: np.amax(a, axis=ax),
    "amin": lambda a, ax: np.amin(a, ax),
    "any": lambda a, ax: np.any(a, axis=ax),
    "all": lambda a, ax: a.all(ax),
    "argmax": lambda a, ax: a.argmax(axis=ax),
    "argmin": lambda a, ax: np.argmin(a, axis=ax),
    "mean": lambda a, ax: a.mean(axis=ax),
    "var": lambda a, ax: np.var(a, axis=ax),
    "std": lambda a, ax: a.std(axis=ax),
    "var_ddof": lambda a, ax: a.var(axis=ax, ddof=1),
    "std_ddof": lambda a, ax: np.std(a, axis=ax, ddof=1, keepdims=True),
    "average": lambda a, ax: np.average(a, axis=ax),
}


@pytest.mark.parametrize("axis", [None, -1])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", list(OPS))
def test_op_dtype(name, dtype, axis):
    x = sample((3, 5), dtype)
    if name == "prod" and np.dtype(dtype).kind == "f":
        x = x / 3  # keep float products in range
    check_against_numpy(lambda a: OPS[name](a, axis), x, rtol=rtol_for(x))


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_], ids=dtype_id)
def test_sum_and_prod_dtype_argument(dtype):
    x = sample((4, 3), dtype)
    check_against_numpy(lambda a: (np.sum(a, axis=0, dtype=np.float64), a.prod(dtype=np.int32),
                                   a.mean(dtype=np.float32), a.sum(1, np.int16)), x)


def test_scalar_results_are_numpy_scalars():
    x = sample((3, 4), np.float32)
    f = tj.trace(lambda a: (a.sum(), np.max(a), a.argmax(), a.mean(), np.any(a > 0)))
    for got, want in zip(f(x), (x.sum(), x.max(), x.argmax(), x.mean(), np.any(x > 0))):
        assert isinstance(got, np.generic) and got.dtype == want.dtype


def test_zero_dim_input():
    x = np.array(2.5)
    check_against_numpy(lambda a: (a.sum(), np.max(a), a.mean(), a.any(), np.prod(a)), x)


def test_empty_axis_tuple_is_no_reduction():
    x = sample((2, 3), np.int32)
    check_against_numpy(lambda a: (np.sum(a, axis=()), np.max(a, axis=())), x)


# ---------------------------------------------------------------------------------------------
# NaN, infinities, layouts, empty arrays

def test_nan_propagation_and_first_nan_index():
    x = np.array([[1.0, np.nan, 3.0, np.nan], [-np.inf, -np.inf, 2.0, 2.0],
                  [np.inf, 1.0, np.inf, 0.0]])
    check_against_numpy(lambda a: (a.max(1), a.min(1), a.argmax(1), a.argmin(1), a.sum(1),
                                   a.max(), a.argmax(), a.argmin()), x)


def test_all_minus_infinity_argmax_is_first():
    x = np.full((2, 3), -np.inf)
    check_against_numpy(lambda a: (np.argmax(a, axis=1), np.argmax(a), np.argmin(-a)), x)


@pytest.mark.parametrize("layout", ["transposed", "strided", "negative"])
def test_non_contiguous_inputs(layout):
    base = sample((6, 8), np.float64)
    x = {"transposed": base.T, "strided": base[::2, 1::3], "negative": base[::-1, ::-2]}[layout]
    check_against_numpy(lambda a: (np.sum((a - 1) ** 2, axis=0), a.max(axis=-1, keepdims=True),
                                   a.mean(), np.argmin(a, axis=1), a.std()), x)


def test_broadcast_inputs_to_a_reduction():
    a, b = sample((4, 1), np.float64), sample((1, 5), np.float64, 1)
    check_against_numpy(lambda a, b: (np.sum(a * b, axis=1), np.sum(a + b)), a, b)


def test_empty_reductions():
    x = np.zeros((0, 3))
    check_against_numpy(lambda a: (a.sum(), a.sum(0), a.prod(0), a.max(1), a.any(0), a.all()), x)


@pytest.mark.parametrize("fn", [lambda a: a.max(), lambda a: np.min(a, axis=0),
                                lambda a: a.argmax()])
def test_empty_max_raises_like_numpy(fn):
    x = np.zeros((0, 3))
    with pytest.raises(ValueError):
        fn(x)
    with pytest.raises(tj.ShapeError, match="zero-size|empty"):
        tj.trace(fn)(x)


@pytest.mark.parametrize("axis", [2, -3, (0, 0), (0, 5)])
def test_bad_axis_is_a_shape_error_naming_the_line(axis):
    f = tj.trace(lambda a: a.sum(axis=axis), fallback="raise")
    with pytest.raises(tj.ShapeError, match=r"test_reductions\.py:\d+"):
        f(np.ones((2, 3)))


@pytest.mark.parametrize("call", [lambda a: np.sum(a, out=np.empty(())),
                                  lambda a: np.sum(a, where=a > 0),
                                  lambda a: np.sum(a, initial=3.0)])
def test_unsupported_arguments(call):
    with pytest.raises(tj.UnsupportedError):
        tj.trace(call, fallback="raise")(np.ones(3))


# ---------------------------------------------------------------------------------------------
# norm, average, scans, ufunc.reduce

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32], ids=dtype_id)
def test_norm(dtype):
    v, m = sample((7,), dtype), sample((3, 4), dtype)
    check_against_numpy(lambda v, m: (np.linalg.norm(v), np.linalg.norm(m),
                                      np.linalg.norm(m, axis=1), np.linalg.norm(m, axis=0,
                                                                                keepdims=True),
                                      np.linalg.norm(v, ord=1), np.linalg.norm(v, np.inf),
                                      np.linalg.norm(m, -np.inf, axis=1), np.linalg.norm(v, 0),
                                      np.linalg.norm(v, 3), np.linalg.norm(m, "fro")),
                        v, m, rtol=rtol_for(v))


def test_matrix_norm_orders_are_unsupported():
    with pytest.raises(tj.UnsupportedError, match="matrix norm"):
        tj.trace(lambda m: np.linalg.norm(m, 2), fallback="raise")(np.ones((2, 2)))


def test_average_without_weights():
    x = sample((3, 4), np.int32)
    check_against_numpy(lambda a: (np.average(a), np.average(a, axis=0),
                                   np.average(a, axis=1, keepdims=True)), x)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.bool_], ids=dtype_id)
def test_cumsum_cumprod(dtype):
    x = sample((3, 4), dtype)
    check_against_numpy(lambda a: (np.cumsum(a), np.cumsum(a, axis=0), a.cumsum(-1),
                                   np.cumprod(a, axis=1), a.cumprod(), np.cumsum(a * 2, 1)), x)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_ptp_and_count_nonzero(dtype):
    x = sample((3, 5), dtype)
    check_against_numpy(lambda a: (np.count_nonzero(a), np.count_nonzero(a, axis=1),
                                   np.count_nonzero(a.T, axis=(0, 1), keepdims=True),
                                   np.count_nonzero(a[:, :0], axis=0)), x)
    check_against_numpy(lambda a: (np.ptp(a), np.ptp(a, axis=0), np.ptp(a[::-1, ::2], 1, None,
                                                                        True)), x)


NAN_FUNCTIONS = {
    "nansum": lambda a: (np.nansum(a), np.nansum(a, axis=0), np.nansum(a, 1, keepdims=True)),
    "nanmean": lambda a: (np.nanmean(a), np.nanmean(a, axis=0), np.nanmean(a.T, -1, None,
                                                                            None, True)),
    "nanmax": lambda a: (np.nanmax(a), np.nanmax(a, axis=0), np.nanmax(a, 1, keepdims=True)),
    "nanmin": lambda a: (np.nanmin(a), np.nanmin(a[::-1], axis=0), np.nanmin(a, axis=1)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32], ids=dtype_id)
@pytest.mark.parametrize("name", NAN_FUNCTIONS)
def test_nan_functions(name, dtype):
    x = sample((4, 5), dtype)
    if np.dtype(dtype).kind == "f":
        x[x > 2] = np.nan
        x[:, 1] = np.nan  # an all-NaN column: NaN from nanmax/nanmin/nanmean, 0 from nansum
        x[0, 3] = np.inf
    check_against_numpy(NAN_FUNCTIONS[name], x, rtol=rtol_for(x))
    check_against_numpy(lambda a: NAN_FUNCTIONS[name](a[:0]), x)  # NumPy's own error or NaN


def test_ufunc_reduce():
    x = sample((3, 4), np.int32)
    check_against_numpy(lambda a: (np.add.reduce(a), np.multiply.reduce(a, axis=1),
                                   np.maximum.reduce(a, axis=None), np.minimum.reduce(a, 1, None,
                                                                                      None, True),
                                   np.logical_or.reduce(a), np.logical_and.reduce(a, axis=1)), x)


# ---------------------------------------------------------------------------------------------
# fusion: a reduction absorbs its producers

def sumsq(a, b):
    return np.sum((a - b) ** 2)


def test_sum_of_squares_is_one_kernel():
    a, b = sample((100,), np.float64), sample((100,), np.float64, 1)
    check_against_numpy(sumsq, a, b)
    (k,) = kernels(sumsq, a, b)
    assert k.kernel.kind == "reduction"
    assert k.ops == ["subtract", "square", "sum"]
    assert k.kernel.outputs == [k.kernel.nodes[-1]]  # the difference and square stay in registers


def test_unfused_is_one_kernel_per_op():
    a, b = sample((10,), np.float64), sample((10,), np.float64, 1)
    ks = kernels(sumsq, a, b, fuse=False)
    assert [k.ops for k in ks] == [["subtract"], ["square"], ["sum"]]
    assert tj.trace(sumsq, fuse=False)(a, b) == pytest.approx(sumsq(a, b), rel=1e-12)


def test_reduction_epilogue_fuses():
    x = sample((5, 6), np.float32)
    f = lambda a: np.sqrt(np.sum(a * a, axis=1)) + 1  # noqa: E731
    check_against_numpy(f, x, rtol=F32_RTOL)
    (k,) = kernels(f, x)
    assert k.ops == ["multiply", "sum", "sqrt", "add"]


def test_producer_also_returned_is_written_once():
    x = sample((4, 5), np.float64)
    f = lambda a: (np.exp(a), np.exp(a).sum(axis=1))  # noqa: E731
    check_against_numpy(f, x)
    (k,) = kernels(f, x)
    assert len(k.kernel.outputs) == 2


def test_different_axes_do_not_fuse():
    x = sample((4, 5), np.float64)
    f = lambda a: (np.exp(a).sum(axis=0), np.exp(a).sum(axis=1))  # noqa: E731
    check_against_numpy(f, x)
    ks = kernels(f, x)
    assert len(ks) == 2
    assert ks[0].ops == ["exp", "sum"] and ks[1].ops == ["sum"]


def test_cheap_value_read_by_two_kernels_is_recomputed_not_stored():
    a, b = sample((4, 5), np.float64), sample((4, 5), np.float64, 1)
    f = lambda a, b: (((a - b) ** 2).sum(axis=0), ((a - b) ** 2).sum(axis=1))  # noqa: E731
    check_against_numpy(f, a, b)
    ex = tj.trace(f).explain(a, b)
    assert [k.ops for k in ex.kernels] == [["subtract", "square", "sum"]] * 2
    assert all(len(k.kernel.outputs) == 1 and all(n.op == "input" for n in k.kernel.inputs)
               for k in ex.kernels)
    assert "recomputes subtract square" in str(ex)


def test_costly_value_read_by_two_kernels_is_stored_once():
    a = sample((4, 5), np.float64)
    f = lambda a: (np.exp(a).sum(axis=0), np.exp(a).sum(axis=1))  # noqa: E731
    check_against_numpy(f, a)
    k0, k1 = tj.trace(f).explain(a).kernels
    assert k0.ops == ["exp", "sum"] and len(k0.kernel.outputs) == 2
    assert k1.ops == ["sum"] and [n.op for n in k1.kernel.inputs] == ["exp"]


def test_compiled_matches_interpreter():
    x = sample((3, 4, 5), np.float32)
    f = tj.trace(lambda a: (a.var(axis=(0, 2)), np.argmax(a * 2, axis=1), a.sum(-1) - a.max()))
    graph = f.graph(x)
    for got, want in zip(f(x), interpret(graph, x)):
        assert_same(got, want, rtol=F32_RTOL)


def test_new_shape_same_rank_compiles_nothing():
    f = tj.trace(lambda a: (np.sum((a - 1) ** 2, axis=1), a.max()))
    f(sample((3, 4), np.float64))
    compiled = f.cache_info().kernels_compiled
    f(sample((5, 7), np.float64))
    assert f.cache_info().kernels_compiled == compiled


def test_large_full_reductions_run_in_parallel_chunks():
    x = sample((300_000,), np.float64)
    y = sample((300, 1000), np.float32)
    f = lambda a: (np.sum(a * a), a.argmax(), np.min(a), np.mean(a))  # noqa: E731
    check_against_numpy(f, x, parallel=True)
    g = lambda b: (np.sum(b), np.argmin(b.T), b.max())  # noqa: E731
    check_against_numpy(g, y, rtol=F32_RTOL, parallel=True)
    assert all("prange(nchunks)" in k.source for k in kernels(f, x, parallel=True))
    # without the option, cheap work this small stays serial (thread wake-up would dominate)
    assert not any("prange" in k.source for k in kernels(f, x[:50_000]))


def test_large_strided_full_reduction_with_a_scalar_epilogue():
    x = sample((600_000,), np.float64)[::2]
    c = np.array(2.0)
    check_against_numpy(lambda a, c: (np.sum(a * a) * (c + 1), a.argmax()), x, c)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_min_find_a_nan_anywhere(parallel, dtype):
    # float max/min keep NaN in a flag beside a plain select (so the loop vectorises): a NaN in
    # any unrolled lane, in the remainder, or in any parallel chunk must still win
    rng = np.random.default_rng(5)
    for pos in (0, 1, 2, 3, 6, 9, 70_000, 199_999):
        x = rng.standard_normal(200_000).astype(dtype)
        x[pos] = np.nan
        check_against_numpy(lambda a: (np.max(a), np.min(a), a.reshape(40, 5000).max(axis=1),
                                       a.reshape(40, 5000).min(axis=-1)), x, parallel=parallel)
    x = rng.standard_normal((7, 9)).astype(dtype)
    check_against_numpy(lambda a: (a.max(axis=1), a.min(axis=0), a.max()), x)


# ---------------------------------------------------------------------------------------------
# reductions that keep the last axis run column loops: the inner loop runs along the last axis
# over a block of columns, with an accumulator per column. parallel=True forces the parallel
# path (a row is split in blocks, one per thread, once it is 2048 wide or more; with fewer
# blocks than threads, as these small shapes have, the first reduced axis is split into row
# chunks too, combined in order: _column_chunks); serial blocks are 65536 wide. Kernels compile
# once per source and signature, so these tests share shapes: (6, 9) over axis 0 and (3, 4, 5)
# over the middle axis.

COLUMN_OPS = {
    "sum": lambda a, ax, kd: np.sum(a, axis=ax, keepdims=kd),
    "prod": lambda a, ax, kd: np.prod(a, axis=ax, keepdims=kd),
    "max": lambda a, ax, kd: np.max(a, axis=ax, keepdims=kd),
    "min": lambda a, ax, kd: a.min(axis=ax, keepdims=kd),
    "any": lambda a, ax, kd: np.any(a, axis=ax, keepdims=kd),
    "all": lambda a, ax, kd: a.all(axis=ax, keepdims=kd),
    "argmax": lambda a, ax, kd: np.argmax(a, axis=ax, keepdims=kd),
    "argmin": lambda a, ax, kd: a.argmin(axis=ax, keepdims=kd),
    "mean": lambda a, ax, kd: a.mean(axis=ax, keepdims=kd),
    "var": lambda a, ax, kd: np.var(a, axis=ax, keepdims=kd),
    "std": lambda a, ax, kd: a.std(axis=ax, ddof=1, keepdims=kd),
}
# in parallel, one op of each kind of accumulator (the loops around them are the same)
PARALLEL_OPS = ["sum", "max", "argmin", "all", "mean"]


def column_sample(shape, dtype, seed=0):
    x = sample(shape, dtype, seed)
    return x / 3 if np.dtype(dtype).kind == "f" else x  # keeps float products in range


def column_tolerance(dtype):
    # NumPy sums float32 columns in float32, one row after another; kernels in float64
    return {"rtol": 1e-5, "atol": 1e-5} if np.dtype(dtype) == np.float32 else {}


def uses_column_loops(fn, *args, **options):
    return all("for j in range(hi - lo):" in k.source for k in kernels(fn, *args, **options))


def ops_for(parallel):
    return PARALLEL_OPS if parallel else list(COLUMN_OPS)


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_column_op_dtype(dtype, parallel):
    x = column_sample((3, 4, 5), dtype)
    names = ops_for(parallel)
    fn = lambda a: tuple(COLUMN_OPS[n](a, 1, False) for n in names)  # noqa: E731
    check_against_numpy(fn, x, parallel=parallel, **column_tolerance(dtype))
    assert uses_column_loops(lambda a: a.sum(axis=1), x, parallel=parallel)


# (shape, axis, keepdims): the first axis, a middle axis, and tuples (adjacent or not)
COLUMN_CASES = [((6, 9), 0, True), ((3, 4, 5), 1, True), ((3, 4, 5), (0, 1), False),
                ((3, 4, 5), (0, 1), True), ((2, 3, 4, 5), (0, 2), True)]


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("shape,axis,keepdims", COLUMN_CASES, ids=str)
def test_column_axes_keepdims(shape, axis, keepdims, parallel):
    x = column_sample(shape, np.float64)
    names = [n for n in ops_for(parallel) if isinstance(axis, int) or not n.startswith("arg")]
    fn = lambda a: tuple(COLUMN_OPS[n](a, axis, keepdims) for n in names)  # noqa: E731
    check_against_numpy(fn, x, parallel=parallel)
    assert uses_column_loops(lambda a: a.sum(axis=axis, keepdims=keepdims), x,
                             parallel=parallel)


COLUMN_SHAPES = [(6, 9), (3, 4, 5)]  # reduced over axis 0 and over the middle axis


def moved(x, axis, fn):
    """x with fn applied to it with `axis` moved to the front."""
    y = np.moveaxis(x, axis, 0).copy()
    fn(y)
    return np.ascontiguousarray(np.moveaxis(y, 0, axis))


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
@pytest.mark.parametrize("shape", COLUMN_SHAPES, ids=str)
def test_column_nan_placement(shape, dtype, parallel):
    # NaN first, last or in the middle of a column, twice, in all of a column, next to
    # infinities: max/min propagate NaN, argmax/argmin give the first NaN, sum gives NaN
    axis = len(shape) - 2

    def place(y):
        n = y.shape[0]
        y[0, ..., 0] = np.nan
        y[n - 1, ..., 1] = np.nan
        y[n // 2, ..., 2] = np.nan
        y[1, ..., 3] = y[n - 2, ..., 3] = np.nan
        y[:, ..., 4] = np.nan
        y[1, ..., 1] = np.inf
        y[0, ..., 2] = -np.inf
        y[0, ..., -1] = np.inf
        y[n - 1, ..., -1] = -np.inf

    x = moved(column_sample(shape, dtype), axis, place)
    fn = lambda a: (a.max(axis), a.min(axis), a.argmax(axis), a.argmin(axis),  # noqa: E731
                    a.sum(axis))
    check_against_numpy(fn, x, parallel=parallel, **column_tolerance(dtype))


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.bool_], ids=dtype_id)
@pytest.mark.parametrize("shape", COLUMN_SHAPES, ids=str)
def test_column_ties_take_the_first_index(shape, dtype, parallel):
    axis = len(shape) - 2
    rng = np.random.default_rng(3)

    def tie_first_two(y):  # the extreme first in the first two places of some columns
        y[:2, ..., :2] = 1
        y[:2, ..., 2:4] = 0

    x = moved(rng.integers(0, 2, shape).astype(dtype), axis, tie_first_two)
    check_against_numpy(lambda a: (a.argmax(axis), a.argmin(axis)), x, parallel=parallel)
    if dtype == np.float64:
        infs = np.where(rng.random(shape) < 0.5, np.inf, -np.inf)
        check_against_numpy(lambda a: (a.argmax(axis), a.argmin(axis)), infs,
                            parallel=parallel)


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_column_blocks(parallel):
    # rows wider than a block: several blocks in a row, serial (65536 wide) and parallel (one
    # block per thread), with outputs that cross the block edges
    x = sample((3, 70_001), np.float64, 1)
    y = sample((1, 3, 2501), np.float32, 2)
    fx = lambda a: (a.sum(0), a.argmax(0), np.min(a, axis=0, keepdims=True))  # noqa: E731
    check_against_numpy(fx, x, parallel=parallel)
    check_against_numpy(lambda a: (a.sum(1), a.argmin(1), a.max(1)), y,
                        parallel=parallel, **column_tolerance(np.float32))


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("layout", ["transposed", "strided", "negative", "transposed3"])
def test_column_reductions_of_non_contiguous_inputs(layout, parallel):
    # a strided input may be transposed (its reduced axis is then the contiguous one): the
    # kernel picks row or column loops from the strides at run time; both must be right
    base = sample((6, 8, 5), np.float64)
    x = {"transposed": base[:, :, 0].T, "strided": base[::2, 1::3, 0],
         "negative": base[::-1, ::-2, 1], "transposed3": base.transpose(2, 1, 0)}[layout]
    axis = x.ndim - 2
    fn = lambda a: (a.sum(axis), np.sum((a - 1) ** 2, axis=axis, keepdims=True),  # noqa: E731
                    a.max(axis), a.argmin(axis))
    check_against_numpy(fn, x, parallel=parallel)


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 4, 3), (2, 0, 3), (2, 3, 0)], ids=str)
def test_column_reductions_of_empty_arrays(shape, parallel):
    x = np.zeros(shape)
    axis = len(shape) - 2
    check_against_numpy(lambda a: (a.sum(axis), a.prod(axis, keepdims=True), a.any(axis),
                                   a.all(axis), a.mean(axis)), x, parallel=parallel)
    # max and argmin of an empty axis: a ShapeError, as NumPy raises a ValueError
    check_against_numpy(lambda a: a.max(axis), x, parallel=parallel)
    check_against_numpy(lambda a: a.argmin(axis), x, parallel=parallel)


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_column_reduction_fuses_producers_outputs_and_epilogue(parallel):
    a, b = sample((6, 9), np.float64), sample((9,), np.float64, 1)
    c = sample((6, 1), np.float32, 2)
    f = lambda a, b: np.sum((a - b) ** 2, axis=0)  # noqa: E731
    check_against_numpy(f, a, b, parallel=parallel)
    (k,) = kernels(f, a, b, parallel=parallel)
    assert k.ops == ["subtract", "square", "sum"] and uses_column_loops(f, a, b)
    g = lambda a, c: (np.exp(a * c), np.sqrt(np.exp(a * c).sum(axis=0)) + 1)  # noqa: E731
    check_against_numpy(g, a, c, parallel=parallel)
    (k,) = kernels(g, a, c, parallel=parallel)
    assert k.ops == ["multiply", "exp", "sum", "sqrt", "add"] and len(k.kernel.outputs) == 2


def test_column_float32_sums_accumulate_in_float64():
    # 1 and many tiny values: a float32 accumulator would lose them all
    x = np.full((4001, 3), 1e-8, np.float32)
    x[0] = 1
    got = tj.trace(lambda a: a.sum(axis=0), fallback="raise")(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.float32(1 + 4000e-8), rtol=1e-7)


# Tall, narrow arrays have fewer column blocks than threads: in parallel the first reduced axis
# is split into chunks of about 65536 elements (at least 64 rows), each reducing into its own
# row of partial results, combined in chunk order. (2500, 64) is 3 chunks of 1024 rows, the
# last one short; (20000, 8) 3 of 8192; (50000, 3) 3 of 21845; (70000, 1) 2 of 65536; (100, 64)
# fewer rows than one chunk. Extremes are placed in different chunks of the same column. A
# parallel kernel of many reductions takes seconds to compile: float64 runs every time.
CHUNKED_SHAPES = [(2500, 64), (20000, 8), (50000, 3), (70000, 1), (100, 64)]
SLOW = (pytest.mark.slow, pytest.mark.skipif(not os.environ.get("TRACEJIT_SLOW"),
                                             reason="set TRACEJIT_SLOW=1"))


def chunked_sample(shape, dtype):
    x = column_sample(shape, dtype)
    n, d = shape[0], shape[-1]
    if np.dtype(dtype).kind == "f":
        x[n - 1, ..., 0] = np.nan  # in the last chunk only
        if d > 1:
            x[[n // 2, n - 2], ..., 1] = np.nan  # twice: argmax/argmin give the first
        if d > 2:
            x[..., 2] = 1.5  # ties everywhere: the first index
            x[1, ..., 2], x[n - 1, ..., 2] = -np.inf, np.inf
    return x


def splits_rows(fn, *args, **options):
    return all("prange(nc * nb" in k.source for k in kernels(fn, *args, **options))


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=SLOW),
                                   pytest.param(np.int64, marks=SLOW),
                                   pytest.param(np.bool_, marks=SLOW)], ids=dtype_id)
def test_column_chunks_every_kind(dtype):
    def fn(a):
        return (a.sum(0), np.prod(1 + a / 4096, axis=0), a.max(0), a.min(0, keepdims=True),
                a.argmax(0), a.argmin(0), a.any(0), a.all(0), (a > 0).sum(0))

    # NumPy adds float32 rows one after another in float32: off by ~1e-4 over 70000 rows
    tol = {"rtol": 1e-4, "atol": 1e-3} if dtype == np.float32 else {}
    for shape in CHUNKED_SHAPES:
        check_against_numpy(fn, chunked_sample(shape, dtype), parallel=True, **tol)
    assert splits_rows(fn, chunked_sample(CHUNKED_SHAPES[0], dtype), parallel=True)


def test_column_chunks_three_dims_keepdims_and_epilogue(monkeypatch):
    # axes (0, 1) of a 3-d array (the first is split: 3 chunks of 409 rows of 160 elements),
    # keepdims, and fused epilogues (std is two column kernels); int64 and bool inputs
    y = chunked_sample((1000, 20, 8), np.float32)
    g = lambda a: (a.sum((0, 1)), a.min((0, 1), keepdims=True),  # noqa: E731
                   a.mean((0, 1), keepdims=True))
    check_against_numpy(g, y, parallel=True, rtol=1e-4, atol=1e-4)
    assert splits_rows(g, y, parallel=True)
    z = sample((20000, 8), np.float32)
    labels = np.random.default_rng(4).integers(0, 4, 20000)
    h = lambda a, lab: (a.mean(axis=0), a.std(axis=0),  # noqa: E731
                        (lab[:, None] == np.arange(4)).astype(a.dtype).sum(axis=0))
    check_against_numpy(h, z, labels, parallel=True, rtol=1e-4, atol=1e-4)
    assert splits_rows(h, z, labels, parallel=True)
    # axis 0 of (20000, 2, 8): a task per chunk and index of the middle axis, where two
    # indices are fewer tasks than the threads (eight, as the compiler is told)
    import numba

    monkeypatch.setattr(numba, "get_num_threads", lambda: 8)
    x = column_sample((20000, 2, 8), np.int64)
    f = lambda a: (a.sum(0, keepdims=True), a.argmax(0), a.max(0))  # noqa: E731
    check_against_numpy(f, x, parallel=True)
    assert splits_rows(f, x, parallel=True)


def test_tall_column_reduction_runs_in_parallel_whatever_the_threads():
    import numba

    x = sample((250_000, 8), np.float64)
    f = tj.trace(lambda a: a.mean(axis=0), fallback="raise")
    (k,) = f.explain(x).kernels
    assert "prange" in k.source
    got = f(x).copy()
    assert got.dtype == np.float64 and got.shape == (8,)
    np.testing.assert_allclose(got, x.mean(axis=0), rtol=1e-12, atol=1e-15)
    threads = numba.get_num_threads()
    try:  # fixed chunks: the same bits on one thread
        numba.set_num_threads(1)
        assert np.array_equal(f(x), got)
    finally:
        numba.set_num_threads(threads)
    # one block over few rows stays serial
    (k,) = kernels(lambda a: a.sum(axis=0), sample((256, 1024), np.float32))
    assert "prange" not in k.source
