"""Matmul as a big op: `@`, np.matmul, np.dot (and inner, outer, vdot) run through NumPy/BLAS on
the host; the elementwise epilogue after it (bias, activation) is one kernel that writes over
the matmul's output when nothing else reads it."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import assert_same, check_against_numpy, graph_mentions_op

import tracejit as tj
from tracejit.graph import verify
from tracejit.interpret import interpret

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float64):
    if np.dtype(dtype).kind == "b":
        return RNG.random(shape) > 0.5
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(-4, 5, shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


SHAPES = {
    "vec vec": ((3,), (3,)),
    "mat vec": ((2, 3), (3,)),
    "vec mat": ((3,), (3, 4)),
    "mat mat": ((2, 3), (3, 4)),
    "batch mat": ((5, 2, 3), (3, 4)),
    "batch batch": ((5, 2, 3), (5, 3, 4)),
    "vec batch": ((3,), (5, 3, 4)),
    "batch vec": ((5, 2, 3), (3,)),
    "broadcast batches": ((4, 1, 2, 3), (5, 3, 2)),
    "empty inner": ((2, 0), (0, 3)),
    "empty batch": ((0, 2, 3), (3, 4)),
}


@pytest.mark.parametrize("shapes", SHAPES.values(), ids=SHAPES.keys())
def test_matmul_shapes(shapes):
    a, b = rand(*shapes[0]), rand(*shapes[1])
    traced = check_against_numpy(lambda a, b: a @ b, a, b)
    check_against_numpy(lambda a, b: np.matmul(a, b), a, b)
    graph = verify(traced.graph(a, b))
    assert_same(np.asarray(traced(a, b)), np.asarray(interpret(graph, a, b)))


@pytest.mark.parametrize("dtypes", [
    (np.float32, np.float32), (np.float64, np.float64), (np.int64, np.int64),
    (np.int32, np.float32), (np.bool_, np.bool_), (np.int32, np.int64), (np.float32, np.int64),
], ids=lambda d: f"{np.dtype(d[0]).name}@{np.dtype(d[1]).name}")
def test_matmul_dtypes(dtypes):
    a, b = rand(3, 4, dtype=dtypes[0]), rand(4, 2, dtype=dtypes[1])
    check_against_numpy(lambda a, b: a @ b, a, b, rtol=1e-5, atol=1e-6)
    check_against_numpy(lambda a, b: a @ b[:, 0], a, b, rtol=1e-5, atol=1e-6)


def test_non_contiguous_operands():
    a, b = rand(6, 8), rand(8, 10)
    check_against_numpy(lambda a, b: a.T[::2] @ b[::-1, ::2].T.T, a.T.copy(), b)
    check_against_numpy(lambda a, b: a @ b, a[:, ::2], b[::-2])
    check_against_numpy(lambda a, b: a[1:, 1:] @ b[1:, :].T[:3].T, a, b)
    check_against_numpy(lambda a, b: np.swapaxes(a.reshape(2, 3, 8), 1, 2).mT @ b, a, b)


def test_epilogue_is_one_kernel_in_place():
    def layer(x, w, b):
        return np.maximum(x @ w + b, 0)
    x, w, b = rand(8, 6, dtype=np.float32), rand(6, 5, dtype=np.float32), rand(5, dtype=np.float32)
    traced = check_against_numpy(layer, x, w, b)
    report = traced.explain(x, w, b)
    assert len(report.kernels) == 1
    assert report.kernels[0].ops == ["add", "maximum"]
    # the matmul writes into the returned array and the epilogue runs in place over it
    assert report.memory.buffers == 1
    assert [(o.op, i.op) for o, i in report.memory.in_place] == [("maximum", "matmul")]


def test_mlp_forward():
    def mlp(x, w0, b0, w1, b1, w2, b2):
        h = np.maximum(x @ w0 + b0, 0)
        h = np.maximum(h @ w1 + b1, 0)
        return np.tanh(h @ w2 + b2)
    params = [rand(16, 12, dtype=np.float32)]
    for n, m in ((12, 10), (10, 10), (10, 3)):
        params += [rand(n, m, dtype=np.float32), rand(m, dtype=np.float32)]
    traced = check_against_numpy(mlp, *params, rtol=1e-5, atol=1e-6)
    assert len(traced.explain(*params).kernels) == 3
    check_against_numpy(mlp, *params, fuse=False, rtol=1e-5, atol=1e-6)


def test_matmul_output_read_elsewhere_is_not_overwritten():
    x, w, b = rand(4, 3), rand(3, 5), rand(5)

    def returned(x, w, b):
        h = x @ w
        return h, np.maximum(h + b, 0)

    def read_by_another_step(x, w, b):
        h = x @ w
        return np.maximum(h + b, 0), h[::-1, 1:]

    def read_by_a_later_kernel(x, w, b):
        h = x @ w
        y = np.exp(h) + b
        return y @ w.T + h[:, :3]

    for fn in (returned, read_by_another_step, read_by_a_later_kernel):
        check_against_numpy(fn, x, w, b)


def test_epilogue_of_another_dtype_or_shape_allocates():
    x, w = rand(4, 3, dtype=np.float32), rand(3, 5, dtype=np.float32)
    check_against_numpy(lambda x, w: (x @ w) * 2.0 > 1, x, w)          # bool result
    check_against_numpy(lambda x, w: (x @ w).astype(np.float64) + 1, x, w)
    check_against_numpy(lambda x, w: x @ w + np.ones((2, 4, 5)), x, w)  # broadcast to a batch


def test_scalar_result_is_a_numpy_scalar():
    a, b = rand(5), rand(5)
    traced = check_against_numpy(lambda a, b: a @ b, a, b)
    assert isinstance(traced(a, b), np.float64)
    check_against_numpy(lambda a, b: (a @ b) * 2 + a, a, b)
    check_against_numpy(lambda a, b: np.dot(a, b) - 1, a, b)


def test_dot_inner_outer_vdot():
    a, b, m, n = rand(4), rand(4), rand(3, 4), rand(4, 2)
    cases = [
        (lambda a, b: np.dot(a, b), (a, b)),
        (lambda m, n: np.dot(m, n), (m, n)),
        (lambda m, a: np.dot(m, a), (m, a)),
        (lambda m, n: m.dot(n), (m, n)),
        (lambda a: np.dot(a, 2.5), (a,)),
        (lambda a, b: np.inner(a, b), (a, b)),
        (lambda m, a: np.inner(m, a), (m, a)),
        (lambda a, m: np.inner(a, m), (a, m)),
        (lambda m: np.inner(m, m), (m,)),
        (lambda a, m: np.outer(a, m), (a, m)),
        (lambda m, n: np.vdot(m, n.T), (m, n)),
    ]
    for fn, args in cases:
        check_against_numpy(fn, *args)


def test_in_place_matmul():
    def f(a, b):
        c = a + 0
        c @= b
        return c
    check_against_numpy(f, rand(3, 3), rand(3, 3))


@pytest.mark.parametrize("fn, args, error", [
    (lambda a, b: a @ b, ((2, 3), (4, 5)), tj.ShapeError),
    (lambda a, b: a @ b, ((3,), (4,)), tj.ShapeError),
    (lambda a, b: a @ b, ((2, 2, 3), (3, 3, 4)), tj.ShapeError),
    (lambda a, b: np.matmul(a, 2.0), ((3,), (3,)), tj.ShapeError),
    (lambda a, b: np.dot(a, b), ((2, 3), (4,)), tj.ShapeError),
], ids=["inner", "vectors", "batches", "scalar", "dot"])
def test_shape_errors_name_the_line(fn, args, error):
    a, b = rand(*args[0]), rand(*args[1])
    with pytest.raises(error, match=r"test_matmul\.py:\d+"):
        tj.trace(fn, fallback="raise")(a, b)
    with pytest.raises(ValueError):
        fn(a, b)


def test_dot_of_stacks_is_unsupported():
    with pytest.raises(tj.UnsupportedError, match="np.matmul"):
        tj.trace(lambda a, b: np.dot(a, b), fallback="raise")(rand(2, 2, 3), rand(3, 2))


# ---------------------------------------------------------------------------------------------
# einsum: contractions become (batched) matmuls

EINSUMS = {
    "ij,jk->ik": ((2, 3), (3, 4)),
    "ij,jk": ((2, 3), (3, 4)),                 # implicit output
    "ij,kj->ik": ((2, 3), (4, 3)),
    "bij,bjk->bik": ((2, 3, 4), (2, 4, 5)),
    "bij,bkj->bki": ((2, 3, 4), (2, 5, 4)),
    "i,i->": ((3,), (3,)),
    "i,i": ((3,), (3,)),
    "i,j->ij": ((3,), (4,)),
    "ij,j->i": ((2, 3), (3,)),
    "ij->ji": ((2, 3),),
    "ij->j": ((2, 3),),
    "ij->": ((2, 3),),
    "ijk->kij": ((2, 3, 4),),
    "ij,ij->i": ((2, 3), (2, 3)),
    "ij,ij->ij": ((2, 3), (2, 3)),
    "ijk,kl->il": ((2, 3, 4), (4, 5)),         # j is summed out of the first operand first
    "i,ij,j": ((3,), (3, 4), (4,)),
    "ab,bc,cd->ad": ((2, 3), (3, 4), (4, 2)),
    "ij,jk->ik size 1": ((2, 1), (3, 4)),      # a unit dimension broadcasts, as in NumPy
    "ij,jk->ik empty": ((0, 3), (3, 4)),
    "Ab,bA->A": ((2, 3), (3, 2)),
    "bij,bj->bi": ((2, 3, 4), (2, 4)),         # batched matrix-vector
    "ij,i->j": ((3, 4), (3,)),                 # contracted over the first axis
    "bij,bjk->bik size 1": ((2, 3, 1), (1, 4, 5)),
}
SLOW = (pytest.mark.slow, pytest.mark.skipif(not os.environ.get("TRACEJIT_SLOW"),
                                             reason="more dtypes of a form: TRACEJIT_SLOW=1"))


# every subscript form in float64; a few of them in the other dtypes (compiling is the cost: the
# forms that are no product of matrices compile a reduction kernel each)
EINSUM_CASES = [(case, np.float64) for case in EINSUMS] + [
    (case, dtype) for case in ("ij,jk", "ij->j", "ab,bc,cd->ad")
    for dtype in (np.float32, np.int32, np.bool_)] + [("i,i->", np.bool_)] + [
    pytest.param(case, dtype, marks=SLOW, id=f"{case}-{np.dtype(dtype).name}")
    for case in ("i,i->", "bij,bj->bi", "ij,i->j") for dtype in (np.float32, np.int32)]


@pytest.mark.parametrize("case, dtype", EINSUM_CASES, ids=[
    c.id if hasattr(c, "id") else f"{c[0]}-{np.dtype(c[1]).name}" for c in EINSUM_CASES])
def test_einsum_matches_numpy(case, dtype):
    subscripts = case.split(" ")[0]
    args = [rand(*shape, dtype=dtype) for shape in EINSUMS[case]]
    check_against_numpy(lambda *ops: np.einsum(subscripts, *ops), *args, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("subscripts, shapes, matmuls", [
    ("ij,jk->ik", ((4, 3), (3, 5)), 1),
    ("bij,bjk->bik", ((2, 4, 3), (2, 3, 5)), 1),
    ("bij,bj->bi", ((2, 4, 3), (2, 3)), 0),
    ("ij,j->i", ((4, 3), (3,)), 0),
    ("ij,ij->i", ((4, 3), (4, 3)), 0),
    ("i,i->", ((3,), (3,)), 0),
    ("i,j->ij", ((3,), (4,)), 0),
], ids=lambda v: v if isinstance(v, str) else None)
def test_einsum_runs_matrix_products_on_blas_and_the_rest_as_one_kernel(subscripts, shapes,
                                                                        matmuls):
    """A product of matrices runs as matmul (BLAS); dot, matrix-vector and outer products are
    bound by memory and become a multiply summed over the contracted labels (one kernel)."""
    args = [rand(*shape) for shape in shapes]
    graph = tj.trace(lambda a, b: np.einsum(subscripts, a, b)).graph(*args)
    assert str(graph).count(" matmul ") == matmuls, str(graph)
    assert graph_mentions_op(graph, "multiply") == (not matmuls), str(graph)
    assert_same(np.asarray(interpret(graph, *args)), np.asarray(np.einsum(subscripts, *args)),
                rtol=1e-12, atol=1e-12)


def _einsum_grads(subscripts, a, b, g):
    """The gradients of sum(einsum(subscripts, a, b) * g), by NumPy's einsum."""
    (la, lb), out = subscripts.split("->")[0].split(","), subscripts.split("->")[1]
    return np.einsum(f"{out},{lb}->{la}", g, b), np.einsum(f"{la},{out}->{lb}", a, g)


@pytest.mark.parametrize("subscripts, shapes", [
    ("bij,bj->bi", ((3, 4, 5), (3, 5))),
    ("bij,bjk->bik", ((2, 3, 4), (2, 4, 5))),
    pytest.param("ij,ij->i", ((4, 5), (4, 5)), marks=SLOW),
    pytest.param("i,i->", ((5,), (5,)), marks=SLOW),
    pytest.param("ij,i->j", ((4, 5), (4,)), marks=SLOW),
], ids=lambda v: v if isinstance(v, str) else None)
def test_einsum_gradients_match_numpy(subscripts, shapes):
    a, b = (rand(*shape) for shape in shapes)
    out_shape = np.einsum(subscripts, a, b).shape
    g = rand(*out_shape)
    grads = tj.grad(lambda a, b, g: np.sum(np.einsum(subscripts, a, b) * g), argnums=(0, 1))
    for got, expected in zip(grads(a, b, g), _einsum_grads(subscripts, a, b, g), strict=True):
        assert_same(got, expected, rtol=1e-10, atol=1e-12)


def test_einsum_of_views_and_mixed_dtypes():
    a, b = rand(4, 3), rand(5, 4, dtype=np.float32)
    check_against_numpy(lambda a, b: np.einsum("ji,kj->ik", a[::-1], b.T[:, ::2]), a, b.T)
    check_against_numpy(lambda a, b: np.einsum("ij,jk", a, b) + 1, a.T, b.T, rtol=1e-5)
    check_against_numpy(lambda a: np.einsum("ij,jk", a, np.ones((4, 2))), a.T)


@pytest.mark.parametrize("subscripts, shapes, error", [
    ("ii->i", ((3, 3),), tj.UnsupportedError),
    ("...i,i", ((2, 3), (3,)), tj.UnsupportedError),
    ("ij,jk", ((2, 3), (4, 5)), tj.ShapeError),
    ("ij,jk->iz", ((2, 3), (3, 4)), ValueError),
    ("ijk", ((2, 3),), tj.ShapeError),
], ids=["diagonal", "ellipsis", "sizes", "unknown output", "rank"])
def test_einsum_unsupported_or_bad(subscripts, shapes, error):
    traced = tj.trace(lambda *ops: np.einsum(subscripts, *ops), fallback="raise")
    with pytest.raises(error, match=r"test_matmul\.py:\d+"):
        traced(*[rand(*s) for s in shapes])
