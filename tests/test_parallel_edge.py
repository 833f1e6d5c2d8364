"""Edge cases on the parallel path (prange loops, chunked full reductions, row and column
loops): 0-d values, empty and tiny arrays, reductions feeding kernels, broadcasting, strided
and reversed views, every dtype. Most tests force parallel=True; sizes reach past CHUNK where
chunking matters, and the default (parallel=None) is checked at a size above the threshold.
Shapes are shared between tests so compiled kernels are shared too."""

import numpy as np
import pytest
from conftest import DTYPES, check_against_numpy

import tracejit as tj
from tracejit.backends import cpu

N = 3 * cpu.CHUNK + 5  # several chunks and a partial one
ROWS = (256, 1024)
F32 = {"rtol": 1e-5, "atol": 1e-4}  # float32 sums accumulate in float64, NumPy's pairwise


def rnd(shape, dtype=np.float64, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    return x > 0 if np.dtype(dtype) == np.bool_ else x.astype(dtype)


def tol(dtype):
    return F32 if np.dtype(dtype) == np.float32 else {}


def kernels(fn, *args, **options):
    return tj.trace(fn, fallback="raise", **options).explain(*args).kernels


def test_mean_feeding_a_reduction_at_the_default_threshold():
    x = rnd(1_000_000)
    fn = lambda a: np.sum((a - a.mean()) ** 2)  # noqa: E731
    check_against_numpy(fn, x)
    assert all("prange" in k.source for k in kernels(fn, x))


def test_zero_d_results_feed_parallel_kernels():
    x, c = rnd(ROWS), np.array(1.5)
    check_against_numpy(lambda a, c: (np.sum((a - a.mean()) ** 2, axis=1), (a * c).sum(axis=0),
                                      a.std() * a), x, c, parallel=True)


def test_zero_d_arguments(monkeypatch):
    c = np.array(2.5)
    check_against_numpy(lambda c: (c * 2 + 1, np.sum(c * 2), c.argmax()), c, parallel=True)
    x = rnd(N)
    check_against_numpy(lambda a, w: np.where(w, a, -a), x, np.array(True), parallel=True)
    # the streaming loop (outputs past the cache) with a 0-d operand
    monkeypatch.setattr(cpu, "STREAM_BYTES", 1 << 14)
    check_against_numpy(lambda a, c: a * c + a, x, c, parallel=True)
    assert "_stream(" in kernels(lambda a, c: a * c + a, x, c, parallel=True)[0].source


@pytest.mark.parametrize("shape", [(0,), (1,), (0, 5), (5, 0), (1, 5)], ids=str)
def test_empty_and_tiny_arrays(shape):
    x = rnd(shape)
    check_against_numpy(lambda a: (a * 2 + 1, np.sum(a, axis=-1), a.var(axis=0)), x,
                        parallel=True)
    if x.size == 0:  # NumPy raises for an empty argmax or max; so must the kernels
        check_against_numpy(lambda a: a.argmax(), x, parallel=True)
        check_against_numpy(lambda a: a.max(axis=-1), x, parallel=True)


def test_reductions_of_reductions():
    x = rnd(ROWS)
    check_against_numpy(lambda a: (a.sum(axis=1).max(), a - a.mean(axis=1, keepdims=True).max()),
                        x, parallel=True)


def test_column_times_row_broadcasts():
    a, b = rnd((ROWS[0], 1)), rnd((1, ROWS[1]), seed=1)
    check_against_numpy(lambda a, b: (a * b - a, np.sum(a * b), np.sum(a - b, axis=0),
                                      a * b - (a * b).mean(axis=1, keepdims=True)),
                        a, b, parallel=True)


@pytest.mark.parametrize("view", ["strided", "reversed"])
def test_views(view):
    base = rnd((ROWS[0], 2 * ROWS[1]))
    x = base[:, ::2] if view == "strided" else base[::-1, ::-2]
    check_against_numpy(lambda a: (a * 2 + 1, a.sum(), a.argmax(axis=0),
                                   a - a.mean(axis=1, keepdims=True)), x, parallel=True)


def test_reversed_flat_view():
    check_against_numpy(lambda a: (a.sum(), a.argmax(), a - a.mean()), rnd(2 * N)[::-2],
                        parallel=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_dtypes(dtype):
    x = rnd(ROWS, dtype)
    check_against_numpy(lambda a: (a - a.mean(), a.argmax(), a.std(axis=1)), x, parallel=True,
                        **tol(dtype))


def test_where_argmax_var_std():
    x, y = rnd(N), rnd(N, seed=1)
    check_against_numpy(lambda a, b: (np.where(a > a.mean(), a, b), np.argmin(b), a.var(),
                                      a.std(ddof=1)), x, y, parallel=True)
