"""Single-ufunc kernels vs NumPy's own ufunc: does tracejit's kernel for `np.f(x)` keep up?

NumPy has SIMD loops for some functions (float32 exp, log, sin, cos, tanh on AVX2); Numba calls
scalar libm unless the op table names a vector-math function (tracejit/backends/vecmath.py).
Each row is one traced function `lambda x: np.f(x)` on 2M elements, float64 and float32, against
`np.f(x)` (`power`: x ** 1.7; `power xy`: x ** y, both arrays); the result is checked against
NumPy first (rtol 1e-6 for float32, 1e-13 for float64).
The ratio column is NumPy's time over tracejit's: below 1 the kernel is slower than NumPy.

Usage: python bench/bench_vecmath.py [--size N] [--only exp log "power xy" ...] [--quick]
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
import numpy as np  # noqa: E402

# function -> the range its argument is drawn from
FUNCTIONS = {
    "exp": (-20, 20), "expm1": (-5, 5), "log": (1e-3, 1e3), "log1p": (-0.9, 1e3),
    "log2": (1e-3, 1e3), "log10": (1e-3, 1e3), "sin": (-10, 10), "cos": (-10, 10),
    "tan": (-1.5, 1.5), "tanh": (-5, 5), "arctan": (-10, 10), "sinh": (-5, 5), "cosh": (-5, 5),
    "power": (0.1, 10), "power xy": (-10, 10),
}


def workload(name):
    """The traced function and how many arrays it takes: `power xy` raises each x to its own
    exponent (uniform in -4..4, a third of them integers, so negative bases are not all NaN)."""
    if name == "power xy":
        return lambda x, y: np.power(x, y), 2
    f = getattr(np, name)
    if name == "power":
        return lambda x: f(x, 1.7), 1
    return lambda x: f(x), 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2_000_000)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--quick", action="store_true", help="200k elements, few repeats")
    args = parser.parse_args(argv)
    size = 200_000 if args.quick else args.size
    timing = {"min_time": 0.05, "max_time": 1.0} if args.quick else {"min_time": 0.5}
    harness.warn_if_busy()
    # power xy: negative bases to non-integer powers are NaN, as intended
    warnings.filterwarnings("ignore", "invalid value encountered in power", RuntimeWarning)
    rng = np.random.default_rng(0)
    rows = []
    for name in args.only or FUNCTIONS:
        lo, hi = FUNCTIONS[name]
        for dtype in (np.float64, np.float32):
            fn, arity = workload(name)
            args = (rng.uniform(lo, hi, size).astype(dtype),)
            if arity == 2:
                y = rng.uniform(-4, 4, size)
                args += (np.where(rng.random(size) < 1 / 3, np.round(y), y).astype(dtype),)
            peer = harness.tracejit_peer(fn, args, fuse=True)
            peers = {"numpy": (fn, args)}
            notes = {}
            if peer.ok:
                peers["tracejit"] = (peer.fn, args)
            else:
                notes["tracejit"] = peer.note
            tol = 1e-6 if dtype == np.float32 else 1e-13
            rows.append(harness.run_peers(f"{name} {np.dtype(dtype).name}", fn(*args), peers,
                                          notes=notes, rtol=tol, atol=0, timing=timing))
    table = harness.report(f"single ufunc, {size} elements", rows)
    path = harness.save_json("vecmath", table.results(), size=size)
    print(f"wrote {path}")
    slower = [r.workload for r in rows if r.times.get("tracejit")
              and r.times["tracejit"] > r.times["numpy"]]
    if slower:
        print("slower than NumPy: " + ", ".join(slower))
    return table


if __name__ == "__main__":
    main()
