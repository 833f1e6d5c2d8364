"""Ordinary NumPy functions as a new user would write them, traced and checked against NumPy.

Nobody tuned tracejit for these: they are the activations, losses, distances, stencils and
small numerical helpers of everyday code, written the plain NumPy way. Each runs through
check_against_numpy with fallback="raise", so a function that would quietly run eagerly fails
here. The few that cannot be traced (a shape that depends on values, a conversion of a traced
value) assert the documented behaviour instead: with the default fallback="warn" they run
eagerly with a FallbackWarning that names the line, and return NumPy's result.

Arrays are tiny and most functions run on one or two dtypes and layouts: the cost of this
module is compiling kernels, not running them.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from conftest import assert_same, check_against_numpy

import tracejit as tj

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float64, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, shape).astype(dtype)


def ints(*shape, dtype=np.int64, lo=-9, hi=10):
    return RNG.integers(lo, hi, shape).astype(dtype)


# A NumPy float64 scalar such as np.sqrt(2 / np.pi) makes a float32 function's result float64,
# while the work before it stays float32, where kernels and NumPy's loops may differ by an ulp
# (x ** 3, tanh, log): such results are compared at float32 precision.
F32 = {"rtol": 1e-6, "atol": 1e-6}

CASES = []


def case(*variants):
    """Register the decorated function with its variants: each a tuple of arguments, with
    check_against_numpy's tolerances as an optional last item."""
    def register(fn):
        for i, variant in enumerate(variants):
            tolerance = isinstance(variant[-1], dict)
            args, tol = (variant[:-1], variant[-1]) if tolerance else (variant, {})
            CASES.append(pytest.param(fn, args, tol, id=f"{fn.__name__}-{i}"))
        return fn
    return register


# ---------------------------------------------------------------------------------------------
# optimisation test functions, stencils, convolution

@case((rand(30),), (rand(60, dtype=np.float32)[::2],))
def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


@case((rand(7, 9, dtype=np.float32).T,))
def jacobi_step(u):
    return 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:])


@case((rand(9, 7),))
def laplacian(u):
    return u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4 * u[1:-1, 1:-1]


@case((rand(30, dtype=np.float32), rand(3, dtype=np.float32)))
def conv1d_valid(x, w):
    k = w.shape[0]
    n = x.shape[0] - k + 1
    out = w[0] * x[:n]
    for i in range(1, k):
        out = out + w[i] * x[i:i + n]
    return out


# ---------------------------------------------------------------------------------------------
# activations

@case((rand(5, 7, lo=-8, hi=8),), (rand(9, dtype=np.float16),), (ints(6),))
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@case((rand(7, 5, dtype=np.float32, lo=-30, hi=30).T,))
def softplus(x):
    # the numerically stable form of log1p(exp(x))
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


@case((rand(5, 7, lo=-30, hi=30),))
def softplus_logaddexp(x):
    return np.logaddexp(0, x)


@case((rand(5, 7, dtype=np.float32, lo=-5, hi=5), F32), (rand(9, dtype=np.float16),))
def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


@case((rand(5, 7),))
def gelu_sigmoid(x):
    return x * sigmoid(1.702 * x)


@case((rand(3, 0),))
def swish(x, beta=1.0):
    return x / (1.0 + np.exp(-beta * x))


@case((rand(4, 6)[::-1, ::2],))
def leaky_relu(x):
    return np.where(x > 0, x, 0.01 * x)


@case((ints(12, dtype=np.int32),))
def relu6(x):
    return np.minimum(np.maximum(x, 0), 6)


# ---------------------------------------------------------------------------------------------
# rows: logsumexp, softmax, cross-entropy, layer norm, attention

@case((rand(6, 4, dtype=np.float32, lo=-50, hi=50)[:, ::-1],))
def logsumexp(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


@case((rand(4, 6, dtype=np.float32, lo=-5, hi=5),))
def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@case((rand(5, 4, lo=-5, hi=5), ints(5, lo=0, hi=4)),
      (rand(5, 4, dtype=np.float32), ints(5, dtype=np.int32, lo=-4, hi=4)))
def cross_entropy(logits, labels):
    # the log-probability of each row's label: a pair of index arrays
    n = logits.shape[0]
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.sum(np.exp(logits - m), axis=1, keepdims=True))
    return -np.mean(logp[np.arange(n), labels])


@case((rand(5, 4, lo=-5, hi=5), ints(5, lo=0, hi=4)))
def cross_entropy_onehot(logits, labels):
    onehot = labels[:, None] == np.arange(logits.shape[1])
    logp = logits - logsumexp(logits)[:, None]
    return -np.sum(np.where(onehot, logp, 0.0)) / logits.shape[0]


@case((rand(4, 6, dtype=np.float32), rand(6, dtype=np.float32), rand(6, dtype=np.float32)))
def layernorm(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


@case((rand(5, 4, dtype=np.float32), rand(5, 4, dtype=np.float32), rand(5, 3, dtype=np.float32)))
def causal_attention(q, k, v):
    scores = q @ k.T / np.sqrt(q.shape[-1])
    scores = np.where(np.triu(np.ones((5, 5), dtype=bool), k=1), -np.inf, scores)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v


# ---------------------------------------------------------------------------------------------
# losses

@case((ints(10), ints(10)))
def mse(pred, target):
    return np.mean((pred - target) ** 2)


@case((rand(4, 5, dtype=np.float32), rand(5, dtype=np.float32)))
def mae(pred, target):
    return np.mean(np.abs(pred - target))


@case((rand(20), rand(20)))
def huber(pred, target, delta=1.0):
    d = np.abs(pred - target)
    return np.mean(np.where(d <= delta, 0.5 * d ** 2, delta * (d - 0.5 * delta)))


_P = rand(20, lo=0, hi=1)


@case((_P, (_P > 0.4).astype(np.float64)), (_P.astype(np.float32), _P > 0.4, F32))
def binary_cross_entropy(p, y, eps=1e-7):
    p = np.clip(p, eps, 1 - eps)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


# ---------------------------------------------------------------------------------------------
# distances, k-means, similarity, kernels

@case((ints(6, 3), ints(4, 3)[::-1]))
def pairwise_broadcast(a, b):
    return np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)


@case((rand(6, 3), rand(4, 3)))
def pairwise_matmul(a, b):
    aa = np.sum(a * a, axis=1)[:, None]
    bb = np.sum(b * b, axis=1)[None, :]
    return np.maximum(aa + bb - 2 * a @ b.T, 0)


@case((rand(8, 2, dtype=np.float32), rand(3, 2, dtype=np.float32)))
def kmeans_assign(x, centers):
    return np.argmin(pairwise_broadcast(x, centers), axis=1)


@case((rand(12, 2), rand(3, 2)))
def kmeans_step(x, centers):
    labels = kmeans_assign(x, centers)
    onehot = (labels[:, None] == np.arange(centers.shape[0])).astype(x.dtype)
    counts = onehot.sum(axis=0)
    return onehot.T @ x / np.maximum(counts, 1)[:, None], labels


@case((rand(5, 3, dtype=np.float32), rand(4, 3, dtype=np.float32)))
def cosine_similarity(a, b):
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    return (a @ b.T) / (na * nb.T)


@case((rand(5, 3), rand(4, 3), 0.7))
def rbf_kernel(a, b, sigma):
    return np.exp(-0.5 * pairwise_broadcast(a, b) / sigma ** 2)


@case((rand(7), rand(5)))
def gaussian_on_a_grid(xs, ys):
    gx, gy = np.meshgrid(xs, ys)
    return np.exp(-(gx ** 2 + gy ** 2) / 2)


# ---------------------------------------------------------------------------------------------
# scaling and normalisation

@case((ints(6, 3, lo=1),))
def normalise_columns(x):
    return x / np.linalg.norm(x, axis=0, keepdims=True)


@case((rand(3, 6).T,))
def zscore(x):
    return (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)


@case((ints(6, 3),))
def min_max(x):
    lo, hi = x.min(axis=0), x.max(axis=0)
    return (x - lo) / (hi - lo)


@case((rand(12, dtype=np.float32),))
def clip_and_round(x):
    return np.round(np.clip(x, -1.5, 1.5) * 4) / 4, x.clip(0, 1).round(2)


@case((rand(12, lo=-100, hi=100),), (ints(12) * 7,))
def round_to_cents_and_tens(x):
    return np.round(x, 2), np.around(x, -1)


@case((np.where(rand(4, 5) > 1, np.nan, rand(4, 5)),))
def nan_aware_summary(x):
    return np.nanmean(x, axis=0), np.nanmax(x)


# ---------------------------------------------------------------------------------------------
# polynomials, differences, running sums

@case((rand(12, dtype=np.float32),), (ints(12),))
def horner(x, coeffs=(2.0, -3.0, 0.5, 1.0)):
    y = np.zeros_like(x)
    for c in coeffs:
        y = y * x + c
    return y


@case((ints(12),))
def polyval_const(x):
    return np.polyval([2.0, -3.0, 0.5, 1.0], x)


@case((ints(15, dtype=np.int32)[::-1],))
def differences(x):
    return np.diff(x), np.diff(x, n=2), np.diff(x.reshape(3, -1), axis=0)


@case((ints(15),))
def moving_average(x, w=3):
    c = np.concatenate([np.zeros(1), np.cumsum(x)])
    return (c[w:] - c[:-w]) / w


@case((np.sort(rand(12)),))
def trapezoid(x):
    y = np.sin(x)
    by_hand = np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2
    return by_hand, np.trapezoid(y, x)


# ---------------------------------------------------------------------------------------------
# linear algebra

@case((rand(4, dtype=np.float32), rand(6, dtype=np.float32)))
def outer_plus_one(a, b):
    return np.outer(a, b) + 1


@case((rand(3, 4), rand(4, 2)), (ints(3, 4), ints(4, 2)))
def einsum_matmul(a, b):
    return np.einsum("ij,jk->ik", a, b), np.einsum("ij,ij->i", a, a)


@case(tuple(rand(*s, dtype=np.float32) for s in ((6, 4), (4, 8), (8,), (8, 2), (2,))))
def mlp(x, w1, b1, w2, b2):
    h = np.tanh(x @ w1 + b1)
    return h @ w2 + b2


@case((rand(2, 3, 4), rand(2, 4, 3)))
def batched_matmul(a, b):
    return np.matmul(a, b), a @ np.swapaxes(b, 1, 2).transpose(0, 2, 1), a @ b[0]


@case((rand(7), rand(3, 4)))
def norms(x, m):
    return (np.linalg.norm(x), np.linalg.norm(x, 1), np.linalg.norm(x, np.inf),
            np.linalg.norm(m, "fro"), np.linalg.norm(m, axis=1))


# ---------------------------------------------------------------------------------------------
# interpolation: gathers with computed indices

_GRID = rand(5, 6)
_XS, _YS = rand(9, lo=0, hi=5.5), rand(9, lo=0, hi=4.5)


@case((_GRID, _XS, _YS))
def bilinear(grid, xs, ys):
    h, w = grid.shape
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 2)
    fx, fy = xs - x0, ys - y0
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


@case((_GRID, _XS, _YS))
def bilinear_flat(grid, xs, ys):
    h, w = grid.shape
    x0 = np.clip(np.floor(xs).astype(np.int64), 0, w - 2)
    y0 = np.clip(np.floor(ys).astype(np.int64), 0, h - 2)
    flat, i = grid.ravel(), y0 * w + x0
    fx, fy = xs - x0, ys - y0
    top = flat[i] * (1 - fx) + flat[i + 1] * fx
    bottom = flat[i + w] * (1 - fx) + flat[i + w + 1] * fx
    return top * (1 - fy) + bottom * fy


# ---------------------------------------------------------------------------------------------
# booleans and integers

@case((rand(5, 4, dtype=np.float32).T,))
def boolean_summaries(x):
    return (np.any(x > 0, axis=1), np.count_nonzero(x > 0.5), np.count_nonzero(x > 0, axis=1),
            np.sum(x > 0), np.mean(x > 0))


@case((ints(12, dtype=np.int32, lo=0, hi=1000), ints(12, dtype=np.int32, lo=0, hi=1000)),
      (ints(12, dtype=np.uint8, lo=0, hi=256), ints(12, dtype=np.uint8, lo=0, hi=256)))
def bit_ops(a, b):
    return (a >> 2) & 0x0F, (a << 1) | b, a ^ b, ~a & 0x7F


@case(tuple(ints(8, dtype=np.uint8, lo=0, hi=256) for _ in range(3)))
def pack_rgb(r, g, b):
    return (r.astype(np.uint32) << 16) | (g.astype(np.uint32) << 8) | b


# ---------------------------------------------------------------------------------------------
# geometry

@case((rand(8, dtype=np.float32), rand(8, dtype=np.float32)))
def to_polar(x, y):
    return np.hypot(x, y), np.degrees(np.arctan2(y, x))


@case((rand(8, lo=0), rand(8, lo=-180, hi=180)))
def from_polar(r, theta_degrees):
    t = np.deg2rad(theta_degrees)
    return r * np.cos(t), r * np.sin(t)


@case((rand(6, 2), 0.3))
def rotate(points, angle):
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[1.0, 0.0], [0.0, 1.0]]) * c + np.array([[0.0, -1.0], [1.0, 0.0]]) * s
    return points @ rot.T


# ---------------------------------------------------------------------------------------------
# Python and NumPy scalars, keyword arguments, containers

@case((rand(6), 0.25, 3), (rand(6, dtype=np.float32), np.float32(0.25), np.int64(3)))
def mixed_scalars(x, alpha, n):
    return x * np.float32(2) + alpha - np.float64(0.5) * x / n + 3


@case((rand(6),))
def scaled_with_keywords(x):
    return scale(x), scale(x, 3.0, offset=0.5), scale(x, offset=np.float32(-1))


def scale(x, factor=2.0, *, offset=1):
    return x * factor + offset


@case((ints(6, dtype=np.int32),))
def stats(x):
    return {"mean": x.mean(), "range": (x.min(), x.max()), "n": x.shape[0]}


@pytest.mark.parametrize("fn, args, tol", CASES)
def test_user_function(fn, args, tol):
    check_against_numpy(fn, *args, **tol)


def test_keyword_arguments_and_defaults_of_the_traced_function():
    x = rand(6, dtype=np.float32)
    check_against_numpy(lambda x: swish(x, beta=2.0), x)
    traced = tj.trace(scale, fallback="raise")
    assert_same(traced(x, offset=2), scale(x, offset=2))
    assert_same(traced(x, 0.5), scale(x, 0.5))
    assert traced.cache_info().traces == 2  # the second call passes a new scalar argument


def test_gradient_of_a_loss_with_a_label_gather():
    logits, labels = rand(5, 4), ints(5, lo=0, hi=4)
    grad = tj.grad(cross_entropy)(logits, labels)
    probs = softmax(logits)
    probs[np.arange(5), labels] -= 1
    np.testing.assert_allclose(grad, probs / 5, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# what cannot be traced: eager NumPy, with a warning that names the line

def max_of_positives(x):
    return x[x > 0].max()  # MARK: NumPy raises when nothing is positive


def scale_by_count(x, n):
    return x / float(n)  # a Python value: n becomes static


def test_scalar_argument_used_as_a_python_value_traces_by_value():
    traced = tj.trace(scale_by_count, fallback="raise")
    x = rand(4)
    for n in (3, 4, 3):
        assert_same(traced(x, n), scale_by_count(x, n))
    info = traced.cache_info()
    # the first trace finds n used as a value and traces again by value; then one per value
    assert (info.traces, info.entries, info.fallbacks) == (3, 2, 0), info


def normalise_input(x):
    x = np.asfortranarray(x)  # MARK
    return x / x.sum()


def running_max(x):
    out = np.empty_like(x)
    out[0] = x[0]
    for i in range(1, x.shape[0]):
        out[i] = max(out[i - 1], x[i])  # MARK
    return out


def percentile_filter(x):
    return np.percentile(np.stack([x[:-2], x[1:-1], x[2:]]), 25, axis=0)  # MARK


@pytest.mark.parametrize("fn, args, error, words", [
    (max_of_positives, (rand(10),), tj.UnsupportedError, "boolean-mask"),
    (normalise_input, (rand(4),), tj.TraceError, "np.asarray"),
    (running_max, (rand(5),), tj.TraceError, r"bool\(\)"),
    (percentile_filter, (rand(6),), tj.UnsupportedError, "numpy.percentile"),
], ids=lambda v: getattr(v, "__name__", None))
def test_untraceable_function_runs_eagerly_and_names_the_line(fn, args, error, words):
    lines, start = inspect.getsourcelines(fn)
    line = start + next(i for i, text in enumerate(lines) if "# MARK" in text)
    where = f"test_user_functions.py:{line}"
    with pytest.raises(error, match=words) as info:
        tj.trace(fn, fallback="raise")(*args)
    assert where in str(info.value)
    traced = tj.trace(fn)
    with pytest.warns(tj.FallbackWarning, match=rf"{words}.*{where}"):
        result = traced(*args)
    assert_same(result, fn(*args))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the decision is remembered: no second warning
        assert_same(traced(*args), fn(*args))
    assert traced.cache_info().fallbacks == 2
