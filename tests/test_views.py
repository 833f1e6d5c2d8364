"""Views and shape ops: basic indexing, reshape and friends, transposes, broadcast_to, and the
copying shape ops (concatenate, stack, roll, tile, repeat), checked against NumPy.

Views run on the host as NumPy views and kernels read them through their strides, so a
function that only slices compiles nothing; cases that add arithmetic check the kernel path.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_same, check_against_numpy

import tracejit as tj
from tracejit.graph import verify
from tracejit.interpret import interpret

X3 = np.arange(4 * 5 * 6, dtype=np.float64).reshape(4, 5, 6) * 0.5 - 7.0


def _compiled_matches_interpreter(traced, *args):
    graph = verify(traced.graph(*args))
    result, oracle = traced(*args), interpret(graph, *args)
    if not isinstance(result, (list, tuple)):
        result, oracle = [result], [oracle]
    # the interpreter keeps a 0-d array where the compiled function returns a NumPy scalar
    assert_same([np.asarray(r) for r in result], [np.asarray(o) for o in oracle])


# -- basic indexing ----------------------------------------------------------------------------

INDEXES = {
    "int": 1,
    "negative int": -1,
    "slice": slice(1, 3),
    "step": slice(None, None, 2),
    "reversed": slice(None, None, -1),
    "negative step and int": (slice(None, None, -2), 1),
    "ellipsis int": (Ellipsis, 2),
    "newaxis": None,
    "newaxis in the middle": (slice(None), None, slice(1, 4)),
    "int ellipsis newaxis": (1, Ellipsis, None),
    "negative bounds and step": (slice(-3, None), slice(None), slice(None, None, -3)),
    "empty slice": slice(5, 2),
    "all ints": (2, 3, 4),
    "all ints negative": (-1, -5, -6),
    "ellipsis only": Ellipsis,
    "clipped bounds": slice(1, 100),
    "negative step with stop": (slice(None), slice(-1, -6, -2)),
    "reversed past start": slice(2, None, -1),
    "numpy integers": (np.int64(1), slice(np.int32(1), None)),
}


@pytest.mark.parametrize("key", INDEXES.values(), ids=INDEXES.keys())
def test_getitem_matches_numpy(key):
    traced = check_against_numpy(lambda x: x[key], X3)
    _compiled_matches_interpreter(traced, X3)


@pytest.mark.parametrize("key", [slice(1, None), (slice(None, None, -1), 2), (Ellipsis, None)],
                         ids=["slice", "reversed int", "newaxis"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_], ids=lambda d: d.__name__)
def test_getitem_feeds_a_kernel(key, dtype):
    x = (X3 > 0) if dtype is np.bool_ else X3.astype(dtype)
    check_against_numpy(lambda x: x[key] == x[key], x)
    check_against_numpy(lambda x: x[key] * 3, x)


def test_single_element_is_a_numpy_scalar():
    traced = check_against_numpy(lambda x: x[1, 2, 3], X3)
    assert isinstance(traced(X3), np.float64)
    check_against_numpy(lambda x: x[1, 2, 3] * 2 + x[0, 0], X3)


def test_views_of_views():
    def f(x):
        a = x[1:][::-1][:, 2]         # (3, 6)
        b = x.T[1:, ::2][..., -1]     # (5, 3) of a transposed view
        c = x[::-1, None].reshape(4, 5, 6)[2:, ::-2].swapaxes(0, 2)
        return a * 2 + b.T[:, :1], c
    traced = check_against_numpy(f, X3)
    assert len(traced.explain(X3).kernels) == 1


def test_non_contiguous_and_negative_stride_arguments():
    def f(x):
        return x[1:, ::2] + x[:-1, 1::2]
    base = np.arange(60.0).reshape(6, 10)
    check_against_numpy(f, base[::-1])
    check_against_numpy(f, base.T[:, ::-1].copy().T)
    check_against_numpy(f, np.asfortranarray(base))


def test_views_returned_to_the_caller_alias_like_numpy():
    x = X3.copy()
    traced = tj.trace(lambda x: (x[1:], x.T), fallback="raise")
    a, b = traced(x)
    assert np.shares_memory(a, x) and np.shares_memory(b, x)


def test_a_view_of_a_constant_is_not_shared_between_calls():
    table = np.arange(10.0)
    traced = tj.trace(lambda x: (table[::2], x + 1), fallback="raise")
    first, _ = traced(np.ones(3))
    first[:] = -1
    second, _ = traced(np.ones(3))
    assert_same(second, np.arange(10.0)[::2])
    assert_same(table, np.arange(10.0))
    half = np.arange(4, dtype=np.float16)
    check_against_numpy(lambda x: (half, half[::-2], half.T + x), np.ones(4, np.float16))


def test_empty_and_zero_dimensional_operands():
    check_against_numpy(lambda x: x[1:] - x[:-1], np.zeros(0))
    check_against_numpy(lambda x: x[None] * 2, np.array(3.5))
    check_against_numpy(lambda x: x[...] + 1, np.array(3.5))


def test_stencil_and_rosenbrock_trace_into_one_kernel():
    def stencil(u):
        return (u[1:-1, 1:-1] * -4 + u[:-2, 1:-1] + u[2:, 1:-1]
                + u[1:-1, :-2] + u[1:-1, 2:])

    def rosenbrock_terms(x):
        return 100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2

    u = np.random.default_rng(0).standard_normal((9, 11))
    traced = check_against_numpy(stencil, u)
    assert len(traced.explain(u).kernels) == 1
    _compiled_matches_interpreter(traced, u)
    x = np.random.default_rng(1).standard_normal(17).astype(np.float32)
    traced = check_against_numpy(rosenbrock_terms, x)
    assert len(traced.explain(x).kernels) == 1


# -- indexing errors --------------------------------------------------------------------------

@pytest.mark.parametrize("key, error", [
    (5, tj.ShapeError),
    (-6, tj.ShapeError),
    ((0, 0, 0, 0), tj.ShapeError),
    ((Ellipsis, 0, Ellipsis), tj.ShapeError),
    (slice(None, None, 0), tj.ShapeError),
    ([0, [1]], tj.UnsupportedError),
    (True, tj.UnsupportedError),
    (1.5, tj.UnsupportedError),
], ids=["too large", "too negative", "too many", "two ellipses", "zero step", "ragged list",
        "bool", "float"])
def test_bad_index_raises_with_the_line(key, error):
    def f(x):
        return x[key]
    traced = tj.trace(f, fallback="raise")
    with pytest.raises(error, match=r"test_views\.py:\d+"):
        traced(X3[:4, 0, 0].copy())
    if error is tj.ShapeError:  # NumPy rejects these too; the others are advanced indexing
        with pytest.raises((IndexError, ValueError)):
            f(X3[:4, 0, 0].copy())


def test_indexing_with_a_traced_slice_bound_or_mask_is_refused():
    traced = tj.trace(lambda x, i: x[:i[0]], fallback="raise")
    with pytest.raises(tj.UnsupportedError, match=r"static_argnames.*test_views\.py"):
        traced(X3, np.array([2]))
    traced = tj.trace(lambda x, m: x[m], fallback="raise")  # its length depends on m
    with pytest.raises(tj.TraceError, match=r"np\.where.*test_views\.py"):
        traced(X3, np.array([True, False, True, True]))
    traced = tj.trace(lambda x, i: x[i, [0, 1]], fallback="raise")
    with pytest.raises(tj.UnsupportedError, match=r"dtype float64.*test_views\.py"):
        traced(X3, np.array([0.0, 1.0]))


# -- gathers: one integer index array (constant or traced) ------------------------------------

GATHERS = {
    "list": lambda x: x[[2, 0, 2]],
    "negative": lambda x: x[[-1, 0]],
    "second axis": lambda x: x[:, [3, 1, 1]],
    "after ellipsis": lambda x: x[..., [4, 0]],
    "with an int": lambda x: x[1, [3, 0]],
    "int after a slice": lambda x: x[[2, 0], :, 1],           # advanced dims go first
    "int then slice then array": lambda x: x[1, :, [4, 0]],
    "2-d index": lambda x: x[:, 1, [[0, 1], [2, 3]]],
    "with newaxis and step": lambda x: x[None, [1], ::-1],
    "ellipsis between": lambda x: x[0, ..., [1, 0]],
    "all ints and an array": lambda x: x[1, 2, [0, 4]],
    "0-d array": lambda x: x[np.array(1)],
    "0-d array last": lambda x: x[1, 2, np.array(3)],
    "of a view, then arithmetic": lambda x: x.T[[1, 0]] * 2 + 1,
    "empty": lambda x: x[np.zeros(0, dtype=int)],
}


@pytest.mark.parametrize("fn", GATHERS.values(), ids=GATHERS.keys())
def test_gather_matches_numpy(fn):
    check_against_numpy(fn, X3)


@pytest.mark.parametrize("index", [np.array([3, -1, 0]), np.array([[1], [2]], dtype=np.int32),
                                   2, -4, np.int32(1)],
                         ids=["int64 array", "int32 2-d", "Python int", "negative int",
                              "NumPy int"])
def test_gather_with_a_traced_index(index):
    check_against_numpy(lambda x, i: x[i], X3, index)
    check_against_numpy(lambda x, i: x[:, i] * 2, X3, index)
    check_against_numpy(lambda v, i: v[i], X3[0, 0], index)  # one element: a NumPy scalar


def test_gather_out_of_bounds_raises_like_numpy():
    traced = tj.trace(lambda x, i: x[i], fallback="raise")
    with pytest.raises(IndexError):
        traced(X3, np.array([0, 4]))
    with pytest.raises(IndexError):
        X3[np.array([0, 4])]


# -- several index arrays: one gather over their axes merged into one ------------------------

MULTI_GATHERS = {
    "pair": lambda x: x[[0, 3, 1], [4, 0, 2]],
    "pair then slice": lambda x: x[[0, 3], [4, 0], 1:],
    "pair after a slice": lambda x: x[:, [1, -1], [0, 5]],
    "apart: dims go first": lambda x: x[[2, 0], :, [5, 1]],
    "three": lambda x: x[[0, 3], [1, 1], [5, -6]],
    "broadcast": lambda x: x[np.arange(4)[:, None], [0, 2, 4]],
    "int between": lambda x: x[[1, 2], 0, [3, 3]],
    "int before": lambda x: x[3, [1, 2], [3, 0]],
    "ellipsis": lambda x: x[..., [1, 2], [3, 0]],
    "newaxis between": lambda x: x[[1, 2], None, [3, 0]],
    "0-d arrays": lambda x: x[np.array(1), np.array(2)],
    "empty": lambda x: x[np.zeros(0, int), np.zeros(0, int)],
    "of a view": lambda x: x[::-1, ::2][[0, 1], [2, 0]] * 2,
}


@pytest.mark.parametrize("fn", MULTI_GATHERS.values(), ids=MULTI_GATHERS.keys())
def test_gather_with_several_index_arrays_matches_numpy(fn):
    traced = check_against_numpy(fn, X3)
    _compiled_matches_interpreter(traced, X3)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_], ids=lambda d: d.__name__)
def test_gather_rows_and_labels(dtype):
    # the cross-entropy pattern: one element per row, chosen by a traced label array
    x = (X3[0] > 0) if dtype is np.bool_ else X3[0].astype(dtype)
    labels = np.array([5, 0, -1, 2, 3])
    for lab in (labels, labels.astype(np.int32), (labels % 6).astype(np.uint8)):
        check_against_numpy(lambda x, lab: x[np.arange(5), lab], x, lab)
    check_against_numpy(lambda x, lab: x[np.arange(5), lab], x.T.copy().T, labels)
    check_against_numpy(lambda x, r, c: x[r, c] * 2, x, labels[::-1] % 5, labels[::2])
    check_against_numpy(lambda x, r, c: x[r, c], x[:0], np.zeros(0, int), np.zeros(0, int))


def test_gather_with_several_index_arrays_out_of_bounds_raises_like_numpy():
    traced = tj.trace(lambda x, i, j: x[i, j], fallback="raise")
    # row 3 exists once the axes are merged (3 * 5 + 0 < 20): it must still raise
    for i, j in (([0, 4], [0, 0]), ([0, 1], [0, 5]), ([0, 1], [-6, 0]), ([-5, 0], [0, 0])):
        i, j = np.array(i), np.array(j)
        with pytest.raises(IndexError):
            X3[:, :, 0][i, j]
        with pytest.raises(IndexError):
            traced(X3[:, :, 0], i, j)
    assert_same(traced(X3[:, :, 0], np.array([-4, 3]), np.array([-5, 4])),
                X3[:, :, 0][[-4, 3], [-5, 4]])


def test_python_scalar_argument_cannot_be_indexed():
    with pytest.raises(TypeError, match=r"test_views\.py:\d+"):
        tj.trace(lambda x, s: x + s[None], fallback="raise")(X3, 1.5)
    with pytest.raises(tj.ShapeError, match="equal sections"):
        tj.trace(lambda x: np.split(x, 3), fallback="raise")(X3)


def test_in_place_update_of_a_view_reaches_the_argument():
    def f(x):
        y = x[1:]
        y += 1
        return x
    x, expected = X3.copy(), f(X3.copy())
    result = tj.trace(f, fallback="raise")(x)
    assert result is x  # NumPy returns the argument itself, updated
    assert_same(result, expected)


# -- reshape, squeeze, expand_dims, transposes ------------------------------------------------

RESHAPES = {
    "flat -1": lambda x: x.reshape(-1),
    "two dims -1": lambda x: x.reshape(2, -1),
    "tuple": lambda x: x.reshape((3, 40)),
    "np.reshape": lambda x: np.reshape(x, (2, 3, -1)),
    "same shape": lambda x: x.reshape(4, 5, 6),
    "ravel": lambda x: x.ravel(),
    "np.ravel": lambda x: np.ravel(x),
    "flatten": lambda x: x.flatten(),
    "transposed ravel copies": lambda x: x.T.ravel(),
    "strided reshape": lambda x: x[:, ::2].reshape(4, 18),
    "squeeze": lambda x: x[:, :1, None].squeeze(),
    "squeeze axis": lambda x: x[:, :1].squeeze(1),
    "np.squeeze axes": lambda x: np.squeeze(x[:1, :1], axis=(0, -2)),
    "expand_dims": lambda x: np.expand_dims(x, 1),
    "expand_dims axes": lambda x: np.expand_dims(x, (0, -1)),
    "transpose": lambda x: x.transpose(1, 2, 0),
    "swapaxes": lambda x: x.swapaxes(0, -1),
    "np.swapaxes": lambda x: np.swapaxes(x, 1, 2),
    "moveaxis": lambda x: np.moveaxis(x, 0, -1),
    "moveaxis several": lambda x: np.moveaxis(x, [0, 1], [-1, 0]),
    "mT": lambda x: x.mT,
    "matrix_transpose": lambda x: np.matrix_transpose(x),
    "broadcast_to": lambda x: np.broadcast_to(x[:, :1], (3, 4, 5, 6)),
    "atleast_1d": lambda x: np.atleast_1d(x[0, 0, 0]),
    "atleast_2d": lambda x: np.atleast_2d(x[0, 0]),
    "atleast_3d": lambda x: np.atleast_3d(x[0]),
    "atleast_3d of 1-d": lambda x: np.atleast_3d(x[0, 0]),
    "split": lambda x: np.split(x, 2),
    "split indices": lambda x: np.split(x, [1, 4, 100], axis=-1),
    "array_split": lambda x: np.array_split(x, 3, axis=1),
    "flip": lambda x: np.flip(x),
    "flip axes": lambda x: np.flip(x, (0, -1)),
    "flipud fliplr": lambda x: np.fliplr(np.flipud(x)),
}


@pytest.mark.parametrize("fn", RESHAPES.values(), ids=RESHAPES.keys())
def test_shape_op_matches_numpy(fn):
    traced = check_against_numpy(fn, X3)
    _compiled_matches_interpreter(traced, X3)


def test_shape_ops_feed_kernels():
    def f(x):
        row = x.reshape(20, 6)[:, None, :]            # (20, 1, 6)
        col = np.expand_dims(x[0, :, 0], -1)          # (5, 1)
        return np.broadcast_to(x[0, 0], (5, 6)) * col + row.squeeze().T[:, :5].T
    check_against_numpy(f, X3)
    check_against_numpy(f, X3.astype(np.float32))


def test_flatten_copies_and_ravel_views():
    x = X3.copy()
    flat, rav = tj.trace(lambda x: (x.flatten(), x.ravel()), fallback="raise")(x)
    assert not np.shares_memory(flat, x)
    assert np.shares_memory(rav, x)


@pytest.mark.parametrize("fn", [
    lambda x: x.reshape(7, -1),
    lambda x: x.reshape(-1, -1),
    lambda x: x.reshape(3, 3),
    lambda x: x.squeeze(0),
    lambda x: np.broadcast_to(x, (4, 5)),
    lambda x: x.swapaxes(0, 3),
], ids=["not divisible", "two unknowns", "wrong size", "squeeze non-unit", "broadcast", "axis"])
def test_shape_errors(fn):
    traced = tj.trace(fn, fallback="raise")
    with pytest.raises(tj.ShapeError, match=r"test_views\.py:\d+"):
        traced(X3)


# -- differences, triangles, grids ----------------------------------------------------------

MORE_SHAPE_FUNCTIONS = {
    "diff": lambda x: np.diff(x),
    "diff n=2 axis 0": lambda x: np.diff(x, n=2, axis=0),
    "diff n=0": lambda x: np.diff(x, 0) * 1,
    "diff prepend append": lambda x: np.diff(x, axis=1, prepend=0.5, append=x[:, -1:, :]),
    "diff of a view": lambda x: np.diff(x[::-1, ::2], axis=-2),
    "diff empty": lambda x: np.diff(x[:, :1], axis=1),
    "diff past the length": lambda x: np.diff(x[:2], n=3, axis=0),
    "tril": lambda x: np.tril(x),
    "tril k": lambda x: np.tril(x[0], -2),
    "triu k": lambda x: np.triu(x.T, 1),
    "triu of 1-d": lambda x: np.triu(x[0, 0]),
    "meshgrid": lambda x: np.meshgrid(x[0, 0], x[1, :, 0]),
    "meshgrid ij sparse": lambda x: np.meshgrid(x[0, 0], x[1, :, 0], indexing="ij",
                                                sparse=True),
    "meshgrid three": lambda x: np.meshgrid(x[0, 0], x[0, :, 0], x[:, 0, 0]),
    "meshgrid no copy": lambda x: np.meshgrid(x[0, 0, :2], x[0, :3, 0], copy=False)[0] * 1,
}


@pytest.mark.parametrize("fn", MORE_SHAPE_FUNCTIONS.values(), ids=MORE_SHAPE_FUNCTIONS.keys())
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.bool_],
                         ids=lambda d: d.__name__)
def test_diff_tri_and_meshgrid_match_numpy(fn, dtype):
    check_against_numpy(fn, (X3 > 0) if dtype is np.bool_ else X3.astype(dtype))


def test_diff_of_unsigned_wraps_and_bad_orders_raise():
    check_against_numpy(lambda x: np.diff(x), np.array([3, 1, 7, 0], np.uint8))
    check_against_numpy(lambda x: np.diff(x, -1), X3)  # NumPy's ValueError: raises too
    check_against_numpy(lambda x: np.diff(x[0, 0, 0]), X3)


# -- copying shape ops ------------------------------------------------------------------------

A = np.arange(12.0).reshape(3, 4)
B = np.arange(8, dtype=np.int64).reshape(2, 4) - 3
C = np.arange(6, dtype=np.float32).reshape(3, 2)

COPIES = {
    "concatenate": (lambda a, b: np.concatenate([a, b]), (A, B)),
    "concatenate axis 1": (lambda a, c: np.concatenate((a, c), axis=-1), (A, C)),
    "concatenate axis None": (lambda a, b: np.concatenate([a, b[:, ::-1]], axis=None), (A, B)),
    "concatenate views": (lambda a: np.concatenate([a[:, ::-1], a[::-1]], 1), (A,)),
    "stack": (lambda a: np.stack([a, a * 2, a[::-1]]), (A,)),
    "stack axis -1": (lambda a: np.stack((a, a + 1), axis=-1), (A,)),
    "hstack 2-d": (lambda a, c: np.hstack([a, c]), (A, C)),
    "hstack 1-d": (lambda a: np.hstack([a[0], a[1, ::-1]]), (A,)),
    "vstack": (lambda a, b: np.vstack([a, b, a[0]]), (A, B)),
    "vstack 1-d": (lambda a: np.vstack([a[0], a[1]]), (A,)),
    "roll": (lambda a: np.roll(a, 2), (A,)),
    "roll axis": (lambda a: np.roll(a, -1, axis=1), (A,)),
    "roll axes": (lambda a: np.roll(a, (1, 2), axis=(0, 1)), (A,)),
    "roll one shift two axes": (lambda a: np.roll(a, 1, axis=(0, 1)), (A,)),
    "roll two shifts one axis": (lambda a: np.roll(a, (1, 2), axis=0), (A,)),
    "roll 1-d negative": (lambda a: np.roll(a[0], -5), (A,)),
    "tile": (lambda a: np.tile(a, 2), (A,)),
    "tile 2-d": (lambda a: np.tile(a[0], (3, 2)), (A,)),
    "repeat": (lambda a: np.repeat(a, 2), (A,)),
    "repeat axis": (lambda b: np.repeat(b, 3, axis=0), (B,)),
    "repeat method": (lambda b: b.T.repeat(2, axis=-1), (B,)),
    "copy then arithmetic": (lambda a: np.concatenate([a, a]) * np.tile(a, (2, 1)), (A,)),
}


@pytest.mark.parametrize("fn, args", COPIES.values(), ids=COPIES.keys())
def test_copying_shape_op_matches_numpy(fn, args):
    check_against_numpy(fn, *args)


def test_copying_shape_op_errors():
    with pytest.raises(tj.ShapeError, match=r"test_views\.py:\d+"):
        tj.trace(lambda a, b: np.concatenate([a, b], axis=1), fallback="raise")(A, B)
    with pytest.raises(tj.ShapeError):
        tj.trace(lambda a, b: np.stack([a, b]), fallback="raise")(A, B)
    with pytest.raises(tj.ShapeError, match=r"test_views\.py:\d+"):
        tj.trace(lambda a: np.repeat(a, -1), fallback="raise")(A)
    with pytest.raises(tj.ShapeError, match=r"test_views\.py:\d+"):
        tj.trace(lambda a: np.tile(a, (2, -1)), fallback="raise")(A)
    with pytest.raises(tj.UnsupportedError, match="repeat"):
        tj.trace(lambda a: np.repeat(a, [1, 2, 3], axis=0), fallback="raise")(A)
