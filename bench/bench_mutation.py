"""Mutating workloads: an Adam step that updates its parameters in place, and a 2-D Jacobi
stencil time loop that assigns the interior of its grid at every step.

Peers: NumPy eager, tracejit (the same function traced), and a hand-written Numba version.
Each peer starts from the same arrays; after one call every array each peer mutated is checked
against NumPy's before anything is timed. Times are medians of repeated calls (the arrays keep
being updated, as in a training or time loop), with the spread (best and worst sample) printed.

Usage: python bench/bench_mutation.py [--size N] [--grid N] [--steps N] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

_BENCH = Path(__file__).resolve().parent
for _p in (str(_BENCH.parent), str(_BENCH)):  # the working tree's tracejit, then bench/
    if _p not in sys.path:
        sys.path.insert(0, _p)

import harness  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402

import tracejit as tj  # noqa: E402


def adam(w, m, v, g, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, t=10):
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    m_hat = m / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    w -= lr * m_hat / (np.sqrt(v_hat) + eps)


@numba.njit(parallel=True, fastmath=False)
def adam_numba(w, m, v, g, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, t=10):
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    for i in numba.prange(w.size):
        mi = m[i] * np.float32(b1) + np.float32(1 - b1) * g[i]
        vi = v[i] * np.float32(b2) + np.float32(1 - b2) * g[i] * g[i]
        m[i], v[i] = mi, vi
        w[i] -= np.float32(lr) * (mi / np.float32(c1)) / (np.sqrt(vi / np.float32(c2))
                                                          + np.float32(eps))


def jacobi(u, steps):
    for _ in range(steps):
        u[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:])


@numba.njit(parallel=True)
def jacobi_numba(u, steps):
    new = u.copy()
    n, m = u.shape
    for _ in range(steps):
        for i in numba.prange(1, n - 1):
            for j in range(1, m - 1):
                new[i, j] = 0.25 * (u[i - 1, j] + u[i + 1, j] + u[i, j - 1] + u[i, j + 1])
        u[1:-1, 1:-1] = new[1:-1, 1:-1]


def _bench(name, fn, numba_fn, make, static=()):
    ref = make()
    fn(*ref)
    peers = {"numpy": fn, "tracejit": tj.trace(fn, static_argnames=static, fallback="raise"),
             "numba": numba_fn}
    times, notes, spread = {}, {}, {}
    for peer, call in peers.items():
        args = make()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", tj.FallbackWarning)
                call(*args)
            for k, (got, want) in enumerate(zip(args, ref)):
                if isinstance(want, np.ndarray):
                    tol = 2e-5 if want.dtype == np.float32 else 1e-10
                    harness.check_close(f"{peer} argument {k}", got, want, rtol=tol, atol=tol)
            timing = harness.measure_stats(call, *make())
        except Exception as e:  # a peer that cannot run is reported, not hidden
            times[peer], notes[peer] = None, f"{type(e).__name__}: {e}"[:160]
            continue
        times[peer] = timing.median
        spread[peer] = (timing.best, timing.worst)
    return harness.Row(name, times, notes, {"spread": spread})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=1_000_000, help="Adam parameters (float32)")
    p.add_argument("--grid", type=int, default=1024, help="stencil grid side (float64)")
    p.add_argument("--steps", type=int, default=20, help="stencil steps per call")
    p.add_argument("--quick", action="store_true", help="small sizes")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.grid, args.steps = 100_000, 256, 5
    rng = np.random.default_rng(0)
    base = [rng.random(args.size, dtype=np.float32) for _ in range(4)]
    grid = rng.random((args.grid, args.grid))
    rows = [
        _bench(f"adam f32[{args.size}]", adam, adam_numba,
               lambda: tuple(a.copy() for a in base)),
        _bench(f"jacobi f64[{args.grid}x{args.grid}] x{args.steps}", jacobi, jacobi_numba,
               lambda: (grid.copy(), args.steps), static=("steps",)),
    ]
    harness.report("mutation", rows)
    for row in rows:
        for peer, (best, worst) in row.extra["spread"].items():
            print(f"  {row.workload:32s} {peer:9s} best {best * 1e3:8.3f} ms  "
                  f"worst {worst * 1e3:8.3f} ms")
    harness.save_json("mutation", [r.__dict__ for r in rows])


if __name__ == "__main__":
    main()
