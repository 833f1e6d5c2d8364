"""Row-wise fusion: a reduction whose result is broadcast back over the reduced axes (softmax,
layernorm, logsumexp, normalising rows) runs as one kernel that makes several passes over each
row. Checked against NumPy, with the kernel count and the decisions explain() reports."""

import numpy as np
import pytest
from conftest import check_against_numpy

import tracejit as tj

F32_RTOL = 1e-5  # float32 row sums accumulate in float64; NumPy sums float32 pairwise


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layernorm(x):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5)


def logsumexp(x):
    m = np.max(x, axis=-1, keepdims=True)
    return np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)) + m


def normalize_rows(x):
    return x / x.sum(axis=1, keepdims=True)


def unit_rows(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def standardize(x):
    return (x - x.mean(axis=-1, keepdims=True)) / x.std(axis=-1, keepdims=True)


def softmax_two_axes(x):
    e = np.exp(x - np.max(x, axis=(1, 2), keepdims=True))
    return e / np.sum(e, axis=(1, 2), keepdims=True)


def centered_var_rows(x):  # the result is per row: the last pass is the second reduction
    return x.var(axis=-1)


def rnd(shape, dtype=np.float32, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 2).astype(dtype)


def explain(fn, *args):
    return tj.trace(fn, fallback="raise").explain(*args)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn,passes", [(softmax, 3), (layernorm, 3), (logsumexp, 2),
                                       (normalize_rows, 2), (unit_rows, 2), (standardize, 3),
                                       (centered_var_rows, 2)])
def test_rowwise_pattern_is_one_kernel(fn, passes, dtype):
    x = rnd((6, 7), dtype)
    check_against_numpy(fn, x, rtol=F32_RTOL if dtype == np.float32 else None)
    (k,) = explain(fn, x).kernels
    assert k.kernel.kind == "rowwise"
    assert k.kernel.meta["count"] == passes


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4), (5, 1), (3, 0)])
def test_softmax_shapes(shape):
    check_against_numpy(softmax, rnd(shape, np.float64))


def test_softmax_over_two_trailing_axes():
    x = rnd((3, 4, 5), np.float64)
    check_against_numpy(softmax_two_axes, x)
    (k,) = explain(softmax_two_axes, x).kernels
    assert k.kernel.kind == "rowwise" and k.kernel.meta["axes"] == (1, 2)


@pytest.mark.parametrize("layout", ["transposed", "strided", "negative"])
def test_rowwise_non_contiguous(layout):
    base = rnd((8, 10), np.float64)
    x = {"transposed": base.T, "strided": base[1::2, ::3], "negative": base[::-1, ::-1]}[layout]
    check_against_numpy(lambda a: (softmax(a), layernorm(a)), x)


def test_layernorm_with_affine_parameters():
    x, g, b = rnd((4, 6), np.float32), rnd((6,), np.float32, 1), rnd((6,), np.float32, 2)
    fn = lambda x, g, b: layernorm(x) * g + b  # noqa: E731
    check_against_numpy(fn, x, g, b, rtol=F32_RTOL)
    assert len(explain(fn, x, g, b).kernels) == 1


def test_int_input_rows():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    fn = lambda a: (a - a.mean(axis=1, keepdims=True), a * a.max(1, keepdims=True))  # noqa
    check_against_numpy(fn, x)
    # both read a and walk the same rows: one kernel with two outputs
    assert [k.kernel.kind for k in explain(fn, x).kernels] == ["rowwise"]


def test_recompute_or_buffer_decisions_are_explained():
    x = rnd((4, 6))
    text = str(explain(softmax, x))
    assert "3 passes" in text and "row buffer" in text and "exp" in text
    k = explain(layernorm, x).kernels[0].kernel
    assert k.meta["buffered"] == []  # x - mu is recomputed: cheaper than a buffer
    assert "recomputed in a later pass" in str(explain(layernorm, x))


def test_expensive_shared_value_is_buffered_not_recomputed():
    x = rnd((4, 6))
    (k,) = explain(softmax, x).kernels
    assert [m.op for m in k.kernel.meta["buffered"]] == ["exp"]
    assert k.source.count("vexp(") == 1  # computed once per element, reloaded after


def test_column_broadcast_back_is_not_rowwise():
    x = rnd((4, 6), np.float64)
    fn = lambda a: a - a.mean(axis=0)  # noqa: E731
    check_against_numpy(fn, x)
    ex = explain(fn, x)
    assert [k.kernel.kind for k in ex.kernels] == ["reduction", "elementwise"]
    assert "strided" in str(ex)


def test_full_reduction_broadcast_back_stays_two_parallel_kernels():
    x = rnd((4, 6), np.float64)
    fn = lambda a: a - a.mean()  # noqa: E731
    check_against_numpy(fn, x)
    ex = explain(fn, x)
    assert [k.kernel.kind for k in ex.kernels] == ["reduction", "elementwise"]
    assert "no row axis" in str(ex)


def test_convexity_value_leaving_and_returning_splits():
    # s depends on the reduction, and the reduction's row values are read again through a host
    # step (cumsum): fusing the consumer with the producer would need its own output.
    x = rnd((3, 4), np.float64)
    fn = lambda a: np.exp(a) + np.cumsum(np.exp(a).sum(axis=1, keepdims=True), axis=0)  # noqa
    check_against_numpy(fn, x)
    ex = explain(fn, x)
    assert [k.kernel.kind for k in ex.kernels] == ["reduction", "elementwise"]
    assert "not be convex" in str(ex)


def test_unfused_softmax_is_one_kernel_per_op():
    x = rnd((4, 6))
    ks = tj.trace(softmax, fuse=False).explain(x).kernels
    assert [k.ops for k in ks] == [["max"], ["subtract"], ["exp"], ["sum"], ["divide"]]


def test_parallel_rows_match_numpy():
    x = rnd((300, 512), np.float32)  # above the parallel threshold: prange over rows
    check_against_numpy(lambda a: (softmax(a), layernorm(a)), x, rtol=F32_RTOL, atol=1e-6)
    assert "prange" in explain(softmax, x).kernels[0].source


def softmax_and_exp(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e, e / e.sum(axis=-1, keepdims=True)


def softmax_and_unrelated(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    s = e.sum(axis=-1, keepdims=True)
    return x * s, e / s > 0.1


def softmax_and_int(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True) * 100).astype(np.int32)


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("shape", [(5, 9), (2, 3, 7), (3, 64)])
@pytest.mark.parametrize("fn", [softmax, softmax_and_exp])
def test_row_buffer_lives_in_an_output_row(fn, shape, parallel):
    # the buffered exp row is kept in the output it feeds (or in its own output) rather than in
    # a row buffer of its own; values must not change
    x = rnd(shape, np.float32)
    check_against_numpy(fn, x, parallel=parallel, rtol=F32_RTOL)
    (k,) = tj.trace(fn, fallback="raise", parallel=parallel).explain(x).kernels
    assert [m.op for m in k.kernel.meta["buffered"]] == ["exp"]
    assert "np.empty(rowsize" not in k.source
    assert k.source.count("vexp(") == 1


@pytest.mark.parametrize("fn", [softmax_and_unrelated, softmax_and_int])
def test_row_buffer_needs_an_output_that_reads_it_last(fn):
    # the outputs computed from the buffered row element by element have another dtype (x * s
    # depends on it only through the row sum): the row needs a buffer of its own
    x = rnd((5, 9), np.float64)
    check_against_numpy(fn, x)
    (k,) = explain(fn, x).kernels
    assert [m.op for m in k.kernel.meta["buffered"]] == ["exp"]
    assert "np.empty(rowsize" in k.source


# -- a reduction reshaped before it is broadcast back ------------------------------------------
# A view that only inserts or removes length-1 axes (None-indexing, reshape, expand_dims,
# squeeze) between a reduction and its elementwise users is rewritten into keepdims=True, so
# these idioms compile exactly as their keepdims twins: same kernels, and no host step.

def softmax_none(x):
    e = np.exp(x - x.max(1)[:, np.newaxis])
    return e / e.sum(1)[:, None]


def layernorm_reshape(x):
    mu = x.mean(axis=-1).reshape(-1, 1)
    var = ((x - mu) ** 2).mean(-1).reshape(-1, 1)
    return (x - mu) / np.sqrt(var + 1e-5)


def standardize_expand_dims(x):
    return (x - np.expand_dims(x.mean(-1), -1)) / np.expand_dims(x.std(axis=-1), axis=-1)


# (view idiom, its keepdims twin, rank of x)
UNIT_VIEW_IDIOMS = {
    "sum[:, None]": (lambda x: x / x.sum(axis=1)[:, None],
                     lambda x: x / x.sum(axis=1, keepdims=True), 2),
    "mean.reshape(-1, 1)": (lambda x: x - x.mean(axis=1).reshape(-1, 1),
                            lambda x: x - x.mean(axis=1, keepdims=True), 2),
    "exp(x - max[:, newaxis])": (lambda x: np.exp(x - x.max(1)[:, np.newaxis]),
                                 lambda x: np.exp(x - x.max(1, keepdims=True)), 2),
    "softmax": (softmax_none, softmax, 2),
    "layernorm": (layernorm_reshape, layernorm, 2),
    "column mean": (lambda x: x - x.mean(axis=0), lambda x: x - x.mean(axis=0, keepdims=True), 2),
    "column mean[None, :]": (lambda x: x - x.mean(axis=0)[None, :],
                             lambda x: x - x.mean(axis=0, keepdims=True), 2),
    "sum[..., None]": (lambda x: x / x.sum(-1)[..., None],
                       lambda x: x / x.sum(-1, keepdims=True), 3),
    "expand_dims(max, -1)": (lambda x: x - np.expand_dims(x.max(axis=-1), -1),
                             lambda x: x - x.max(axis=-1, keepdims=True), 3),
    "standardize": (standardize_expand_dims, standardize, 3),
    "two axes": (lambda x: x - x.max(axis=(-2, -1))[:, None, None],
                 lambda x: x - x.max(axis=(-2, -1), keepdims=True), 3),
    "middle axis": (lambda x: x * x.sum(axis=-2)[:, None, :],
                    lambda x: x * x.sum(axis=-2, keepdims=True), 3),
    "squeeze chain": (lambda x: x - np.squeeze(x.sum(-1)[None, ..., None], 0),
                      lambda x: x - x.sum(-1, keepdims=True), 3),
}


def _layouts(shape, dtype):
    base = rnd(tuple(2 * n for n in shape), dtype, 3)
    return {"contiguous": rnd(shape, dtype),
            "strided reversed": base[tuple(slice(None, None, -2) for _ in shape)],
            "transposed": np.ascontiguousarray(rnd(shape[::-1], dtype, 4)).T}


def _steps(fn, x):
    steps = tj.trace(fn, fallback="raise").explain(x).executable.steps
    return ([s.kind for s in steps if hasattr(s, "kind")],
            [s.node.op for s in steps if not hasattr(s, "kind")])


@pytest.mark.parametrize("layout, dtype", [("contiguous", np.float32), ("contiguous", np.float64),
                                           ("strided reversed", np.float64),
                                           ("transposed", np.float64)])
@pytest.mark.parametrize("name", list(UNIT_VIEW_IDIOMS))
def test_reduction_through_a_unit_axis_view_fuses_as_keepdims(name, dtype, layout):
    fn, twin, rank = UNIT_VIEW_IDIOMS[name]
    x = _layouts((5, 8) if rank == 2 else (3, 4, 6), dtype)[layout]
    check_against_numpy(fn, x, rtol=F32_RTOL if dtype == np.float32 else None)
    kinds, host = _steps(fn, x)
    assert (kinds, host) == _steps(twin, x) and host == []
    rowwise = name not in ("column mean", "column mean[None, :]", "middle axis")
    assert kinds == (["rowwise"] if rowwise else ["reduction", "elementwise"])


@pytest.mark.parametrize("fn", [
    lambda x: x - x.sum(0).reshape(-1, 1),  # column sums broadcast along rows: a square x
    lambda x: x - x.sum(1)[None, :],        # row sums broadcast along columns
    lambda x: x - x.sum(1)[None, :].T,      # a transpose is not a unit-axis view
    lambda x: x - x.sum(1)[::-1, None],     # nor is a reversing slice
    lambda x: x - x.sum(1)[None, :, None].reshape(-1, 1),
], ids=["column sums as a column", "row sums as a row", "transpose", "reversed",
        "reshape chain"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_views_that_move_the_reduced_axis_are_not_keepdims(fn, dtype):
    x = rnd((6, 6), dtype)  # square, so a wrongly placed axis would still broadcast
    check_against_numpy(fn, x, rtol=F32_RTOL if dtype == np.float32 else None)
    check_against_numpy(fn, x[::-1, ::2][:3].repeat(2, axis=1),
                        rtol=F32_RTOL if dtype == np.float32 else None)


def test_reduction_read_with_and_without_the_view_is_computed_once():
    x = rnd((5, 8), np.float64)

    def fn(a):
        s = a.sum(-1)
        m = a.max(-1)
        return s, s[:, None], a / s[:, None], np.log(np.exp(a - m[:, None]).sum(-1)) + m

    traced = check_against_numpy(fn, x)
    r = traced(x)
    assert np.shares_memory(r[0], r[1])  # s[:, None] is a view of s, as in NumPy
    reductions = [n for n in traced.graph(x).nodes if n.op in ("sum", "max")]
    assert [n.op for n in reductions] == ["sum", "max", "sum"]
    assert all(n.attrs["keepdims"] for n in reductions)
    kinds, host = _steps(fn, x)
    assert kinds == ["rowwise"]  # s with a / s and the logsumexp with m: both read a
    # s, s[:, None] and the logsumexp are views of row values their kernels write
    assert sorted(host) == ["getitem", "reshape", "reshape"]
