"""Writes through integer index arrays (`x[idx] = v`, `x[np.arange(n), labels] = 0`,
`x[:, idx] = v`, `np.add.at`), arrays built from lists of traced values (`np.array([[c, -s],
[s, c]])`), np.eye in traced code, np.heaviside and ufunc.accumulate, each checked against eager
NumPy: results, and the arguments after the call."""

import numpy as np
import pytest
from conftest import assert_same, check_against_numpy

import tracejit as tj


def _run(fn, *args, calls=2):
    """Call fn eagerly and traced (fallback="raise") on copies of args; the results and the
    arguments afterwards must be NumPy's, on a first call and on a cached one."""
    traced = tj.trace(fn, fallback="raise")
    for _ in range(calls):
        eager = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        mine = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        with np.errstate(all="ignore"):
            expected = fn(*eager)
            result = traced(*mine)
        assert_same(result, expected)
        for i, (t, e) in enumerate(zip(mine, eager)):
            if isinstance(e, np.ndarray):
                assert_same(t, e, _path=f"argument {i}")
    info = traced.cache_info()
    assert info.fallbacks == 0 and info.traces == 1, info
    return traced


# ---------------------------------------------------------------------------------------------
# assignment through index arrays

def scatter_traced_index(x, idx, v):
    y = x * 2.0
    y[idx] = v  # repeats: the last write wins
    return y + 1.0


def zero_the_labels(scores, labels):
    m = scores - 1.0
    m[np.arange(scores.shape[0]), labels] = 0
    return np.maximum(m, 0).sum(axis=1)


def columns(x, idx, v):
    x[:, idx] = v
    return x * 3.0


def add_at_argument(x, idx, v):
    np.add.at(x, idx, v)
    return x.sum()


def augmented(x, idx):
    y = x + 0.0
    y[idx] += 1.0  # buffered: a repeated index adds once, as in NumPy
    return y * y


def mask_rows(x, rows):
    x[rows] = -1.0


CASES = {
    "traced index, repeats and negatives": (
        scatter_traced_index,
        lambda r, n: (r.random(n), np.array([3, -1, 3, 0, n // 2]), np.arange(5.0))),
    "arange and labels": (
        zero_the_labels, lambda r, n: (r.random((n // 8, 8)), r.integers(0, 8, n // 8))),
    "columns of an argument": (
        columns, lambda r, n: (r.random((n // 8, 8)), np.array([6, -1, 0]), r.random(3))),
    "np.add.at on an argument": (
        add_at_argument, lambda r, n: (r.random(n), r.integers(-n, n, 100), r.random(100))),
    "augmented assignment": (augmented, lambda r, n: (r.random(n), np.array([1, 1, 4, -2]))),
    "mask of rows": (mask_rows, lambda r, n: (r.random((n // 4, 4)), r.random(n // 4) < 0.5)),
}


@pytest.mark.parametrize("n", [64, 2_000_000], ids=["small", "parallel"])
@pytest.mark.parametrize("name", CASES)
def test_index_assignment_matches_numpy(name, n):
    fn, make = CASES[name]
    args = make(np.random.default_rng(0), n)
    traced = _run(fn, *args)
    if n > 64:
        assert "prange" in str(traced.explain(*args))


def test_constant_index_arrays_and_keys():
    def f(x):
        y = x.copy()
        y[[0, -1, 2]] = [7.0, 8.0, 9.0]
        y[np.array([1, 1])] = np.array([[5.0]])  # NumPy drops the value's leading unit axes
        y[[]] = 3.0
        return y

    def g(x):
        x[0, [1, -1]] = [10, 20]  # an int next to an array
        x[[1, 0], 1:3] = 0.5  # truncated into the int array
        x[..., [0]] += 1

    def h(x):
        x[[0, 2], :, [1, 0]] = -1  # arrays apart: the gathered dimension goes first
        return x[[0, 2], :, [1, 0]]

    _run(f, np.arange(5.0))
    _run(g, np.arange(12).reshape(3, 4))
    _run(h, np.arange(24.0).reshape(3, 4, 2))


def test_traced_index_from_the_function_and_a_list_of_traced_ints():
    def g(x):
        i, j = np.argmax(x), np.argmin(x)
        y = x.copy()
        y[[i, j]] = [1.0, 2.0]
        z = np.zeros((2, 3))
        z[i % 2, [j % 3]] = x[0]
        return y, z

    _run(g, np.array([0.3, -2.0, 5.0, 1.0]))


def test_views_and_dtypes():
    def f(x, idx):
        x[1:][idx] = 100  # through a view of the argument
        x.T[0, idx] = -100
        return x

    def g(x, idx):
        y = np.zeros(x.shape, np.float32)
        y[idx] = x[idx]  # cast to the target's dtype
        b = np.zeros(x.shape, bool)
        b[idx] = True
        return y, b

    traced = _run(f, np.arange(12.0).reshape(4, 3), np.array([0, 2]))
    x = np.arange(12.0).reshape(4, 3)
    assert traced(x, np.array([0, 2])) is x
    _run(g, np.linspace(-1, 1, 7), np.array([0, 3, 3, -1]))


def test_index_out_of_range_raises_numpys_index_error():
    def f(x, idx):
        x[idx] = 0.0
        return x * 2

    def g(x):
        y = x * 2
        y[[0, 5]] = 1.0
        return y

    x = np.arange(5.0)
    with pytest.raises(IndexError):
        f(x.copy(), np.array([1, 5]))
    traced = tj.trace(f, fallback="raise")
    with pytest.raises(IndexError):
        traced(x, np.array([1, -6]))
    assert_same(x, np.arange(5.0))  # nothing written, as in NumPy
    assert_same(traced(x, np.array([1, -5])), np.array([0.0, 0, 4, 6, 8]))
    with pytest.raises(IndexError, match="out of bounds"):
        tj.trace(g, fallback="raise")(x)


def test_value_that_does_not_broadcast_raises_like_numpy():
    def f(x, idx):
        y = x * 1.0
        y[idx] = np.ones(3)
        return y

    with pytest.raises(ValueError):
        f(np.arange(5.0), np.array([0, 1]))
    with pytest.raises(ValueError, match="shape mismatch"):
        tj.trace(f, fallback="raise")(np.arange(5.0), np.array([0, 1]))


def test_ufunc_at_with_repeats():
    def f(x, idx, v):
        np.add.at(x, idx, v)
        np.subtract.at(x, (idx,), 0.25)
        np.maximum.at(x, idx[:2], 10.0)
        return x

    def g(counts, labels):
        np.add.at(counts, labels, 1)  # an integer histogram, like np.bincount
        return counts

    def h(x, idx):
        np.multiply.at(x, (slice(None), idx), np.float32(2))  # float32 array: its own loop
        return x

    idx = np.array([0, 2, 2, -1, 0, 0])
    _run(f, np.zeros(5), idx, np.arange(6.0))
    _run(g, np.zeros(4, np.int64), np.array([3, 0, 3, 3, 1]))
    _run(h, np.ones((2, 4), np.float32), np.array([1, 1, 3]))


def test_gradient_through_index_assignment_keeps_the_last_write():
    def loss(x, v, idx):
        y = x * 1.0
        y[idx] = v * v
        np.add.at(y, idx[::-1], v)
        return np.sum(y * np.arange(1.0, 6.0))

    x, v = np.linspace(-1, 1, 5), np.array([0.5, -1.5, 2.0])
    idx = np.array([1, 3, 1])
    gx, gv = tj.grad(loss, argnums=(0, 1))(x, v, idx)
    eps = 1e-6
    num = [(loss(x, v + eps * e, idx) - loss(x, v - eps * e, idx)) / (2 * eps)
           for e in np.eye(3)]
    np.testing.assert_allclose(gv, num, rtol=1e-6)
    np.testing.assert_array_equal(gx, [1.0, 0.0, 3.0, 0.0, 5.0])


# ---------------------------------------------------------------------------------------------
# arrays from lists of traced values, and np.eye

def rotation(points, theta):
    c, s = np.cos(theta), np.sin(theta)
    R = np.array([[c, -s], [s, c]])
    return points @ R.T


def mixed(x, y):
    a = np.asarray([x.sum(), y.max(), 1], dtype=np.float32)
    b = np.array([[x, y], np.stack([y, x])], ndmin=4)
    c = np.stack([[x.min(), 1], [2, y.min()]])
    d = np.array((x.mean(), 2))
    return a, b, c, d, np.array([[1, 2], [3, 4]])  # no traced value: NumPy's own array


def python_scalars(x, a, b):
    return x * np.array([a, b, True])  # Python int and float arguments: NumPy's dtype


@pytest.mark.parametrize("case", ["rotation", "mixed", "python scalars"])
def test_array_of_traced_values(case):
    rng = np.random.default_rng(3)
    if case == "rotation":
        check_against_numpy(rotation, rng.random((6, 2)), 0.3)
        check_against_numpy(rotation, rng.random((3, 2)).astype(np.float32), np.float32(1.2),
                            rtol=1e-6)
    elif case == "mixed":
        check_against_numpy(mixed, rng.random(3), rng.random(3))
    else:
        check_against_numpy(python_scalars, rng.random(3), 2, 0.5)
        check_against_numpy(python_scalars, np.arange(3), 2, 3)


def test_array_errors_are_numpys():
    def ragged(x):
        return np.array([x, x[:2]])

    def bare(x):
        return np.array(x) + 1  # a traced array on its own: a copy of it

    with pytest.raises(ValueError, match="inhomogeneous"):
        tj.trace(ragged, fallback="raise")(np.arange(3.0))
    assert_same(tj.trace(bare, fallback="raise")(np.arange(3.0)), np.arange(3.0) + 1)


def test_eye_and_identity_in_traced_code():
    def onehot(logits, labels):
        return (np.eye(logits.shape[1])[labels] * logits).sum(1)

    def filled(c):
        m = np.identity(3)
        m[0, 1] = c
        return m @ np.eye(3, 4, k=1, dtype=np.float32)

    rng = np.random.default_rng(4)
    check_against_numpy(onehot, rng.random((9, 4)), rng.integers(0, 4, 9))
    check_against_numpy(filled, 2.5)


# ---------------------------------------------------------------------------------------------
# np.heaviside and ufunc.accumulate

HEAVISIDE_X = np.array([-2.0, -0.0, 0.0, 3.0, np.nan, -np.inf, np.inf])


@pytest.mark.parametrize("args", [
    (HEAVISIDE_X, 0.5), (HEAVISIDE_X, np.array([np.nan])), (HEAVISIDE_X.astype(np.float32), 1.0),
    (np.array([-1, 0, 2]), 0), (np.float32(0), 2.0), (HEAVISIDE_X, HEAVISIDE_X[::-1]),
], ids=["half", "nan-h", "float32", "int", "scalar", "both-arrays"])
def test_heaviside(args):
    check_against_numpy(np.heaviside, *args)


def test_heaviside_parallel():
    x = np.random.default_rng(5).uniform(-2, 2, 2_000_000)
    x[::7] = 0.0
    traced = check_against_numpy(lambda a: np.heaviside(a, 0.5) * a, x)
    assert "prange" in str(traced.explain(x))


@pytest.mark.parametrize("ufunc", [np.add, np.multiply, np.maximum, np.minimum])
@pytest.mark.parametrize("x", [np.array([[3, -1, 4], [1, 5, -9]], np.int32),
                               np.array([[0.5, np.nan, 2.0], [-1.0, 3.0, 1.5]]),
                               np.array([True, False, True])], ids=["int32", "float", "bool"])
def test_accumulate(ufunc, x):
    check_against_numpy(lambda a: ufunc.accumulate(a), x)
    check_against_numpy(lambda a: ufunc.accumulate(a, axis=-1, dtype=np.float64) * 2, x)


def test_accumulate_on_a_scalar_raises():
    with pytest.raises(TypeError):
        tj.trace(lambda a: np.add.accumulate(a), fallback="raise")(np.float64(1.0))


def test_running_max_drawdown_parallel():
    p = 100 * np.exp(np.cumsum(np.random.default_rng(6).normal(0, 0.01, 2_000_000)))

    def drawdown(p):
        peak = np.maximum.accumulate(p)
        return ((p - peak) / peak).min()

    traced = check_against_numpy(drawdown, p)
    assert "prange" in str(traced.explain(p))
