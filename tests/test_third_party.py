"""Kernels in the style of third-party NumPy benchmark suites (stencils, linear algebra written
with NumPy, physics time loops, image filters, small ML layers, dynamic programming), written
for this suite. Each traces and equals eager NumPy: its result and every argument array after
the call (the kernels write into their arguments, as such code does). The few that cannot be
traced (Python control flow on array values, data-dependent shapes) fall back with a warning
naming the line."""

import inspect
import os
import warnings

import numpy as np
import pytest
from conftest import assert_same

import tracejit as tj
from tracejit.interpret import interpret

HERE = "test_third_party.py"


def _rng(seed=0):
    return np.random.default_rng(seed)


# -- stencils and time loops -----------------------------------------------------------------


def smooth_1d(steps, a, b):
    for _ in range(steps):
        b[1:-1] = (a[:-2] + a[1:-1] + a[2:]) / 3.0
        a[1:-1] = (b[:-2] + b[1:-1] + b[2:]) / 3.0


def five_point_relax(steps, u, v):
    for _ in range(steps):
        v[1:-1, 1:-1] = 0.2 * (u[1:-1, 1:-1] + u[:-2, 1:-1] + u[2:, 1:-1]
                               + u[1:-1, :-2] + u[1:-1, 2:])
        u[1:-1, 1:-1] = 0.2 * (v[1:-1, 1:-1] + v[:-2, 1:-1] + v[2:, 1:-1]
                               + v[1:-1, :-2] + v[1:-1, 2:])


def heat_cube(steps, t, s):
    c = 0.125
    for _ in range(steps):
        s[1:-1, 1:-1, 1:-1] = t[1:-1, 1:-1, 1:-1] + c * (
            t[2:, 1:-1, 1:-1] - 2.0 * t[1:-1, 1:-1, 1:-1] + t[:-2, 1:-1, 1:-1]
            + t[1:-1, 2:, 1:-1] - 2.0 * t[1:-1, 1:-1, 1:-1] + t[1:-1, :-2, 1:-1]
            + t[1:-1, 1:-1, 2:] - 2.0 * t[1:-1, 1:-1, 1:-1] + t[1:-1, 1:-1, :-2])
        t[...] = s


def sweep_in_place(steps, g):
    # each point sees its neighbours' newest values: a sequential sweep over elements
    n = g.shape[0]
    for _ in range(steps):
        for i in range(1, n - 1):
            for j in range(1, n - 1):
                g[i, j] = (g[i - 1, j] + g[i + 1, j] + g[i, j - 1] + g[i, j + 1]) / 4.0


def yee_fields(steps, ex, ey, hz, source):
    for k in range(steps):
        ey[0, :] = source[k]
        ey[1:, :] -= 0.5 * (hz[1:, :] - hz[:-1, :])
        ex[:, 1:] -= 0.5 * (hz[:, 1:] - hz[:, :-1])
        hz[:-1, :-1] -= 0.7 * (ex[:-1, 1:] - ex[:-1, :-1] + ey[1:, :-1] - ey[:-1, :-1])


def limited_diffusion(field, coeff):
    lap = 4.0 * field[1:-1, 1:-1] - (field[2:, 1:-1] + field[:-2, 1:-1]
                                       + field[1:-1, 2:] + field[1:-1, :-2])
    fx = lap[1:, 1:-1] - lap[:-1, 1:-1]
    fx = np.where(fx * (field[2:-1, 2:-2] - field[1:-2, 2:-2]) > 0, 0.0, fx)
    fy = lap[1:-1, 1:] - lap[1:-1, :-1]
    fy = np.where(fy * (field[2:-2, 2:-1] - field[2:-2, 1:-2]) > 0, 0.0, fy)
    return field[2:-2, 2:-2] - coeff[2:-2, 2:-2] * (fx[1:, :] - fx[:-1, :]
                                                       + fy[:, 1:] - fy[:, :-1])


def pressure_poisson(iters, p, b, dx, dy):
    for _ in range(iters):
        pn = p.copy()
        p[1:-1, 1:-1] = (((pn[1:-1, 2:] + pn[1:-1, :-2]) * dy**2
                          + (pn[2:, 1:-1] + pn[:-2, 1:-1]) * dx**2)
                         / (2 * (dx**2 + dy**2))
                         - dx**2 * dy**2 / (2 * (dx**2 + dy**2)) * b[1:-1, 1:-1])
        p[:, -1] = p[:, -2]
        p[0, :] = p[1, :]
        p[:, 0] = p[:, 1]
        p[-1, :] = 0.0


def periodic_advection(steps, u, c):
    for _ in range(steps):
        u[:] = u - c * (u - np.roll(u, 1))
    return u.sum()


def vertical_tridiagonal(a, b, c, d):
    # forward elimination and back substitution along axis 2, columns at once
    n = d.shape[2]
    cp = np.empty_like(c)
    dp = np.empty_like(d)
    cp[:, :, 0] = c[:, :, 0] / b[:, :, 0]
    dp[:, :, 0] = d[:, :, 0] / b[:, :, 0]
    for k in range(1, n):
        m = 1.0 / (b[:, :, k] - a[:, :, k] * cp[:, :, k - 1])
        cp[:, :, k] = c[:, :, k] * m
        dp[:, :, k] = (d[:, :, k] - a[:, :, k] * dp[:, :, k - 1]) * m
    x = np.empty_like(d)
    x[:, :, n - 1] = dp[:, :, n - 1]
    for k in range(n - 2, -1, -1):
        x[:, :, k] = dp[:, :, k] - cp[:, :, k] * x[:, :, k + 1]
    return x


# -- image filters ---------------------------------------------------------------------------


def correlate_valid(img, w):
    kh, kw = w.shape
    h, wd = img.shape[0] - kh + 1, img.shape[1] - kw + 1
    out = np.zeros((h, wd), dtype=img.dtype)
    for i in range(kh):
        for j in range(kw):
            out += w[i, j] * img[i:i + h, j:j + wd]
    return out


def sobel_magnitude(img):
    gx = (img[:-2, 2:] + 2 * img[1:-1, 2:] + img[2:, 2:]
          - img[:-2, :-2] - 2 * img[1:-1, :-2] - img[2:, :-2])
    gy = (img[2:, :-2] + 2 * img[2:, 1:-1] + img[2:, 2:]
          - img[:-2, :-2] - 2 * img[:-2, 1:-1] - img[:-2, 2:])
    return np.hypot(gx, gy)


def box_blur_padded(img):
    p = np.pad(img, 1, mode="edge")
    return (p[:-2, :-2] + p[:-2, 1:-1] + p[:-2, 2:] + p[1:-1, :-2] + p[1:-1, 1:-1]
            + p[1:-1, 2:] + p[2:, :-2] + p[2:, 1:-1] + p[2:, 2:]) / 9.0


def recursive_smoothing(img, alpha):
    # a causal then anti-causal first-order filter along rows, column by column
    h, w = img.shape
    y1 = np.empty_like(img)
    y2 = np.empty_like(img)
    y1[:, 0] = img[:, 0]
    for j in range(1, w):
        y1[:, j] = alpha * img[:, j] + (1 - alpha) * y1[:, j - 1]
    y2[:, w - 1] = y1[:, w - 1]
    for j in range(w - 2, -1, -1):
        y2[:, j] = alpha * y1[:, j] + (1 - alpha) * y2[:, j + 1]
    return y2


def threshold_in_place(img, lo, hi):
    img[img < lo] = lo
    img[img > hi] = hi
    img -= img.mean()


def gamma_lut(img, lut):
    idx = np.clip((img * (lut.shape[0] - 1)).astype(np.int64), 0, lut.shape[0] - 1)
    return lut[idx]


# -- linear algebra written with NumPy -------------------------------------------------------


def scaled_product_update(alpha, beta, c, a, b):
    c *= beta
    c += alpha * a @ b


def two_products(alpha, beta, a, b, c, d):
    d[:] = alpha * a @ b @ c + beta * d


def transpose_times(a, x):
    return (a @ x) @ a


def both_directions(a, p, r):
    return r @ a, a @ p


def summed_mv(alpha, beta, a, b, x):
    return alpha * a @ x + beta * b @ x


def two_mv_updates(x1, x2, y1, y2, a):
    x1 += a @ y1
    x2 += y2 @ a


def rank_two_then_mv(alpha, beta, a, u1, v1, u2, v2, w, x, y, z):
    a += np.outer(u1, v1) + np.outer(u2, v2)
    x += beta * y @ a + z
    w += alpha * a @ x


def lower_rank_k(alpha, beta, c, a):
    n = c.shape[0]
    for i in range(n):
        c[i, :i + 1] *= beta
        for k in range(a.shape[1]):
            c[i, :i + 1] += alpha * a[:i + 1, k] * a[i, k]


def triangular_times(alpha, a, b):
    for i in range(b.shape[0]):
        for j in range(b.shape[1]):
            b[i, j] += np.dot(a[i + 1:, i], b[i + 1:, j])
    b *= alpha


def lu_in_place(a):
    n = a.shape[0]
    for i in range(n):
        for j in range(i):
            a[i, j] -= a[i, :j] @ a[:j, j]
            a[i, j] /= a[j, j]
        for j in range(i, n):
            a[i, j] -= a[i, :i] @ a[:i, j]
    return a


def cholesky_rows(a):
    n = a.shape[0]
    a[0, 0] = np.sqrt(a[0, 0])
    for i in range(1, n):
        for j in range(i):
            a[i, j] -= np.dot(a[i, :j], a[j, :j])
            a[i, j] /= a[j, j]
        a[i, i] -= np.dot(a[i, :i], a[i, :i])
        a[i, i] = np.sqrt(a[i, i])


def forward_substitute(lower, x, b):
    for i in range(x.shape[0]):
        x[i] = (b[i] - lower[i, :i] @ x[:i]) / lower[i, i]


def orthonormalize(a):
    m, n = a.shape
    q = np.zeros_like(a)
    r = np.zeros((n, n), dtype=a.dtype)
    for k in range(n):
        nrm = np.dot(a[:, k], a[:, k])
        r[k, k] = np.sqrt(nrm)
        q[:, k] = a[:, k] / r[k, k]
        for j in range(k + 1, n):
            r[k, j] = np.dot(q[:, k], a[:, j])
            a[:, j] -= q[:, k] * r[k, j]
    return q, r


def batched_contract(a, c4):
    nr, nq, npp = a.shape
    a[:] = np.reshape(np.reshape(a, (nr, nq, 1, npp)) @ c4, (nr, nq, npp))


def covariance_matrix(m, data):
    mean = np.mean(data, axis=0)
    data -= mean
    cov = np.zeros((data.shape[1], data.shape[1]), dtype=data.dtype)
    for i in range(data.shape[1]):
        cov[i, i:] = data[:, i] @ data[:, i:] / (m - 1.0)
        cov[i:, i] = cov[i, i:]
    return cov


def correlation_matrix(data):
    m = data.shape[0]
    mean = np.mean(data, axis=0)
    std = np.std(data, axis=0)
    std[std <= 0.1] = 1.0
    data -= mean
    data /= np.sqrt(m) * std
    return data.T @ data


def symmetric_times(alpha, beta, c, a, b):
    # a is symmetric, stored in its lower triangle
    c[:] = beta * c + alpha * (np.tril(a) @ b + np.tril(a, -1).T @ b)


def all_pairs_shortest(path):
    for k in range(path.shape[0]):
        path[:] = np.minimum(path, np.add.outer(path[:, k], path[k, :]))


def levinson_like(r):
    n = r.shape[0]
    y = np.empty_like(r)
    alpha = -r[0]
    beta = 1.0
    y[0] = -r[0]
    for k in range(1, n):
        beta *= 1.0 - alpha * alpha
        alpha = -(r[k] + np.dot(np.flip(r[:k]), y[:k])) / beta
        y[:k] += alpha * np.flip(y[:k])
        y[k] = alpha
    return y


# -- physics ---------------------------------------------------------------------------------


def nbody_steps(steps, pos, vel, mass, dt):
    for _ in range(steps):
        d = pos[np.newaxis, :, :] - pos[:, np.newaxis, :]
        r2 = (d ** 2).sum(axis=2) + 0.01
        inv3 = r2 ** -1.5
        acc = (d * (inv3 * mass[np.newaxis, :])[:, :, np.newaxis]).sum(axis=1)
        vel += dt * acc
        pos += dt * vel
    ke = 0.5 * np.sum(mass * np.sum(vel ** 2, axis=1))
    return ke


def great_circle(t0, p0, t1, p1):
    a = np.sin((t1 - t0) / 2) ** 2 + np.cos(t0) * np.cos(t1) * np.sin((p1 - p0) / 2) ** 2
    return 2 * np.arctan2(np.sqrt(a), np.sqrt(1 - a))


def trace_tanh(a):
    total = 0.0
    for i in range(a.shape[0]):
        total += np.tanh(a[i, i])
    return a + total


def particles_in_box(steps, x, v, dt):
    for _ in range(steps):
        x += v * dt
        hit = (x < 0.0) | (x > 1.0)
        v[hit] = -v[hit]
        x[:] = np.clip(x, 0.0, 1.0)


def escape_counts(cr, ci, iters):
    zr = np.zeros_like(cr)
    zi = np.zeros_like(ci)
    count = np.zeros(cr.shape, dtype=np.int64)
    for _ in range(iters):
        inside = zr * zr + zi * zi <= 4.0
        zr, zi = (np.where(inside, zr * zr - zi * zi + cr, zr),
                  np.where(inside, 2 * zr * zi + ci, zi))
        count += inside
    return count


def spring_chain(steps, x, v, k, dt):
    for _ in range(steps):
        f = np.zeros_like(x)
        f[1:] -= k * (x[1:] - x[:-1])
        f[:-1] += k * (x[1:] - x[:-1])
        v += dt * f
        x += dt * v


# -- small ML layers -------------------------------------------------------------------------


def stable_softmax(x):
    m = np.max(x, axis=-1, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=-1, keepdims=True)


def two_layer_net(x, w1, b1, w2, b2):
    h = np.maximum(x @ w1 + b1, 0)
    return stable_softmax(h @ w2 + b2)


def conv_layer(x, w, bias):
    # x: (n, h, w, cin), w: (kh, kw, cin, cout), valid padding
    kh, kw = w.shape[:2]
    ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], ho, wo, w.shape[3]), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            patch = x[:, i:i + kh, j:j + kw, :, np.newaxis]
            out[:, i, j, :] = np.sum(patch * w[np.newaxis], axis=(1, 2, 3))
    return out + bias


def max_pool(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def layer_norm(x, gamma, beta):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * gamma + beta


def batch_norm_train(x, running_mean, running_var, momentum):
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    running_mean *= momentum
    running_mean += (1 - momentum) * mean
    running_var *= momentum
    running_var += (1 - momentum) * var
    return (x - mean) / np.sqrt(var + 1e-5)


def adam_step(w, g, m, v, t, lr):
    m *= 0.9
    m += 0.1 * g
    v *= 0.999
    v += 0.001 * g * g
    mhat = m / (1 - 0.9 ** t)
    vhat = v / (1 - 0.999 ** t)
    w -= lr * mhat / (np.sqrt(vhat) + 1e-8)


def cross_entropy(logits, labels):
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(logits.shape[0]), labels].mean()


def logistic_step(w, x, y, lr):
    p = 1.0 / (1.0 + np.exp(-(x @ w)))
    grad = x.T @ (p - y) / x.shape[0]
    w -= lr * grad
    return np.mean((p > 0.5) == (y > 0.5))


def attention(q, k, v):
    s = q @ k.T / np.sqrt(q.shape[1])
    s -= s.max(axis=1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=1, keepdims=True)
    return s @ v


# -- dynamic programming and counting --------------------------------------------------------


def edit_distance(a, b):
    n, m = a.shape[0], b.shape[0]
    d = np.zeros((n + 1, m + 1), dtype=np.int64)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = (a[i - 1] != b[j - 1]).astype(np.int64)
            d[i, j] = np.minimum(np.minimum(d[i - 1, j] + 1, d[i, j - 1] + 1),
                                 d[i - 1, j - 1] + cost)
    return d[n, m]


def pairing_table(seq):
    # a folding-style table filled diagonal by diagonal with elementwise maxima
    n = seq.shape[0]
    t = np.zeros((n, n), dtype=np.int64)
    for i in range(n - 1, -1, -1):
        for j in range(i + 1, n):
            best = np.maximum(t[i, j - 1], t[i + 1, j] if i + 1 < n else 0)
            pair = (seq[i] + seq[j] == 3).astype(np.int64)
            inner = t[i + 1, j - 1] if i + 1 <= j - 1 else 0
            best = np.maximum(best, inner + pair)
            t[i, j] = best
    return t


def python_max_table(seq):
    n = seq.shape[0]
    t = np.zeros((n, n), dtype=np.int64)
    for i in range(n - 2, -1, -1):
        for j in range(i + 1, n):
            t[i, j] = max(t[i, j - 1], t[i + 1, j])  # MARK-PYMAX
    return t


def bucket_counts(values, nbins):
    idx = np.clip((values * nbins).astype(np.int64), 0, nbins - 1)
    counts = np.zeros(nbins, dtype=np.int64)
    np.add.at(counts, idx, 1)
    sums = np.zeros(nbins)
    np.add.at(sums, idx, values)
    return counts, sums


def running_best(x):
    best = np.maximum.accumulate(x)
    return np.cumsum(best) - np.cumsum(x)


def sparse_rows(ptr, cols, vals, x):
    y = np.zeros(ptr.shape[0] - 1)
    for i in range(ptr.shape[0] - 1):
        lo, hi = ptr[i], ptr[i + 1]
        y[i] = vals[lo:hi] @ x[cols[lo:hi]]  # MARK-DATASLICE
    return y


def masked_bin_means(radius, data, nbins):
    edges = np.linspace(0, radius.max(), nbins + 1)
    out = np.zeros(nbins)
    for i in range(nbins):
        sel = (radius >= edges[i]) & (radius < edges[i + 1])
        out[i] = data[sel].mean()  # MARK-MASKMEAN
    return out


def escape_masked(cr, ci, iters):
    zr = np.zeros_like(cr)
    zi = np.zeros_like(ci)
    count = np.zeros(cr.shape, dtype=np.int32)
    for _ in range(iters):
        m = zr * zr + zi * zi <= 4.0
        zr[m], zi[m] = zr[m] * zr[m] - zi[m] * zi[m] + cr[m], 2.0 * zr[m] * zi[m] + ci[m]
        count[m] += 1
    return count


def softened_gravity(pos, mass):
    d = pos[:, np.newaxis, :] - pos[np.newaxis, :, :]
    r2 = np.sum(d * d, axis=2)
    inv = r2.copy()
    inv[inv > 0] = inv[inv > 0] ** -1.5
    return -(d * (inv * mass)[:, :, np.newaxis]).sum(axis=1)


def leaky_relu_in_place(x, slope):
    x[x < 0] *= slope
    return x.sum()


def rows_contract(a, c4):
    nq, npp = a.shape[1], a.shape[2]
    for r in range(a.shape[0]):
        a[r, :, :] = np.reshape(np.reshape(a[r], (nq, npp)) @ c4, (nq, npp))


def copies_and_aliases(x):
    y = np.array(x)
    y[::2] = 0.0
    z = np.asarray(x)
    z += 1.0  # the caller's x, as in NumPy
    return y


def diagonally_dominant(a):
    np.fill_diagonal(a, np.abs(a).sum(axis=1) + 1.0)
    return np.trace(a)


def banded(n, a):
    out = np.zeros((n, n))
    i = np.arange(n)
    out[i, i] = a[:n]
    out[i[:-1], i[1:]] = -a[1:n]
    return out


def gram_into(a, g):
    np.dot(a.T, a, out=g)
    np.clip(g, 0.0, 2.0, out=g)


def tensor_contract(a, b):
    return np.tensordot(a, b, axes=([1, 2], [0, 1]))


def sliding_median(x):
    windows = np.stack([x[:-2], x[1:-1], x[2:]])
    windows.sort(axis=0)
    x[1:-1] = windows[1]


def damped_least_squares(a, y, w, damping):
    n = w.shape[0]
    w += np.linalg.solve(a.T @ a + damping * np.eye(n), a.T @ (y - a @ w))
    return np.linalg.det(a.T @ a)


def top_three(scores, values):
    order = np.argsort(-scores, kind="stable")
    return values[order[:3]], np.sort(scores)[-3:]


def despeckle(img):
    # a 3x3 median filter of the interior, written back into the image
    stack = np.stack([img[1 + di:img.shape[0] - 1 + di, 1 + dj:img.shape[1] - 1 + dj]
                      for di in (-1, 0, 1) for dj in (-1, 0, 1)])
    img[1:-1, 1:-1] = np.median(stack, axis=0)


def rank_by_row(scores):
    order = np.argsort(scores, axis=1)
    best = np.take_along_axis(scores, order[:, -1:], axis=1)
    return best, np.unravel_index(np.argmax(scores), scores.shape)


def radial_profile(radius, data, nbins):
    weighted, edges = np.histogram(radius, nbins, weights=data)
    counts, _ = np.histogram(radius, nbins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    return weighted / np.maximum(counts, 1), np.interp(radius, centres, weighted)


def bin_of_each(values, edges):
    return np.searchsorted(edges, values, side="right") - 1


def largest_outlier(x, limit):
    z = (x - x.mean()) / x.std()
    return x[np.abs(z) > limit].max()  # MARK-MASKMAX


# -- the cases -------------------------------------------------------------------------------


def _cases():
    r = _rng()
    f = lambda *s: r.random(s)  # noqa: E731
    spd = f(5, 5)
    spd = spd @ spd.T + 5 * np.eye(5)
    lower = np.tril(f(6, 6)) + 2 * np.eye(6)
    ptr = np.array([0, 2, 3, 6])
    return {
        "smooth_1d": (smooth_1d, (4, f(16), f(16))),
        "five_point_relax": (five_point_relax, (3, f(10, 10), f(10, 10))),
        "heat_cube": (heat_cube, (3, f(6, 6, 6), f(6, 6, 6))),
        "sweep_in_place": (sweep_in_place, (1, f(5, 5))),
        "yee_fields": (yee_fields, (3, f(6, 7), f(6, 7), f(6, 7), f(3))),
        "limited_diffusion": (limited_diffusion, (f(10, 10), f(10, 10))),
        "pressure_poisson": (pressure_poisson, (4, f(8, 8), f(8, 8), 0.1, 0.2)),
        "periodic_advection": (periodic_advection, (3, f(12), 0.3)),
        "vertical_tridiagonal": (vertical_tridiagonal,
                                 (f(2, 3, 5), f(2, 3, 5) + 3, f(2, 3, 5), f(2, 3, 5))),
        "correlate_valid": (correlate_valid, (f(9, 8), f(3, 3))),
        "sobel_magnitude": (sobel_magnitude, (f(8, 9),)),
        "box_blur_padded": (box_blur_padded, (f(7, 6),)),
        "recursive_smoothing": (recursive_smoothing, (f(4, 8), 0.4)),
        "threshold_in_place": (threshold_in_place, (f(6, 7), 0.2, 0.8)),
        "gamma_lut": (gamma_lut, (f(5, 6), f(16))),
        "scaled_product_update": (scaled_product_update, (1.5, 1.2, f(4, 6), f(4, 5), f(5, 6))),
        "two_products": (two_products, (1.5, 1.2, f(3, 4), f(4, 5), f(5, 6), f(3, 6))),
        "transpose_times": (transpose_times, (f(5, 4), f(4))),
        "both_directions": (both_directions, (f(5, 4), f(4), f(5))),
        "summed_mv": (summed_mv, (1.5, 1.2, f(5, 5), f(5, 5), f(5))),
        "two_mv_updates": (two_mv_updates, (f(5), f(5), f(5), f(5), f(5, 5))),
        "rank_two_then_mv": (rank_two_then_mv, (1.5, 1.2, f(5, 5), *(f(5) for _ in range(8)))),
        "lower_rank_k": (lower_rank_k, (1.5, 1.2, f(4, 4), f(4, 3))),
        "triangular_times": (triangular_times, (1.5, f(4, 4), f(4, 3))),
        "lu_in_place": (lu_in_place, (spd.copy(),)),
        "cholesky_rows": (cholesky_rows, (spd.copy(),)),
        "forward_substitute": (forward_substitute, (lower, np.zeros(6), f(6))),
        "orthonormalize": (orthonormalize, (f(6, 4),)),
        "batched_contract": (batched_contract, (f(2, 3, 4), f(4, 4))),
        "covariance_matrix": (covariance_matrix, (6.0, f(6, 4))),
        "correlation_matrix": (correlation_matrix, (f(6, 4),)),
        "symmetric_times": (symmetric_times, (1.5, 1.2, f(4, 5), f(4, 4), f(4, 5))),
        "all_pairs_shortest": (all_pairs_shortest, (f(6, 6) * 10,)),
        "levinson_like": (levinson_like, (f(6) * 0.3,)),
        "nbody_steps": (nbody_steps, (2, f(5, 3), f(5, 3), f(5) + 1, 0.01)),
        "great_circle": (great_circle, (f(7), f(7), f(7), f(7))),
        "trace_tanh": (trace_tanh, (f(5, 5),)),
        "particles_in_box": (particles_in_box, (3, f(10), f(10) - 0.5, 0.8)),
        "escape_counts": (escape_counts, (f(6, 6) * 3 - 2, f(6, 6) * 3 - 1.5, 8)),
        "spring_chain": (spring_chain, (3, f(8), f(8), 2.0, 0.1)),
        "two_layer_net": (two_layer_net, (f(4, 6), f(6, 8), f(8), f(8, 3), f(3))),
        "conv_layer": (conv_layer, (f(2, 5, 5, 2), f(3, 3, 2, 3), f(3))),
        "max_pool": (max_pool, (f(2, 4, 6, 3),)),
        "layer_norm": (layer_norm, (f(4, 6), f(6), f(6))),
        "batch_norm_train": (batch_norm_train, (f(6, 4), f(4), f(4), 0.9)),
        "adam_step": (adam_step, (f(5), f(5), f(5), f(5), 3, 0.01)),
        "cross_entropy": (cross_entropy, (f(5, 4), np.array([0, 3, 1, 1, 2]))),
        "logistic_step": (logistic_step, (f(3), f(8, 3), (f(8) > 0.5) * 1.0, 0.5)),
        "attention": (attention, (f(4, 3), f(5, 3), f(5, 2))),
        "edit_distance": (edit_distance, (np.array([1, 2, 3, 1]), np.array([2, 3, 1]))),
        "pairing_table": (pairing_table, (np.array([0, 3, 1, 2, 2, 1]),)),
        "bucket_counts": (bucket_counts, (f(20), 4)),
        "running_best": (running_best, (f(9),)),
        "python_max_table": (python_max_table, (np.array([0, 3, 1, 2]),)),
        "sparse_rows": (sparse_rows, (ptr, np.array([0, 2, 1, 0, 1, 2]), f(6), f(3))),
        "masked_bin_means": (masked_bin_means, (f(20), f(20), 3)),
        "escape_masked": (escape_masked, (f(6, 6) * 3 - 2, f(6, 6) * 3 - 1.5, 8)),
        "softened_gravity": (softened_gravity, (f(5, 3), f(5) + 1)),
        "leaky_relu_in_place": (leaky_relu_in_place, (f(4, 5) - 0.5, 0.1)),
        "rows_contract": (rows_contract, (f(3, 2, 4), f(4, 4))),
        "copies_and_aliases": (copies_and_aliases, (f(7),)),
        "diagonally_dominant": (diagonally_dominant, (f(4, 4) - 0.5,)),
        "banded": (banded, (5, f(6))),
        "gram_into": (gram_into, (f(5, 3), np.zeros((3, 3)))),
        "tensor_contract": (tensor_contract, (f(3, 2, 4), f(2, 4, 5))),
        "sliding_median": (sliding_median, (f(9),)),
        "damped_least_squares": (damped_least_squares, (f(6, 3), f(6), f(3), 0.1)),
        "top_three": (top_three, (f(7), f(7))),
        "despeckle": (despeckle, (f(6, 7),)),
        "rank_by_row": (rank_by_row, (f(4, 5),)),
        "largest_outlier": (largest_outlier, (np.r_[f(9), 5.0], 1.5)),
        "radial_profile": (radial_profile, (f(20), f(20), 4)),
        "bin_of_each": (bin_of_each, (f(8), np.linspace(0.0, 1.0, 5))),
    }


CASES = _cases()

# Python control flow on array values, data-dependent slices and the max of a selection that
# may be empty: eager NumPy, with a warning naming the line (its MARK)
FALLS_BACK = {"python_max_table": "MARK-PYMAX", "sparse_rows": "MARK-DATASLICE",
              "largest_outlier": "MARK-MASKMAX"}
COMPILED = [name for name in CASES if name not in FALLS_BACK]
# compiled end to end in every run (the others under TRACEJIT_SLOW=1): one of each kind of
# write the tracer records, kept small so the suite's compile time stays low
EVERY_RUN = ("smooth_1d", "escape_masked", "all_pairs_shortest", "rows_contract",
             "copies_and_aliases", "diagonally_dominant", "gram_into", "lu_in_place")
SLOW = (pytest.mark.slow, pytest.mark.skipif(not os.environ.get("TRACEJIT_SLOW"),
                                             reason="every kernel compiled: TRACEJIT_SLOW=1"))


def _copies(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _eager(fn, args):
    """(result, every argument after the call) of plain NumPy on copies of args."""
    args = _copies(args)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args), args


def _assert_close(got, want, path="result"):
    """Equal dtype, shape and values; ndarray vs NumPy scalar is not compared (the reference
    interpreter holds 0-d values as it likes)."""
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_close(g, w, f"{path}[{i}]")
        return
    if want is None:
        assert got is None, path
        return
    g, w = np.asarray(got), np.asarray(want)
    assert (g.dtype, g.shape) == (w.dtype, w.shape), f"{path}: {g.dtype}{g.shape} != NumPy's " \
        f"{w.dtype}{w.shape}"
    if w.dtype.kind == "f":
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13, equal_nan=True, err_msg=path)
    else:
        np.testing.assert_array_equal(g, w, err_msg=path)


def check_program(fn, *args):
    """The traced program, run by the reference interpreter (no compilation), returns what
    NumPy returns and writes what NumPy writes into each argument."""
    want, want_args = _eager(fn, args)
    graph = tj.trace(fn, fallback="raise")._program(tuple(_copies(args)), {})
    by_name = dict(zip(inspect.signature(fn).parameters, args))
    with np.errstate(all="ignore"):
        out = interpret(graph, *[by_name[n.attrs["name"]] for n in graph.inputs])
    tree = graph.out_tree  # a writing function's program returns (result, {name: new value})
    writes = tree.kind == "tuple" and len(tree.children) == 2 and tree.children[1].kind == "dict"
    got, written = out if writes else (out, {})
    _assert_close(got, want)
    for pname, before, after in zip(inspect.signature(fn).parameters, args, want_args):
        if isinstance(after, np.ndarray):
            _assert_close(written.get(pname, before), after, f"argument {pname}")


@pytest.mark.parametrize("name", COMPILED)
def test_traced_program_equals_numpy(name):
    fn, args = CASES[name]
    check_program(fn, *args)


@pytest.mark.parametrize("name", [n if n in EVERY_RUN else pytest.param(n, marks=SLOW)
                                  for n in COMPILED])
def test_compiles_and_equals_numpy(name):
    fn, args = CASES[name]
    want, want_args = _eager(fn, args)
    traced = tj.trace(fn, fallback="raise")
    got_args = _copies(args)
    with np.errstate(all="ignore"):
        got = traced(*got_args)
    assert_same(got, want)
    for i, (g, w) in enumerate(zip(got_args, want_args)):
        if isinstance(w, np.ndarray):
            assert_same(g, w, _path=f"argument {i}")
    assert traced.cache_info().fallbacks == 0


@pytest.mark.parametrize("name", sorted(FALLS_BACK))
def test_untraceable_kernels_fall_back_naming_the_line(name):
    fn, args = CASES[name]
    want, want_args = _eager(fn, args)
    lines = open(__file__).read().splitlines()
    line = next(i + 1 for i, text in enumerate(lines) if FALLS_BACK[name] in text
                and "FALLS_BACK" not in text and not text.lstrip().startswith("FALLS"))
    got_args = _copies(args)
    with pytest.warns(tj.FallbackWarning, match=rf"{HERE}:{line}\b"):
        got = tj.trace(fn)(*got_args)
    assert_same(got, want)
    for g, w in zip(got_args, want_args):
        if isinstance(w, np.ndarray):
            assert_same(g, w)


# -- what these kernels needed, one test each --------------------------------------------------

R = _rng(7)
V, W, M = R.random(7) - 0.3, R.random(7), R.random((5, 3)) - 0.5


@pytest.mark.parametrize("fn", [
    lambda v: v.__setitem__(v > 0.5, -v[v > 0.5]),  # the mask built twice is the same mask
    lambda v, w: v.__setitem__(w < 0.5, v[w < 0.5] * w[w < 0.5] + 1),
    lambda m: m.__setitem__(m[:, 0] > 0, m[m[:, 0] > 0] * 10),  # a mask of rows
], ids=["negate", "two arrays", "rows"])
def test_assignment_of_a_selection_through_its_mask(fn):
    args = {1: (V,), 2: (V, W)}[fn.__code__.co_argcount] if fn.__code__.co_varnames[0] != "m" \
        else (M,)
    check_program(fn, *args)


def _augmented(v, w):
    v[v > 0.5] += 1  # x[m] += 1: read, add, assign back through m
    w[w < 0.5] *= 2 * v[w < 0.5]
    m = v < 0.2
    v[m], w[m] = w[m], v[m]  # both right-hand sides are read first
    return v.sum()


def _int_augmented(x):
    x[x > 2] += 0.5


def _reductions(v, m):
    keep = m[:, 0] > 0
    s = v[v > 0.1]
    return (s.sum(), s.mean(), np.prod(s), np.any(s > 0.6), np.all(s > 0.3), np.sum(s ** 2),
            np.count_nonzero(s > 0.5), np.add.reduce(s), m[keep].mean(axis=0), m[keep].sum(0),
            v[v > 5].mean(), v.astype(np.float32)[v > 0.2].mean(), (v > 0)[v > 0.5].sum())


def test_augmented_assignment_and_reductions_of_selections():
    check_program(_augmented, V, W)
    check_program(_augmented, V.astype(np.float32), W)  # in place: v's float32 is kept
    with pytest.raises(TypeError, match="same_kind"):  # NumPy's UFuncTypeError, as eagerly
        tj.trace(_int_augmented, fallback="raise")(np.arange(5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the empty selection's mean is nan
        check_program(_reductions, V, M)


def _returns_selection(v):
    return v[v > 0]


@pytest.mark.parametrize("fn, error, match", [
    (lambda v: v[v > 0].max(), tj.UnsupportedError, "empty selection"),
    (lambda v: len(v[v > 0]), tj.TraceError, "len"),
    (lambda v: v[v > 0] + v, tj.TraceError, "arithmetic with an array"),
    (lambda v: v[v > 0] + v[v < 0], tj.TraceError, "different masks"),
    (lambda v: v.__setitem__(v > 0, v[v < 0]), tj.TraceError, "another mask"),
    (_returns_selection, tj.TraceError, "returning"),
], ids=["max", "len", "with an array", "two masks", "assigned through another", "returned"])
def test_what_needs_a_selections_length_falls_back_naming_the_line(fn, error, match):
    with pytest.raises(error, match=rf"{match}.*{HERE}:\d+"):
        tj.trace(fn, fallback="raise")(V.copy())


def test_a_constant_boolean_mask_indexes_as_its_nonzero():
    def f(x):
        x[np.array([True, False, True, False, False, True, True])] = np.arange(4.0)
        return x[[True, False] * 3 + [True]] * 2, x[np.arange(7) > 3]
    check_program(f, V)


def test_np_array_copies_and_np_asarray_aliases_a_traced_array():
    def f(x):
        y = np.array(x)
        y[0] = 5.0
        z = np.asarray(x)
        z[1] = 7.0  # writes x, as in NumPy
        return (y, np.asarray(x, dtype=np.float32), np.array(x, ndmin=3), np.asanyarray(x) * 2,
                np.array(x, dtype=np.int64))
    check_program(f, V)
    with pytest.raises(ValueError, match="copy"):
        tj.trace(lambda x: np.array(x, dtype=np.float32, copy=False),
                 fallback="raise")(V.copy())


def test_a_python_int_used_as_a_size_or_bound_is_traced_with_its_value():
    def f(n, a):
        out = np.zeros((n, n))
        out[np.arange(n), np.arange(n)] = a[:n]
        return out
    traced = tj.trace(f, fallback="raise")
    check_program(f, 3, V)
    check_program(f, 4, V)
    traced._program((3, V), {})
    assert traced.cache_info().fallbacks == 0


def test_ufunc_outer():
    def f(a, b, m):
        return (np.add.outer(a, b), np.subtract.outer(b, a), np.maximum.outer(a, m),
                np.multiply.outer(a[0], b), np.less.outer(a, b))
    check_program(f, V[:3], W[:4], M)
    with pytest.raises(tj.UnsupportedError, match="outer"):
        tj.trace(lambda a: np.nextafter.outer(a, a), fallback="raise")(V.copy())


def test_linspace_with_traced_end_points():
    def f(x):
        return (np.linspace(0, x.max(), 5), np.linspace(x[0], x[1], 4, endpoint=False),
                np.linspace(x[0], 2.0, 1), np.linspace(x[1], x[2], 3, retstep=True),
                np.linspace(x[0], x[1], 0), np.linspace(x[0], 1, 3, dtype=np.float32))
    check_program(f, V)


def test_out_of_dot_and_clip_writes_into_the_traced_array():
    def f(a, b, c):
        np.dot(a, b, out=c)
        np.clip(c, 0.5, 1.0, out=c)
        np.clip(a, 0.2, 0.8, out=a)
    check_program(f, R.random((3, 4)), R.random((4, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="not acceptable"):
        tj.trace(lambda a, c: np.dot(a, a, out=c), fallback="raise")(
            np.ones((2, 2)), np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        tj.trace(lambda a, c: np.dot(a, a, out=c), fallback="raise")(np.ones((2, 2)), np.ones(3))


def test_fill_diagonal_putmask_and_put_write_as_numpy():
    def f(a, b, c, d):
        np.fill_diagonal(a, 1.0)
        np.fill_diagonal(b, np.array([5.0, 6.0]))  # repeated along the diagonal
        np.fill_diagonal(c, b[0, :3])
        np.putmask(d, d > 0.5, 0.0)
        np.putmask(b, b < 0.5, a[:, :3] + 1)
        np.put(d, [0, -1], [7.0, 8.0])
    check_program(f, R.random((3, 4)), R.random((3, 3)), R.random((4, 3)), R.random(6))
    with pytest.raises(ValueError, match="same size"):
        tj.trace(lambda d: np.putmask(d, d[:2] > 0, 0.0), fallback="raise")(np.ones(3))


def test_tensordot_trace_append_column_stack_and_initial():
    def f(a, b, c):
        return (np.tensordot(a, b, axes=([1], [0])), np.tensordot(a, b, axes=1),
                np.tensordot(c, c, axes=([0, 2], [2, 0])), np.tensordot(a[0], b[:, 0], 0),
                np.trace(a[:, :3]), np.trace(a, 1), np.trace(c.astype(np.int32), axis1=1,
                                                             axis2=2),
                np.append(a, 1.0), np.append(a, a[:1], axis=0), np.column_stack((b[:, 0], b)),
                np.max(a, initial=0.7), np.min(a, axis=0, initial=0.3),
                np.max(a.astype(np.float32), initial=0.0))
    check_program(f, R.random((3, 4)), R.random((4, 2)), R.random((2, 3, 2)))


def test_sorting_and_dense_linear_algebra_run_numpys_own_routines():
    def f(a, b, m):
        m2 = m.copy()
        m2.sort(axis=0)  # in place, as NumPy's method
        b.sort()
        return (np.sort(a), np.argsort(a, kind="stable"), m2, np.sort(m, axis=None),
                np.argsort(m, axis=1), np.sort(a.astype(np.int32))[::-1])

    def g(a, b, c):
        spd = a @ a.T
        return (np.linalg.solve(a, b), np.linalg.solve(a, c), np.linalg.inv(a),
                np.linalg.det(a), np.linalg.inv(a.astype(np.int64) + 3), np.linalg.cholesky(spd))
    check_program(f, V, W[:5], M)
    check_program(g, M[:3] + 3 * np.eye(3), V[:3], M[:3, :2])
    with pytest.raises(np.linalg.LinAlgError, match="square"):
        tj.trace(lambda a: np.linalg.inv(a), fallback="raise")(M.copy())


def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        g[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


def test_gradients_of_solve_inv_and_det_match_finite_differences():
    a, b = M[:3] + 3 * np.eye(3), V[:3]

    def f(a):
        return np.sum(np.linalg.solve(a, b) ** 2) + np.linalg.det(a) + np.linalg.inv(a)[0].sum()
    np.testing.assert_allclose(tj.grad(f)(a.copy()), _numeric_grad(f, a), atol=1e-6)


def test_fabs_take_along_axis_unravel_index_kron_and_median():
    def f(a, m):
        nan_row = np.where(m > 0.9, np.nan, m)
        return (np.fabs(a - 0.5), np.take_along_axis(m, np.argsort(m, axis=1), axis=1),
                np.take_along_axis(m, np.argsort(m, axis=0), 0),
                np.unravel_index(np.argmax(m), m.shape), np.kron(m[:2, :2], m[:2, :3]),
                np.kron(a[:2], a[:3]), np.median(a), np.median(m, axis=0),
                np.median(m, axis=1, keepdims=True), np.median(m.astype(np.int32)),
                np.median(m, keepdims=True), np.median(nan_row, axis=1),
                np.median(a.astype(np.float32)))
    check_program(f, V, M.T)


def test_out_of_scans_and_rounding_flat_view_and_contiguous_copies():
    def f(a, b, m, c):
        np.cumsum(a, out=b)
        np.add.reduce(m, axis=0, out=c)
        np.round(a, 1, out=a)
        m.flat[[0, 5]] = -1.0
        m.T.flat[1:3] = 3.0  # flat positions of the transpose: a strided write into m
        first, few = m.flat[1], m.flat[2:4]
        v = m.view()
        v[1, 1] = 9.0
        t = np.ascontiguousarray(m.T)  # a copy: writing it leaves m alone
        t[0, 0] = 100.0
        r = np.ascontiguousarray(m[1])  # a view: writing it writes m
        r[0] = 50.0
        m[:3][np.diag_indices_from(m[:3])] = 0.0
        m[np.triu_indices_from(m[:3], 1)] += 1.0
        m[m.sum(axis=1) > 2.0, :] = 0.5
        return first, few, t, np.real(m), np.imag(m)
    check_program(f, V, np.zeros(7), R.random((4, 3)), np.zeros(3))


def test_searchsorted_interp_and_histogram_run_numpys_own_routines():
    def f(a, v, x, xp, fp, w):
        return (np.searchsorted(a, v), np.searchsorted(a, v, side="right"),
                np.searchsorted(a, 0.5), np.interp(x, xp, fp), np.interp(0.3, xp, fp),
                np.histogram(x, 4), np.histogram(x, 3, weights=w),
                np.histogram(x, 5, range=(0.0, 2.0)), np.histogram(x.astype(np.int64), 3))
    check_program(f, np.sort(V), W[:4], W, np.array([0.0, 0.4, 1.0]), V[:3], V)
    with pytest.raises(tj.UnsupportedError, match="number of bins"):
        tj.trace(lambda x: np.histogram(x, "auto"), fallback="raise")(V.copy())
