"""Hand-written Numba reference kernels: "what a Numba expert writes".

Each workload has the plain NumPy function a user would write (``*_numpy``; these are also the
functions the benchmarks trace with tracejit) and a hand-written ``numba.njit(parallel=True,
fastmath=False)`` version (``*_numba``) next to it. ``python bench/reference_numba.py`` checks
that every pair agrees.

Conventions of the Numba versions:
- elementwise kernels loop with ``prange`` over the flat index of C-contiguous inputs;
- constants are passed in the input dtype so float32 inputs are computed in float32;
- row-wise kernels (softmax, layernorm) ``prange`` over rows and accumulate sums in float64;
- the column sum ``prange``s over one block of columns per thread, reading rows in order;
- the MLP uses BLAS (NumPy's ``@``) for the matmuls and one in-place bias + ReLU epilogue
  per layer (serial: see ``_bias_relu_inplace``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

_JIT = dict(parallel=True, fastmath=False, nogil=True)

# --------------------------------------------------------------------------- chain

CHAIN_EXPR = "exp(-a * a) * sin(b) + sqrt(abs(c)) * 0.5 - a / (1.0 + b * b)"
# same expression with the constants as variables, so numexpr keeps float32 in float32
CHAIN_EXPR_TYPED = "exp(-a * a) * sin(b) + sqrt(abs(c)) * half - a / (one + b * b)"


def chain_numpy(a, b, c):
    return np.exp(-a * a) * np.sin(b) + np.sqrt(np.abs(c)) * 0.5 - a / (1.0 + b * b)


@numba.njit(**_JIT)
def _chain_kernel(a, b, c, out, half, one):
    for i in prange(a.size):
        ai = a[i]
        bi = b[i]
        out[i] = np.exp(-ai * ai) * np.sin(bi) + np.sqrt(np.abs(c[i])) * half - ai / (one + bi * bi)


def _flat(x):
    return np.ascontiguousarray(x).reshape(-1)


def chain_numba(a, b, c):
    a1, b1, c1 = _flat(a), _flat(b), _flat(c)
    out = np.empty_like(a1)
    t = a1.dtype.type
    _chain_kernel(a1, b1, c1, out, t(0.5), t(1.0))
    return out.reshape(np.shape(a))


@numba.njit(fastmath=False, nogil=True)
def chain_numba_serial(a, b, c):
    """Serial njit chain on 1-D arrays: the cost of a plain Numba call on tiny arrays."""
    out = np.empty_like(a)
    for i in range(a.size):
        ai = a[i]
        bi = b[i]
        out[i] = np.exp(-ai * ai) * np.sin(bi) + np.sqrt(np.abs(c[i])) * 0.5 - ai / (1.0 + bi * bi)
    return out


# --------------------------------------------------------------------------- Black-Scholes

BS_RATE, BS_VOLATILITY = 0.02, 0.30
_CND_A = (0.31938153, -0.356563782, 1.781477937, -1.821255978, 1.330274429)
_RSQRT2PI = 0.39894228040143267794


def cnd_numpy(d):
    """The normal CDF by the usual 5-term polynomial (NumPy has no erf)."""
    a1, a2, a3, a4, a5 = _CND_A
    k = 1.0 / (1.0 + 0.2316419 * np.abs(d))
    ret = _RSQRT2PI * np.exp(-0.5 * d * d) * (k * (a1 + k * (a2 + k * (a3 + k * (a4 + k * a5)))))
    return np.where(d > 0, 1.0 - ret, ret)


def black_scholes_numpy(price, strike, years):
    """European call and put prices, as in Numba's and NumPy's usual Black-Scholes examples."""
    r, v = BS_RATE, BS_VOLATILITY
    sqrt_t = np.sqrt(years)
    d1 = (np.log(price / strike) + (r + 0.5 * v * v) * years) / (v * sqrt_t)
    d2 = d1 - v * sqrt_t
    cnd1, cnd2 = cnd_numpy(d1), cnd_numpy(d2)
    discount = np.exp(-r * years)
    call = price * cnd1 - strike * discount * cnd2
    put = strike * discount * (1.0 - cnd2) - price * (1.0 - cnd1)
    return call, put


@numba.njit(fastmath=False, nogil=True, inline="always")
def _cnd(d):
    a1, a2, a3, a4, a5 = _CND_A
    k = 1.0 / (1.0 + 0.2316419 * np.abs(d))
    ret = _RSQRT2PI * np.exp(-0.5 * d * d) * (k * (a1 + k * (a2 + k * (a3 + k * (a4 + k * a5)))))
    return 1.0 - ret if d > 0 else ret


@numba.njit(**_JIT)
def _black_scholes_kernel(price, strike, years, call, put, r, v):
    for i in prange(price.size):
        s, x, t = price[i], strike[i], years[i]
        sqrt_t = np.sqrt(t)
        d1 = (np.log(s / x) + (r + 0.5 * v * v) * t) / (v * sqrt_t)
        d2 = d1 - v * sqrt_t
        cnd1, cnd2 = _cnd(d1), _cnd(d2)
        discount = np.exp(-r * t)
        call[i] = s * cnd1 - x * discount * cnd2
        put[i] = x * discount * (1.0 - cnd2) - s * (1.0 - cnd1)


def black_scholes_numba(price, strike, years):
    s, x, t = _flat(price), _flat(strike), _flat(years)
    call, put = np.empty_like(s), np.empty_like(s)
    _black_scholes_kernel(s, x, t, call, put, BS_RATE, BS_VOLATILITY)
    return call.reshape(np.shape(price)), put.reshape(np.shape(price))


# --------------------------------------------------------------------------- memory-bound

MEMBOUND_EXPR = "a * b + c * d - e"


def membound_numpy(a, b, c, d, e):
    return a * b + c * d - e


@numba.njit(**_JIT)
def _membound_kernel(a, b, c, d, e, out):
    for i in prange(a.size):
        out[i] = a[i] * b[i] + c[i] * d[i] - e[i]


def membound_numba(a, b, c, d, e):
    a1 = _flat(a)
    out = np.empty_like(a1)
    _membound_kernel(a1, _flat(b), _flat(c), _flat(d), _flat(e), out)
    return out.reshape(np.shape(a))


# --------------------------------------------------------------------------- small fma (overhead)

FMA_EXPR = "a * b + c"


def fma_numpy(a, b, c):
    return a * b + c


@numba.njit(fastmath=False, nogil=True)
def fma_numba(a, b, c):
    """Serial njit ``a * b + c`` on 1-D arrays: about the cost of the kernel alone for tiny
    arrays (no thread-pool launch, no Python wrapper)."""
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = a[i] * b[i] + c[i]
    return out


# --------------------------------------------------------------------------- sum of squares

SUMSQ_EXPR = "sum((a - b) ** 2)"


def sumsq_numpy(a, b):
    return np.sum((a - b) ** 2)


@numba.njit(**_JIT)
def _sumsq_kernel(a, b):
    s = 0.0
    for i in prange(a.size):
        d = a[i] - b[i]
        s += d * d
    return s


def sumsq_numba(a, b):
    return np.float64(_sumsq_kernel(_flat(a), _flat(b)))


# --------------------------------------------------------------------------- STREAM


@numba.njit(**_JIT)
def stream_copy(src, dst):
    """STREAM copy, dst[i] = src[i]: 16 bytes moved per element as STREAM counts them."""
    for i in prange(src.size):
        dst[i] = src[i]


@numba.njit(**_JIT)
def stream_triad(a, b, c, scalar):
    """STREAM triad, a[i] = b[i] + scalar * c[i]: 24 bytes per element."""
    for i in prange(a.size):
        a[i] = b[i] + scalar * c[i]


# --------------------------------------------------------------------------- column sums


def colsum_numpy(x):
    return x.sum(axis=0)


@numba.njit(**_JIT)
def _colsum_blocks(x, out):
    # one block of columns per thread; each walks its block row by row (memory in order),
    # adding into a row of partial sums
    n, m = x.shape
    nb = numba.get_num_threads()
    w = (m + nb - 1) // nb
    for b in prange(nb):
        lo = b * w
        hi = min(lo + w, m)
        acc = np.zeros(max(hi - lo, 0))
        for i in range(n):
            row = x[i, lo:hi]
            for j in range(hi - lo):
                acc[j] += row[j]
        out[lo:hi] = acc


def colsum_numba(x):
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape[1])
    _colsum_blocks(x, out)
    return out


# --------------------------------------------------------------------------- softmax (rows)


def softmax_numpy(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@numba.njit(**_JIT)
def _softmax_rows(x, out):
    n, m = x.shape
    for i in prange(n):
        mx = x[i, 0]
        for j in range(1, m):
            if x[i, j] > mx:
                mx = x[i, j]
        s = 0.0
        for j in range(m):
            e = np.exp(x[i, j] - mx)
            out[i, j] = e
            s += e
        inv = 1.0 / s
        for j in range(m):
            out[i, j] = out[i, j] * inv


def _rows(x):
    x = np.ascontiguousarray(x)
    return x.reshape(-1, x.shape[-1])


def softmax_numba(x):
    x2 = _rows(x)
    out = np.empty_like(x2)
    _softmax_rows(x2, out)
    return out.reshape(np.shape(x))


# --------------------------------------------------------------------------- layernorm (rows)

LAYERNORM_EPS = 1e-5


def layernorm_numpy(x):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5)


@numba.njit(**_JIT)
def _layernorm_rows(x, out, eps):
    n, m = x.shape
    for i in prange(n):
        s = 0.0
        for j in range(m):
            s += x[i, j]
        mu = s / m
        v = 0.0
        for j in range(m):
            d = x[i, j] - mu
            v += d * d
        inv = 1.0 / np.sqrt(v / m + eps)
        for j in range(m):
            out[i, j] = (x[i, j] - mu) * inv


def layernorm_numba(x, eps=LAYERNORM_EPS):
    x2 = _rows(x)
    out = np.empty_like(x2)
    _layernorm_rows(x2, out, eps)
    return out.reshape(np.shape(x))


# --------------------------------------------------------------------------- MLP forward


def mlp_numpy(x, w0, b0, w1, b1, w2, b2, w3, b3):
    h = x
    h = np.maximum(h @ w0 + b0, 0)
    h = np.maximum(h @ w1 + b1, 0)
    h = np.maximum(h @ w2 + b2, 0)
    h = np.maximum(h @ w3 + b3, 0)
    return h


@numba.njit(fastmath=False, nogil=True)
def _bias_relu_inplace(h, b):
    # Serial on purpose: (256, 1024) is too small to gain from threads, and a parallel=True
    # epilogue between BLAS calls made the whole forward ~2x slower on a 2-core machine
    # (Numba's OpenMP workers keep spinning after the region and compete with OpenBLAS's
    # threads for the cores).
    n, m = h.shape
    for i in range(n):
        for j in range(m):
            v = h[i, j] + b[j]
            h[i, j] = v if v > 0 else 0


def mlp_numba(x, *params):
    h = x
    for k in range(0, len(params), 2):
        h = h @ params[k]  # BLAS; a fresh C-contiguous output
        _bias_relu_inplace(h, params[k + 1])
    return h


# --------------------------------------------------------------------------- data + self-check


def make_inputs(workload: str, *, size: int | None = None, dtype=np.float64, seed: int = 0,
                small: bool = False, shape: tuple[int, int] | None = None):
    """Deterministic inputs for ``workload``; ``small`` shrinks them for quick checks.

    ``size`` sets the length of 1-D workloads; ``shape`` sets (rows, cols) for colsum, softmax
    and layernorm and (batch, width) for the MLP.
    """
    rng = np.random.default_rng(seed)

    def rnd(*shape, dt=dtype):
        return rng.standard_normal(shape, dtype=np.float64).astype(dt, copy=False)

    if workload == "black-scholes":
        n = min(size or 5_000_000, 10_001 if small else size or 5_000_000)
        return (rng.uniform(5.0, 30.0, n).astype(dtype), rng.uniform(1.0, 100.0, n).astype(dtype),
                rng.uniform(0.25, 10.0, n).astype(dtype))
    if workload in ("chain", "memory-bound", "sumsq", "fma"):
        n = size or {"fma": 100}.get(workload, 10_000_000)
        if small:
            n = min(n, 10_001)
        k = {"chain": 3, "memory-bound": 5, "sumsq": 2, "fma": 3}[workload]
        return tuple(rnd(n) for _ in range(k))
    if workload == "colsum":
        shape = shape or ((64, 1024) if small else (4096, 4096))
        return (rnd(*shape),)
    if workload == "softmax":
        shape = shape or ((64, 1024) if small else (4096, 1024))
        return (rnd(*shape, dt=np.float32) * 4,)
    if workload == "layernorm":
        shape = shape or ((64, 1024) if small else (8192, 1024))
        return (rnd(*shape, dt=np.float32) * 2 + 0.5,)
    if workload == "mlp":
        batch, width = shape or ((16, 64) if small else (256, 1024))
        x = rnd(batch, width, dt=np.float32)
        params = []
        for _ in range(4):
            params.append(rnd(width, width, dt=np.float32) * np.float32(np.sqrt(2.0 / width)))
            params.append(rnd(width, dt=np.float32) * np.float32(0.1))
        return (x, *params)
    raise KeyError(workload)


# workload -> (numpy fn, numba fn, rtol, atol per dtype)
PAIRS = {
    "chain": (chain_numpy, chain_numba),
    "black-scholes": (black_scholes_numpy, black_scholes_numba),
    "memory-bound": (membound_numpy, membound_numba),
    "fma": (fma_numpy, fma_numba),
    "sumsq": (sumsq_numpy, sumsq_numba),
    "colsum": (colsum_numpy, colsum_numba),
    "softmax": (softmax_numpy, softmax_numba),
    "layernorm": (layernorm_numpy, layernorm_numba),
    "mlp": (mlp_numpy, mlp_numba),
}


def tolerance(dtype) -> tuple[float, float]:
    """(rtol, atol) used to compare any peer with NumPy."""
    if np.dtype(dtype) == np.float32:
        return 2e-5, 2e-6
    return 1e-10, 1e-12


def self_check(small: bool = True) -> None:
    """Assert every hand-written Numba kernel agrees with its NumPy reference."""
    cases = [(w, np.float64) for w in PAIRS] + [("chain", np.float32)]
    for workload, dtype in cases:
        ref, fast = PAIRS[workload]
        args = make_inputs(workload, dtype=dtype, small=small)
        expected, got = ref(*args), fast(*args)
        out_dtype = np.asarray(expected).dtype
        rtol, atol = tolerance(out_dtype)
        if workload in ("mlp", "sumsq"):
            rtol = max(rtol, 1e-5 if out_dtype == np.float32 else 1e-9)
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=workload)
        assert np.asarray(got).dtype == out_dtype, (workload, np.asarray(got).dtype, out_dtype)
        print(f"ok  {workload:<13} in {args[0].dtype}, out {out_dtype}")


if __name__ == "__main__":
    self_check(small=True)
