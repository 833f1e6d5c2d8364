"""A corpus of everyday NumPy code, each function run at a small size and at a large one.

The functions are written the way people write NumPy (statistics, stencils, ODE steps, k-means,
losses, image filters, optimisers, special functions, geometry, finance, Python containers and
loops), not adapted to tracejit. Each runs at a small size, and at about 2M elements
(1500 x 1500 for images), where kernels take the parallel path. Compiling the parallel kernels
takes seconds per function, so most large sizes are marked `slow` and run only with
TRACEJIT_SLOW=1 (see LARGE_IN_EVERY_RUN).

An entry either traces and equals NumPy (`check_against_numpy`, fallback="raise"; for an entry
that writes into its arguments, `check_mutating_against_numpy`, which also compares the
arguments after the call with eager NumPy's), or is an expected fallback: its `# FALLBACK` line
is one tracing does not follow (a documented limit), so with fallback="warn" it warns, naming
that line and the reason, and still returns NumPy's result. Entries marked xfail(strict=True)
fail today for a reason that is not a limit of the design; they turn into failures once fixed,
and then the mark goes.
"""

from __future__ import annotations

import inspect
import os
import re
import warnings
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pytest
from conftest import array_leaves, assert_same, check_against_numpy

import tracejit as tj


@dataclass(frozen=True)
class Size:
    n: int          # 1-d length
    hw: tuple       # an image
    rows: int       # rows of a (rows, 8) data matrix


SMALL = Size(n=37, hw=(13, 17), rows=11)
LARGE = Size(n=2_000_000, hw=(1500, 1500), rows=250_000)


@dataclass
class Entry:
    fn: object
    make: object                      # (rng, Size) -> tuple of arguments
    tol: dict = field(default_factory=dict)
    large_tol: dict = field(default_factory=dict)
    fallback: str | None = None       # the reason's words, when the entry falls back
    options: dict = field(default_factory=dict)
    marks: tuple = ()
    mutates: bool = False             # writes into its arguments


ENTRIES: list[Entry] = []


def corpus(make, *, tol=None, large_tol=None, fallback=None, xfail=None, mutates=False,
           **options):
    """Register a corpus function. `make(rng, size)` builds its arguments; `tol` are the
    comparison tolerances (`large_tol` at the large size only); `fallback` the words of the
    expected fallback's reason; `xfail` the reason it fails today; `mutates` that it writes into
    its arguments (compared with eager NumPy's after the call)."""
    def register(fn):
        marks = (pytest.mark.xfail(strict=True, reason=xfail),) if xfail else ()
        ENTRIES.append(Entry(fn, make, tol or {}, large_tol or tol or {}, fallback, options,
                             marks, mutates))
        return fn
    return register


def normal(r, *shape, dtype=np.float64, scale=1.0, loc=0.0):
    return (loc + scale * r.standard_normal(shape)).astype(dtype)


def uniform(r, *shape, lo=0.0, hi=1.0, dtype=np.float64):
    return r.uniform(lo, hi, shape).astype(dtype)


# float32 results that go through a reduction: kernels sum float32 in float64, NumPy pairwise in
# float32, so they agree to about 1e-6 relative; at 2M elements a little more.
F32 = {"rtol": 2e-5, "atol": 2e-5}
# float64 statistics of 2M elements: summation order differs (pairwise vs chunked in parallel)
F64 = {"rtol": 1e-9, "atol": 1e-11}


# ---------------------------------------------------------------------------------------------
# statistics

@corpus(lambda r, z: (normal(r, z.n, loc=3.0, scale=2.0),), tol=F64)
def zscore(x):
    return (x - x.mean()) / x.std()


# Along axis 0 NumPy adds float32 rows one after another (not pairwise): over 250 000 rows its
# mean and std are off by about 1e-4 relative, where the kernels accumulate in float64.
@corpus(lambda r, z: (normal(r, z.rows, 8, dtype=np.float32),), tol=F32,
        large_tol={"rtol": 5e-4, "atol": 5e-4})
def standardize_columns(X):
    mu = X.mean(axis=0)
    sigma = X.std(axis=0, ddof=1)
    return (X - mu) / sigma


@corpus(lambda r, z: (normal(r, z.rows, 8),), tol=F64)
def covariance(X):
    Xc = X - X.mean(axis=0)
    return Xc.T @ Xc / (X.shape[0] - 1)


@corpus(lambda r, z: (normal(r, z.rows, 8),), tol=F64)
def np_cov(X):
    return np.cov(X, rowvar=False)


@corpus(lambda r, z: (normal(r, z.n), normal(r, z.n)), tol=F64)
def pearson(x, y):
    xm = x - x.mean()
    ym = y - y.mean()
    return np.sum(xm * ym) / np.sqrt(np.sum(xm ** 2) * np.sum(ym ** 2))


@corpus(lambda r, z: (normal(r, z.n), normal(r, z.n)), tol=F64)
def np_corrcoef(x, y):
    return np.corrcoef(x, y)[0, 1]


@corpus(lambda r, z: (normal(r, z.n), uniform(r, z.n)), tol=F64)
def weighted_mean(x, w):
    return np.sum(x * w) / np.sum(w)


@corpus(lambda r, z: (normal(r, z.n, dtype=np.float32), uniform(r, z.n, dtype=np.float32)),
        tol=F32)
def np_average_weights(x, w):
    return np.average(x, weights=w)


@corpus(lambda r, z: (r.exponential(2.0, z.n),), tol=F64)
def moments(x):
    n = x.size
    mean = x.sum() / n
    d = x - mean
    m2 = (d ** 2).sum() / n
    m3 = (d ** 3).sum() / n
    m4 = (d ** 4).sum() / n
    return {"mean": mean, "var": m2, "skew": m3 / m2 ** 1.5, "kurtosis": m4 / m2 ** 2 - 3.0}


@corpus(lambda r, z: (r.exponential(2.0, z.n),), tol=F64)
def raw_moments(x):
    return [np.mean(x ** k) for k in range(1, 5)]


@corpus(lambda r, z: (uniform(r, *z.hw, lo=-3, hi=7, dtype=np.float32),), tol=F32)
def min_max_scale(x):
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo)


@corpus(lambda r, z: (normal(r, z.n),), tol=F64)
def robust_clip(x, k=3.0):
    mu, sd = x.mean(), x.std()
    return np.clip(x, mu - k * sd, mu + k * sd)


@corpus(lambda r, z: (normal(r, z.n),))
def median_abs_deviation(x):
    med = np.median(x)
    return np.median(np.abs(x - med))


# ---------------------------------------------------------------------------------------------
# stencils

@corpus(lambda r, z: (normal(r, z.n), 0.1))
def laplacian_1d(u, dx):
    return (u[:-2] - 2 * u[1:-1] + u[2:]) / dx ** 2


@corpus(lambda r, z: (normal(r, *z.hw),))
def laplacian_2d_periodic(u):
    return (np.roll(u, 1, axis=0) + np.roll(u, -1, axis=0)
            + np.roll(u, 1, axis=1) + np.roll(u, -1, axis=1) - 4 * u)


@corpus(lambda r, z: (normal(r, *z.hw, dtype=np.float32),))
def laplacian_2d_slices(u):
    lap = np.zeros_like(u)
    lap[1:-1, 1:-1] = (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:]
                       - 4 * u[1:-1, 1:-1])
    return lap


@corpus(lambda r, z: (uniform(r, z.n),))
def heat_1d_steps(u, alpha=0.2, steps=5):
    for _ in range(steps):
        u = np.concatenate([u[:1], u[1:-1] + alpha * (u[:-2] - 2 * u[1:-1] + u[2:]), u[-1:]])
    return u


@corpus(lambda r, z: (normal(r, z.n),))
def central_gradient(f, h=0.01):
    return np.gradient(f, h)


@corpus(lambda r, z: (normal(r, *z.hw),))
def five_point_smooth(u):
    return 0.5 * u[1:-1, 1:-1] + 0.125 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2]
                                          + u[1:-1, 2:])


# ---------------------------------------------------------------------------------------------
# ODE steps

@corpus(lambda r, z: (uniform(r, z.n, lo=0.1, hi=2.0), 0.01))
def logistic_euler(y, dt, r=1.5, K=2.0, steps=10):
    for _ in range(steps):
        y = y + dt * r * y * (1 - y / K)
    return y


def oscillator(x, v, omega=2.0):
    return v, -omega ** 2 * x


@corpus(lambda r, z: (normal(r, z.n), normal(r, z.n), 0.05))
def rk4_oscillator(x, v, dt, steps=4):
    for _ in range(steps):
        k1x, k1v = oscillator(x, v)
        k2x, k2v = oscillator(x + 0.5 * dt * k1x, v + 0.5 * dt * k1v)
        k3x, k3v = oscillator(x + 0.5 * dt * k2x, v + 0.5 * dt * k2v)
        k4x, k4v = oscillator(x + dt * k3x, v + dt * k3v)
        x = x + dt / 6 * (k1x + 2 * k2x + 2 * k3x + k4x)
        v = v + dt / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
    return x, v


@corpus(lambda r, z: ({"prey": uniform(r, z.n, lo=5, hi=10, dtype=np.float32),
                       "pred": uniform(r, z.n, lo=1, hi=3, dtype=np.float32)}, 0.01))
def lotka_volterra(state, dt, a=1.1, b=0.4, c=0.4, d=0.1):
    x, y = state["prey"], state["pred"]
    for _ in range(3):
        x, y = x + dt * (a * x - b * x * y), y + dt * (d * x * y - c * y)
    return {"prey": x, "pred": y}


@corpus(lambda r, z: (normal(r, z.rows, 3), normal(r, z.rows, 3), 0.01))
def leapfrog_gravity(pos, vel, dt):
    for _ in range(3):
        r = np.linalg.norm(pos, axis=1, keepdims=True)
        acc = -pos / r ** 3
        vel = vel + dt * acc
        pos = pos + dt * vel
    return pos, vel


# ---------------------------------------------------------------------------------------------
# k-means

@corpus(lambda r, z: (normal(r, z.rows, 8), normal(r, 4, 8)))
def kmeans_assign(X, centers):
    d2 = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=-1)
    return np.argmin(d2, axis=1)


@corpus(lambda r, z: (normal(r, z.rows, 8, dtype=np.float32), normal(r, 4, 8, dtype=np.float32)),
        tol=F32)
def kmeans_inertia(X, centers):
    d2 = np.sum((X[:, np.newaxis] - centers) ** 2, axis=2)
    labels = d2.argmin(axis=1)
    return labels, d2.min(axis=1).sum()


@corpus(lambda r, z: (normal(r, z.rows, 8), r.integers(0, 4, z.rows)), tol=F64)
def kmeans_update(X, labels, k=4):
    onehot = (labels[:, None] == np.arange(k)).astype(X.dtype)
    counts = onehot.sum(axis=0)
    return (onehot.T @ X) / counts[:, None]


@corpus(lambda r, z: (normal(r, z.rows, 8), normal(r, 4, 8)), tol=F64)
def kmeans_expanded_distances(X, C):
    d2 = (X ** 2).sum(1)[:, None] - 2 * X @ C.T + (C ** 2).sum(1)[None, :]
    return d2.argmin(1), np.sqrt(np.maximum(d2, 0))


# ---------------------------------------------------------------------------------------------
# losses with integer labels

@corpus(lambda r, z: (normal(r, z.rows, 8, scale=3.0), r.integers(0, 8, z.rows)), tol=F64)
def cross_entropy(logits, labels):
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(n), labels].mean()


@corpus(lambda r, z: (normal(r, z.rows, 8, scale=3.0, dtype=np.float32),), tol=F32)
def log_softmax(x):
    m = np.max(x, axis=-1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


@corpus(lambda r, z: (normal(r, z.rows, 8), r.integers(0, 8, z.rows)), tol=F64)
def multiclass_hinge(scores, y):
    n = scores.shape[0]
    correct = scores[np.arange(n), y]
    margins = np.maximum(0, scores - correct[:, None] + 1.0)
    margins = np.where(np.arange(scores.shape[1]) == y[:, None], 0.0, margins)
    return margins.sum() / n


@corpus(lambda r, z: (normal(r, z.rows, 8), r.integers(0, 8, z.rows)), tol=F64)
def multiclass_hinge_setitem(scores, y):
    n = scores.shape[0]
    margins = np.maximum(0, scores - scores[np.arange(n), y][:, None] + 1.0)
    margins[np.arange(n), y] = 0
    return margins.sum() / n


@corpus(lambda r, z: (normal(r, z.n), np.where(uniform(r, z.n) > 0.5, 1.0, -1.0)), tol=F64)
def hinge(scores, y):
    return np.mean(np.maximum(0.0, 1.0 - y * scores))


@corpus(lambda r, z: (uniform(r, z.n, dtype=np.float32), uniform(r, z.n) > 0.3), tol=F32)
def binary_cross_entropy(p, y, eps=1e-7):
    p = np.clip(p, eps, 1 - eps)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


# np.eye in traced code is a traced constant, so a traced index gathers from it
@corpus(lambda r, z: (normal(r, z.rows, 8), r.integers(0, 8, z.rows)), tol=F64)
def nll_onehot_eye(logits, labels):
    onehot = np.eye(logits.shape[1])[labels]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -(onehot * logp).sum(-1).mean()


@corpus(lambda r, z: (normal(r, z.n), normal(r, z.n)), tol=F64)
def huber(pred, target, delta=1.0):
    err = np.abs(pred - target)
    return np.mean(np.where(err < delta, 0.5 * err ** 2, delta * (err - 0.5 * delta)))


@corpus(lambda r, z: (uniform(r, z.n, lo=0.01, hi=0.99), uniform(r, z.n) > 0.5), tol=F64)
def focal_loss(p, y, gamma=2.0, alpha=0.25):
    pt = np.where(y, p, 1 - p)
    at = np.where(y, alpha, 1 - alpha)
    return -(at * (1 - pt) ** gamma * np.log(pt)).mean()


@corpus(lambda r, z: (normal(r, z.rows, 8), normal(r, z.rows)), tol=F64)
def linear_regression_gd(X, y, lr=0.1, steps=5):
    n, d = X.shape
    Xb = np.hstack([np.ones((n, 1)), X])
    w = np.zeros(d + 1)
    for _ in range(steps):
        grad = Xb.T @ (Xb @ w - y) / n
        w = w - lr * grad
    return w, np.mean((Xb @ w - y) ** 2)


@corpus(lambda r, z: (normal(r, z.rows, 8), r.integers(0, 8, z.rows)))
def classification_metrics(logits, labels, positive=3):
    pred = np.argmax(logits, axis=1)
    tp = np.sum((pred == positive) & (labels == positive))
    fp = np.count_nonzero((pred == positive) & (labels != positive))
    fn = np.sum((pred != positive) & (labels == positive))
    return {"accuracy": (pred == labels).mean(), "precision": tp / (tp + fp),
            "recall": tp / (tp + fn)}


@corpus(lambda r, z: (r.integers(0, 8, z.n),), fallback="numpy.bincount is not supported")
def label_frequencies(labels):
    return np.bincount(labels, minlength=8) / labels.size  # FALLBACK


@corpus(lambda r, z: (normal(r, z.rows, 8, dtype=np.float32),), tol=F32)
def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# image filters

@corpus(lambda r, z: (uniform(r, *z.hw, dtype=np.float32),))
def box_blur(img):
    return (img[:-2, :-2] + img[:-2, 1:-1] + img[:-2, 2:]
            + img[1:-1, :-2] + img[1:-1, 1:-1] + img[1:-1, 2:]
            + img[2:, :-2] + img[2:, 1:-1] + img[2:, 2:]) / 9


@corpus(lambda r, z: (uniform(r, *z.hw),))
def sobel(img):
    gx = (img[:-2, 2:] + 2 * img[1:-1, 2:] + img[2:, 2:]
          - img[:-2, :-2] - 2 * img[1:-1, :-2] - img[2:, :-2])
    gy = (img[2:, :-2] + 2 * img[2:, 1:-1] + img[2:, 2:]
          - img[:-2, :-2] - 2 * img[:-2, 1:-1] - img[:-2, 2:])
    return np.hypot(gx, gy), np.arctan2(gy, gx)


@corpus(lambda r, z: (uniform(r, *z.hw, lo=-0.1, hi=1.1, dtype=np.float32), 2.2))
def gamma_correct(img, gamma):
    return np.clip(img, 0.0, 1.0) ** (1.0 / gamma)


@corpus(lambda r, z: (uniform(r, *z.hw, lo=0, hi=300),))
def to_uint8(img):
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@corpus(lambda r, z: (r.integers(0, 256, (*z.hw, 3), dtype=np.uint8),), tol=F64)
def rgb_to_gray(rgb):
    img = rgb.astype(np.float64) / 255.0
    return 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]


@corpus(lambda r, z: (r.integers(0, 256, (*z.hw, 3), dtype=np.uint8),), tol=F64)
def rgb_to_gray_dot(rgb):
    return rgb @ np.array([0.299, 0.587, 0.114])


@corpus(lambda r, z: (uniform(r, *z.hw, dtype=np.float32), 0.5))
def threshold(img, t):
    return np.where(img > t, 1.0, 0.0).astype(img.dtype)


@corpus(lambda r, z: (uniform(r, *z.hw),))
def unsharp_mask(img, amount=1.5):
    inner = img[1:-1, 1:-1]
    blur = (img[:-2, 1:-1] + img[2:, 1:-1] + img[1:-1, :-2] + img[1:-1, 2:] + inner) / 5
    return np.clip(inner + amount * (inner - blur), 0, 1)


@corpus(lambda r, z: (uniform(r, *z.hw, dtype=np.float32),), tol=F32)
def normalise_image(img):
    img = img - img.mean()
    return img / (img.std() + 1e-8)


@corpus(lambda r, z: (uniform(r, *z.hw, dtype=np.float32),))
def flip_and_average(img):
    return (img + img[::-1, :] + img[:, ::-1] + np.rot90(img, 2)) / 4


@corpus(lambda r, z: (uniform(r, *z.hw, dtype=np.float32),), tol=F32)
def downsample_2x2(img):
    h, w = img.shape[0] // 2, img.shape[1] // 2
    img = img[:2 * h, :2 * w]
    return img.reshape(h, 2, w, 2).mean(axis=(1, 3))


@corpus(lambda r, z: (uniform(r, z.hw[0] // 2, z.hw[1] // 2),))
def upsample_nearest(img):
    return np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)


@corpus(lambda r, z: (np.where(uniform(r, *z.hw) < 0.05, np.nan, uniform(r, *z.hw)),))
def fill_missing_pixels(img):
    return np.nan_to_num(img, nan=0.5)


@corpus(lambda r, z: (uniform(r, *z.hw),))
def padded_blur(img):
    p = np.pad(img, 1, mode="edge")
    return (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] + p[1:-1, 1:-1]) / 5


# ---------------------------------------------------------------------------------------------
# optimisers, written functionally

@corpus(lambda r, z: (normal(r, z.n), normal(r, z.n), normal(r, z.n)))
def sgd_momentum(w, grad, velocity, lr=0.01, momentum=0.9):
    velocity = momentum * velocity - lr * grad
    return w + velocity, velocity


@corpus(lambda r, z: (normal(r, z.n, dtype=np.float32), normal(r, z.n, dtype=np.float32),
                      normal(r, z.n, dtype=np.float32) * 0.1,
                      np.abs(normal(r, z.n, dtype=np.float32)), 7), tol=F32)
def adam_step(w, g, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


@corpus(lambda r, z: ({"w": normal(r, z.rows, 8), "b": normal(r, 8)},
                      {"w": normal(r, z.rows, 8), "b": normal(r, 8)},
                      {"w": np.abs(normal(r, z.rows, 8)), "b": np.abs(normal(r, 8))}))
def rmsprop_dict(params, grads, cache, lr=1e-2, decay=0.99, eps=1e-8):
    new_params, new_cache = {}, {}
    for name in params:
        c = decay * cache[name] + (1 - decay) * grads[name] ** 2
        new_params[name] = params[name] - lr * grads[name] / (np.sqrt(c) + eps)
        new_cache[name] = c
    return new_params, new_cache


@corpus(lambda r, z: (normal(r, z.n), 1.0), tol=F64)
def clip_by_norm(g, max_norm):
    norm = np.linalg.norm(g)
    return g * np.minimum(1.0, max_norm / (norm + 1e-6))


@corpus(lambda r, z: (normal(r, z.n), 1.0), tol=F64, fallback=r"bool\(\) of a traced array")
def clip_by_norm_builtin_min(g, max_norm):
    scale = min(1.0, max_norm / (np.linalg.norm(g) + 1e-6))  # FALLBACK
    return g * scale


@corpus(lambda r, z: (normal(r, z.n), normal(r, z.n)))
def sgd_weight_decay(w, g, lr=0.1, wd=1e-4):
    return w - lr * (g + wd * w)


# ---------------------------------------------------------------------------------------------
# polynomials and special functions

@corpus(lambda r, z: (uniform(r, z.n, lo=-2, hi=2),))
def horner(x):
    coeffs = [1.0, -3.0, 0.5, 2.0, -1.0]
    result = np.zeros_like(x)
    for c in coeffs:
        result = result * x + c
    return result


@corpus(lambda r, z: (uniform(r, z.n, lo=-2, hi=2, dtype=np.float32),))
def np_polyval(x):
    return np.polyval([0.5, -1.0, 2.0, 3.0], x)


@corpus(lambda r, z: (normal(r, *z.hw, scale=5.0),))
def logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


@corpus(lambda r, z: (normal(r, z.n, scale=20.0, dtype=np.float32),))
def softplus_stable(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


@corpus(lambda r, z: (normal(r, z.n, scale=3.0, dtype=np.float32),), tol={"rtol": 1e-6,
                                                                            "atol": 1e-6})
def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def erf_approx(x):
    # Abramowitz and Stegun 7.1.26
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-x * x)
    return sign * y


@corpus(lambda r, z: (normal(r, z.n, scale=2.0),))
def erf_as(x):
    return erf_approx(x)


@corpus(lambda r, z: (uniform(r, z.n, lo=-1, hi=1),))
def chebyshev_series(x):
    coeffs = (1.0, 0.5, 0.25, -0.125, 0.0625)
    t_prev, t = np.ones_like(x), x
    total = coeffs[0] * t_prev + coeffs[1] * t
    for c in coeffs[2:]:
        t_prev, t = t, 2 * x * t - t_prev
        total = total + c * t
    return total


@corpus(lambda r, z: (normal(r, z.n, scale=4.0),))
def sinc(x):
    return np.sinc(x)


@corpus(lambda r, z: (uniform(r, z.n, lo=-3, hi=3),))
def smoothstep(x, edge0=-1.0, edge1=1.0):
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


@corpus(lambda r, z: (normal(r, z.n), 0.5))
def soft_threshold(x, lam):
    return np.sign(x) * np.maximum(np.abs(x) - lam, 0.0)


# ---------------------------------------------------------------------------------------------
# piecewise functions

@corpus(lambda r, z: (uniform(r, z.n, lo=0, hi=200_000),))
def income_tax(income):
    return np.where(income <= 10_000, 0.0,
                    np.where(income <= 40_000, 0.2 * (income - 10_000),
                             6_000 + 0.4 * (income - 40_000)))


@corpus(lambda r, z: (uniform(r, z.n, lo=-3, hi=3, dtype=np.float32),))
def np_select_piecewise(x):
    return np.select([x < -1, x > 1], [-1 - np.log(-x), 1 + np.log(x)], default=x)


# np.piecewise calls each function on x[condition], a data-dependent shape
@corpus(lambda r, z: (uniform(r, z.n, lo=-3, hi=3),), fallback="numpy.piecewise is not supported")
def np_piecewise_abs(x):
    return np.piecewise(x, [x < 0, x >= 0], [lambda v: -v, lambda v: v])  # FALLBACK


@corpus(lambda r, z: (uniform(r, z.n, lo=-2, hi=2),))
def heaviside_ramp(x):
    return np.heaviside(x, 0.5) * x


# ---------------------------------------------------------------------------------------------
# geometry

@corpus(lambda r, z: (normal(r, z.hw[0], 3), normal(r, z.hw[1], 3)), tol=F64)
def pairwise_distances(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


# np.array of a nested list of traced scalars: their stack
@corpus(lambda r, z: (normal(r, z.rows, 2), 0.3), tol=F64)
def rotate_points(points, theta):
    c, s = np.cos(theta), np.sin(theta)
    R = np.array([[c, -s], [s, c]])
    return points @ R.T


@corpus(lambda r, z: (normal(r, z.n // 2, 2),))
def to_polar(points):
    x, y = points.T
    return np.hypot(x, y), np.arctan2(y, x)


@corpus(lambda r, z: (normal(r, z.rows, 3), normal(r, 3, 3), normal(r, 3)), tol=F64)
def rigid_transform(points, R, t):
    return points @ R.T + t


@corpus(lambda r, z: tuple(normal(r, z.rows, 3) for _ in range(3)), tol=F64)
def triangle_normals(a, b, c):
    n = np.cross(b - a, c - a)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


@corpus(lambda r, z: tuple(normal(r, z.rows, 3) for _ in range(3)), tol=F64)
def triangle_normals_by_hand(a, b, c):
    u, v = b - a, c - a
    n = np.stack([u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1],
                  u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                  u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]], axis=1)
    return n / np.sqrt((n ** 2).sum(axis=1))[:, None]


@corpus(lambda r, z: (normal(r, z.n), normal(r, z.n)), tol=F64)
def shoelace_area(x, y):
    return 0.5 * np.abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


@corpus(lambda r, z: (uniform(r, z.n, lo=0.5, hi=2), uniform(r, z.n, hi=np.pi),
                      uniform(r, z.n, hi=2 * np.pi)))
def spherical_to_cartesian(r, theta, phi):
    return np.stack([r * np.sin(theta) * np.cos(phi),
                     r * np.sin(theta) * np.sin(phi),
                     r * np.cos(theta)], axis=-1)


@corpus(lambda r, z: (normal(r, z.rows, 3), normal(r, z.rows, 3)), tol=F64)
def angle_between(u, v):
    cos = np.einsum("ij,ij->i", u, v) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


@corpus(lambda r, z: (normal(r, z.rows, 2), normal(r, 2)), tol=F64)
def nearest_point(points, query):
    d = np.linalg.norm(points - query, axis=1)
    i = np.argmin(d)
    return i, points[i], d[i]


# ---------------------------------------------------------------------------------------------
# finance

def norm_cdf(x):
    return 0.5 * (1.0 + erf_approx(x / np.sqrt(2.0)))


@corpus(lambda r, z: (uniform(r, z.n, lo=50, hi=150), uniform(r, z.n, lo=80, hi=120),
                      uniform(r, z.n, lo=0.1, hi=2), 0.02, 0.25), tol=F64)
def black_scholes(S, K, T, r, sigma):
    d1 = (np.log(S / K) + (r + 0.5 * sigma ** 2) * T) / (sigma * np.sqrt(T))
    d2 = d1 - sigma * np.sqrt(T)
    call = S * norm_cdf(d1) - K * np.exp(-r * T) * norm_cdf(d2)
    put = K * np.exp(-r * T) * norm_cdf(-d2) - S * norm_cdf(-d1)
    return call, put


def prices(r, n, dtype=np.float64):
    return (100 * np.exp(np.cumsum(r.normal(0, 0.01, n)))).astype(dtype)


@corpus(lambda r, z: (prices(r, z.n),), tol=F64)
def returns(p):
    simple = np.diff(p) / p[:-1]
    log = np.log(p[1:] / p[:-1])
    return simple, log


@corpus(lambda r, z: (prices(r, z.n),), tol={"rtol": 1e-9, "atol": 1e-9})
def moving_average_cumsum(x, w=20):
    c = np.cumsum(np.concatenate([[0.0], x]))
    return (c[w:] - c[:-w]) / w


@corpus(lambda r, z: (prices(r, z.n),), tol={"rtol": 1e-9, "atol": 1e-9})
def moving_average_insert(x, w=5):
    c = np.cumsum(np.insert(x, 0, 0))
    return (c[w:] - c[:-w]) / w


@corpus(lambda r, z: (prices(r, z.n),), tol={"rtol": 1e-9, "atol": 1e-9})
def moving_average_convolve(x, w=10):
    return np.convolve(x, np.ones(w) / w, mode="valid")


@corpus(lambda r, z: (normal(r, z.n, dtype=np.float32),), tol=F32)
def gaussian_smooth(x):
    t = np.arange(-3, 4)
    kernel = np.exp(-0.5 * t ** 2)
    return np.convolve(x, kernel / kernel.sum(), mode="same").astype(np.float32)


@corpus(lambda r, z: (r.normal(0, 0.01, z.n),), tol={"rtol": 1e-9, "atol": 1e-9})
def cumulative_returns(r):
    return np.cumprod(1 + r) - 1


@corpus(lambda r, z: (normal(r, 8, z.n // 8),))
def ema_rows(x, alpha=0.3):
    s = x[0]
    out = []
    for row in x:
        s = alpha * row + (1 - alpha) * s
        out.append(s)
    return np.stack(out)


@corpus(lambda r, z: (uniform(r, 8, z.n // 8),))
def discounted_returns(rewards, gamma=0.99):
    out = np.zeros_like(rewards)
    running = np.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


@corpus(lambda r, z: (prices(r, z.n),), tol=F64)
def sharpe_ratio(p, periods=252):
    r = p[1:] / p[:-1] - 1
    return np.sqrt(periods) * r.mean() / r.std(ddof=1)


@corpus(lambda r, z: (prices(r, z.n),), tol=F64)
def max_drawdown(p):
    peak = np.maximum.accumulate(p)
    return ((p - peak) / peak).min()


@corpus(lambda r, z: (normal(r, z.rows, 8, scale=0.01), uniform(r, 8)), tol=F64)
def portfolio_stats(returns, weights):
    weights = weights / weights.sum()
    mu = returns.mean(axis=0)
    cov = np.cov(returns.T)
    return weights @ mu, np.sqrt(weights @ cov @ weights)


@corpus(lambda r, z: (uniform(r, z.n, lo=1000, hi=5000), 0.05, 10))
def compound_interest(principal, rate, years):
    return principal * (1 + rate / 12) ** (12 * years)


# ---------------------------------------------------------------------------------------------
# Python scalars, tuples, dicts, loops

@corpus(lambda r, z: ({"w": normal(r, 8, 3), "b": normal(r, 3)}, normal(r, z.rows, 8)), tol=F64)
def linear_predict(params, x):
    return x @ params["w"] + params["b"]


@corpus(lambda r, z: ((normal(r, 8, 16, dtype=np.float32), normal(r, 16, dtype=np.float32)),
                      (normal(r, 16, 4, dtype=np.float32), normal(r, 4, dtype=np.float32)),
                      normal(r, z.rows, 8, dtype=np.float32)), tol=F32)
def two_layer_mlp(layer1, layer2, x):
    (w1, b1), (w2, b2) = layer1, layer2
    h = np.maximum(x @ w1 + b1, 0)
    return np.tanh(h @ w2 + b2)


@corpus(lambda r, z: (normal(r, z.n), 3))
def power_sum(x, n):
    total = 0.0
    for k in range(1, 5):
        total = total + x ** k / k
    return total * n


@corpus(lambda r, z: (normal(r, z.n, dtype=np.float32),), tol=F32)
def summary_tuple(x):
    return x.mean(), x.std(), (x.min(), x.max()), len(x)


@corpus(lambda r, z: (normal(r, *z.hw),))
def split_halves(x):
    top, bottom = np.split(x, [x.shape[0] // 2])
    return top.sum(axis=0) - bottom.sum(axis=0)


@corpus(lambda r, z: (normal(r, z.n), 0.1, 2))
def mixed_python_scalars(x, scale, offset):
    y = x * scale + offset
    return y ** 2 - 1 / (1 + abs(offset))


@corpus(lambda r, z: (np.linspace(0, 1, z.n),), tol=F64)
def integrate_on_grid(x):
    y = np.exp(-x ** 2)
    return np.trapezoid(y, x), np.sum(y[:-1] * np.diff(x))


@corpus(lambda r, z: (normal(r, z.n),), tol=F64)
def isinstance_check(x):
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    return x - x.mean()


@corpus(lambda r, z: (normal(r, z.n),), tol=F64)
def rounded_mean(x):
    return round(x.mean(), 3)


@corpus(lambda r, z: (r.integers(0, 200_000, z.n),))
def hours_minutes_seconds(seconds):
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return hours, minutes, secs


@dataclass
class Affine:
    weight: np.ndarray
    bias: float


@corpus(lambda r, z: (Affine(normal(r, 8, 4), 0.5), normal(r, z.rows, 8)), tol=F64)
def dataclass_argument(layer, x):
    return np.tanh(x @ layer.weight + layer.bias)


class Params(NamedTuple):
    scale: np.ndarray
    shift: np.ndarray


@corpus(lambda r, z: (Params(normal(r, z.n), normal(r, z.n)), normal(r, z.n)))
def namedtuple_affine(p, x):
    return p.scale * x + p.shift


@corpus(lambda r, z: (normal(r, z.n),))
def dropout_seeded(x, rate=0.5):
    rng = np.random.default_rng(0)
    keep = rng.random(x.shape) >= rate
    return np.where(keep, x / (1 - rate), 0.0)


@corpus(lambda r, z: (normal(r, z.n),))
def positives_mean(x):
    return x[x > 0].mean()


@corpus(lambda r, z: (normal(r, z.n),), fallback=r"bool\(\) of a traced array")
def branch_on_value(x):
    if x.mean() > 0:  # FALLBACK
        return x - 1
    return x + 1


@corpus(lambda r, z: (normal(r, z.rows, 3), normal(r, z.rows, 3)),
        fallback="numpy.linalg.lstsq is not supported")
def solve_least_squares(A, b):
    return np.linalg.lstsq(A.T @ A, A.T @ b, rcond=None)[0]  # FALLBACK


# ---------------------------------------------------------------------------------------------
# mutation, as people write it: preallocated arrays filled in a loop, in-place updates of
# arguments, slice, mask and index-array assignment

def decay(y):
    return -0.5 * y + np.sin(y)


@corpus(lambda r, z: (normal(r, z.n // 8), 0.05))
def euler_trajectory(y0, dt, steps=8):
    traj = np.zeros((steps, y0.size))
    traj[0] = y0
    for k in range(steps - 1):
        traj[k + 1] = traj[k] + dt * decay(traj[k])
    return traj


@corpus(lambda r, z: (uniform(r, z.n, dtype=np.float32),), tol=F32, mutates=True)
def normalise_in_place(p):
    p /= p.sum()


@corpus(lambda r, z: (uniform(r, z.rows, 8),), tol=F64, mutates=True)
def normalise_rows_in_place(p):
    p /= p.sum(axis=1, keepdims=True)
    return p


@corpus(lambda r, z: (normal(r, z.n), normal(r, z.n), 0.01), mutates=True)
def sgd_step_in_place(w, g, lr):
    w -= lr * g


@corpus(lambda r, z: ({"w": normal(r, z.rows, 8), "b": normal(r, 8)},
                      {"w": normal(r, z.rows, 8), "b": normal(r, 8)},
                      {"w": np.zeros((z.rows, 8)), "b": np.zeros(8)}), mutates=True)
def momentum_in_place(params, grads, velocity, lr=0.01, beta=0.9):
    for name in params:
        velocity[name] *= beta
        velocity[name] += grads[name]
        params[name] -= lr * velocity[name]
    return sum(np.sum(v ** 2) for v in velocity.values())


@corpus(lambda r, z: (uniform(r, *z.hw),), mutates=True)
def heat_2d_in_place(u, alpha=0.2, steps=3):
    for _ in range(steps):
        u[1:-1, 1:-1] = u[1:-1, 1:-1] + alpha * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2]
                                                 + u[1:-1, 2:] - 4 * u[1:-1, 1:-1])
    return u


@corpus(lambda r, z: (normal(r, z.n),))
def fill_empty_like(x):
    out = np.empty_like(x)
    out[...] = np.tanh(x)
    out[0] = out[-1] = 0.0
    return out


@corpus(lambda r, z: (uniform(r, z.n // 2, lo=-1, hi=1),))
def design_matrix(x, degree=3):
    out = np.empty((x.shape[0], degree + 1))
    out[:, 0] = 1.0
    for k in range(1, degree + 1):
        out[:, k] = out[:, k - 1] * x
    return out


@corpus(lambda r, z: (normal(r, z.n),), mutates=True)
def relu_in_place(x):
    x[x < 0] = 0


@corpus(lambda r, z: (normal(r, z.rows, 8), r.integers(0, 8, z.rows)))
def one_hot_setitem(logits, labels):
    onehot = np.zeros(logits.shape)
    onehot[np.arange(labels.size), labels] = 1.0
    return (onehot * logits).sum(axis=1)


@corpus(lambda r, z: (r.integers(0, 8, z.n), uniform(r, z.n)), tol=F64)
def weighted_counts_add_at(labels, w):
    totals = np.zeros(8)
    np.add.at(totals, labels, w)
    return totals / w.sum()


@corpus(lambda r, z: (normal(r, *z.hw), np.arange(0, z.hw[1], 3)), mutates=True)
def zero_columns(img, cols, gain=2.0):
    img[:, cols] = 0.0
    img[:, -1] = img[:, 0]
    img *= gain


# ---------------------------------------------------------------------------------------------
# the test

def _fallback_line(fn):
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, text in enumerate(lines) if "# FALLBACK" in text)


# The large size compiles each function's kernels again, for the parallel path (Numba's
# parallel compiles take seconds). Every run takes these, which cover the kinds of kernel the
# corpus makes: a reduction feeding elementwise work (0-d values), reductions along rows and
# along columns, gathers, 2-d stencils, roll, concatenate in a loop, several outputs, pytree
# arguments and results, integer and uint8 arrays, index-array assignment and a stencil written
# into its argument. The other large sizes are marked `slow` and
# run with TRACEJIT_SLOW=1 (about three more minutes). Expected fallbacks and xfails run
# eagerly, which is cheap, so they always run.
LARGE_IN_EVERY_RUN = {
    "zscore", "covariance", "laplacian_2d_periodic", "heat_1d_steps",
    "kmeans_assign", "kmeans_update", "cross_entropy", "box_blur", "rgb_to_gray", "to_uint8",
    "adam_step", "income_tax", "pairwise_distances", "hours_minutes_seconds",
    "dataclass_argument", "multiclass_hinge_setitem", "heat_2d_in_place",
}
SLOW = (pytest.mark.slow,
        pytest.mark.skipif(not os.environ.get("TRACEJIT_SLOW"),
                           reason="a large size outside the every-run set: TRACEJIT_SLOW=1"))


def _params():
    for entry in ENTRIES:
        name = entry.fn.__name__
        yield pytest.param(entry, SMALL, id=f"{name}-small", marks=entry.marks)
        cheap = name in LARGE_IN_EVERY_RUN or entry.fallback or entry.marks
        yield pytest.param(entry, LARGE, id=f"{name}-large",
                           marks=entry.marks + (() if cheap else SLOW))


# at the large size BLAS or NumPy's copies (np.repeat) do the work, and the loops left are too
# small to be worth running in parallel
NO_PARALLEL_LOOP = {"rgb_to_gray_dot", "linear_predict", "rigid_transform", "shoelace_area",
                    "rotate_points", "weighted_counts_add_at",
                    "upsample_nearest", "linear_regression_gd"}


def _copied(args):
    """The arguments with every array inside (containers too) copied."""
    if isinstance(args, np.ndarray):
        return args.copy()
    if isinstance(args, (list, tuple)):
        return type(args)(_copied(a) for a in args)
    if isinstance(args, dict):
        return {k: _copied(v) for k, v in args.items()}
    return args


def check_mutating_against_numpy(fn, *args, rtol=None, atol=None, calls=2, **options):
    """check_against_numpy for a function that writes into its arguments: each call gets fresh
    copies of the arguments, and after it the results and every argument equal what eager NumPy
    leaves (an argument returned is the caller's own array, as eagerly)."""
    options.setdefault("fallback", "raise")
    traced = tj.trace(**options)(fn)
    for call in range(calls):
        eager_args, traced_args = _copied(args), _copied(args)
        with np.errstate(all="ignore"):
            expected = fn(*eager_args)
            result = traced(*traced_args)
        assert_same(result, expected, rtol, atol, f"result of call {call}")
        assert_same(traced_args, eager_args, rtol, atol, f"arguments after call {call}")
        changed = [not np.array_equal(a, b) for a, b in zip(array_leaves(eager_args),
                                                            array_leaves(_copied(args)))]
        assert any(changed), "the function wrote into none of its arguments"
        for r, e in zip(array_leaves(result), array_leaves(expected)):
            for t, a in zip(array_leaves(traced_args), array_leaves(eager_args)):
                if e is a:
                    assert r is t, "an argument returned is not the caller's array"
    info = traced.cache_info()
    assert info.fallbacks == 0 and info.traces == 1 and info.hits >= calls - 1, info
    return traced


@pytest.mark.parametrize("entry, size", list(_params()))
def test_corpus(entry, size):
    rng = np.random.default_rng(zlib.crc32(entry.fn.__name__.encode()))
    args = entry.make(rng, size)
    tol = entry.large_tol if size is LARGE else entry.tol
    if entry.fallback is None:
        check = check_mutating_against_numpy if entry.mutates else check_against_numpy
        traced = check(entry.fn, *args, **tol, **entry.options)
        if size is LARGE and entry.fn.__name__ not in NO_PARALLEL_LOOP:
            assert "prange" in str(traced.explain(*args)), "the large size ran no parallel loop"
        return
    where = re.escape(f"test_corpus.py:{_fallback_line(entry.fn)}")
    traced = tj.trace(entry.fn, fallback="warn", **entry.options)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = entry.fn(*args)
    with pytest.warns(tj.FallbackWarning, match=rf"(?s){entry.fallback}.*{where}"):
        result = traced(*args)
    assert_same(result, expected, **tol)


# ---------------------------------------------------------------------------------------------
# the NumPy functions the corpus needed, on their own: options, dtypes, and calls NumPy rejects

_R = np.random.default_rng(7)
_X = _R.normal(size=7)
_M = _R.normal(size=(5, 4))
_I = _R.integers(-5, 5, (4, 6))
_F = _R.normal(size=(4, 6)).astype(np.float32)

NUMPY_FUNCTIONS = {
    "average-weights-axis": (lambda a, w: np.average(a, axis=1, weights=w), _M, _R.uniform(size=4)),
    "average-returned-keepdims": (lambda a, w: np.average(a, 0, w, returned=True, keepdims=True),
                                  _M, _R.uniform(size=5).astype(np.float32)),
    "average-int-returned": (lambda a: np.average(a, axis=1, returned=True), _I),
    "average-int-weights": (lambda a, w: np.average(a, weights=w), _I, _I + 10),
    "average-weights-need-axis": (lambda a, w: np.average(a, weights=w), _M, _X),
    "cov-rowvar-ddof": (lambda a: np.cov(a, rowvar=False, ddof=0), _M),
    "cov-1d": (np.cov, _X),
    "cov-xy": (np.cov, _X, _X[::-1] * 2),
    "cov-int-float32": (lambda a: np.cov(a, dtype=np.float32), _I),
    "cov-bias": (lambda a: np.cov(a, bias=True), _F),
    "cov-3d": (np.cov, _R.normal(size=(2, 2, 2))),
    "corrcoef": (np.corrcoef, _M),
    "corrcoef-1d": (np.corrcoef, _X),
    "sinc": (np.sinc, np.array([0.0, 0.5, 1.0, -2.5, 3.3])),
    "sinc-int": (np.sinc, _I),
    "select-weak-default": (lambda a: np.select([a < 0], [a], 0), _F),
    "select-int-mixed": (lambda a, b: np.select([a < 0, b > 0], [a, b], 0.5), _I, _F),
    "select-not-bool": (lambda a: np.select([a], [a]), _M),
    "gradient-axis-edge2": (lambda a: np.gradient(a, 0.3, axis=1, edge_order=2), _F),
    "gradient-int-two-spacings": (lambda a: np.gradient(a, 2, np.float64(3.0)), _I),
    "gradient-too-short": (np.gradient, _X[:1]),
    "rot90-k": (lambda a: (np.rot90(a, 3), np.rot90(a, -1, axes=(1, 0)), np.rot90(a, 4)), _M),
    "pad-constant-pairs": (lambda a: np.pad(a, ((1, 2), (0, 3)),
                                            constant_values=((1.5, 2), (3, 4))), _I),
    "pad-wrap-reflect-symmetric": (lambda a: (np.pad(a, (2, 3), mode="wrap"),
                                              np.pad(a, (3, 2), mode="reflect"),
                                              np.pad(a, ((4, 1), (2, 4)), mode="symmetric")), _M),
    "insert-negative-axis": (lambda a: np.insert(a, -1, 9.7, axis=1), _I),
    "insert-row": (lambda a, v: np.insert(a, 2, v, axis=0), _M, np.arange(4.0)),
    "insert-out-of-bounds": (lambda a: np.insert(a, 9, 1.0), _X),
    "cross-int-broadcast-axisc": (lambda a, b: np.cross(a, b, axisc=0), _I[:, :3], _I[0, 3:]),
    "cross-axis-0": (lambda a, b: np.cross(a, b, axis=0), _M[:3], _M[1:4]),
    "cross-2-and-3": (lambda a, b: (np.cross(a[:, :2], b[:, 1:]), np.cross(a[:, :2], b[:, 2:])),
                      _M, _M[::-1]),
    "cross-4": (np.cross, _M, _M),
    "diag": (lambda a: (np.diag(a, 1), np.diag(a, -2), np.diag(a, 7)), _M),
    "diag-1d": (lambda a: (np.diag(a), np.diag(a, 2), np.diag(a, -1)), _X),
    "diagonal-3d": (lambda a: np.diagonal(a, 1, 0, 2), _R.normal(size=(3, 2, 4))),
    "convolve-full-swapped": (np.convolve, _R.normal(size=4), _X),
    "convolve-same-int": (lambda a, b: np.convolve(a, b, "same"), _I[0], _I[1, :3]),
    "convolve-inf-weight": (lambda a, b: np.convolve(a, b, "same"), _X, np.array([1, np.inf, 2])),
    "convolve-bad-mode": (lambda a: np.convolve(a, a, "nope"), _X),
    "nan_to_num-float32": (lambda a: np.nan_to_num(a, nan=-1, posinf=1e3, neginf=-1e3),
                           np.array([np.nan, np.inf, -np.inf, 1.5], np.float32)),
    "nan_to_num-int-0d": (lambda a, b: (np.nan_to_num(a), np.nan_to_num(b.sum())), _I, _X),
}


@pytest.mark.parametrize("name", list(NUMPY_FUNCTIONS))
def test_numpy_function(name):
    fn, *args = NUMPY_FUNCTIONS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # np.cross of 2-vectors
        check_against_numpy(fn, *args)
