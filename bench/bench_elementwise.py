"""Elementwise micro-benchmarks: fused vs unfused tracejit vs NumPy, numexpr and Numba.

Workloads (10M elements by default):
  chain          exp(-a*a)*sin(b) + sqrt(abs(c))*0.5 - a/(1+b*b), float64
  chain-f32      the same in float32
  memory-bound   a*b + c*d - e, float64
  chain F, memory-bound F
                 the same on F-ordered 2-d arrays (the Numba reference on their C-ordered
                 transposes)
  overhead       a*b + c on 100-element float64 arrays: per-call cost of a cached tracejit
                 call vs a hand-written njit kernel and NumPy eager

Usage: python bench/bench_elementwise.py [--size N] [--quick] [--keep-going]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_BENCH = Path(__file__).resolve().parent
for _p in (str(_BENCH.parent), str(_BENCH)):  # the working tree's tracejit, then bench/
    if _p not in sys.path:
        sys.path.insert(0, _p)

import harness  # noqa: E402
import numpy as np  # noqa: E402
import reference_numba as ref  # noqa: E402

try:
    import numexpr
except ImportError:  # pragma: no cover - optional peer
    numexpr = None

PEERS = ["numpy", "tracejit fused", "tracejit unfused", "numexpr", "numba ref"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=None,
                   help="elements per array (default 10M, 1M with --quick)")
    p.add_argument("--quick", action="store_true", help="1M elements and few repeats")
    p.add_argument("--keep-going", action="store_true",
                   help="report a peer with a wrong result instead of stopping")
    p.add_argument("--json", default=None,
                   help="output path (default bench/results/elementwise[-quick].json)")
    return p.parse_args(argv)


def _numexpr_peer(expr: str, names: str, consts: dict | None = None):
    def run(*arrays):
        local = dict(zip(names, arrays, strict=True))
        if consts:
            local.update(consts)
        return numexpr.evaluate(expr, local_dict=local)

    return run


def bench_workload(workload, numpy_fn, numba_fn, args, *, expr, names, consts=None,
                   timing, keep_going):
    print(f"-- {workload}: {len(args)} x {args[0].dtype}[{args[0].size:,}]", flush=True)
    expected = numpy_fn(*args)
    peers = {"numpy": (numpy_fn, args)}
    notes: dict[str, str] = {}
    kernels: dict[str, int | None] = {}
    for label, fuse in (("tracejit fused", True), ("tracejit unfused", False)):
        tp = harness.tracejit_peer(numpy_fn, args, fuse=fuse)
        if tp.ok:
            harness.check_close(f"{workload} / {label} (first call)", tp.first_result,
                                expected, **_tol(expected))
            peers[label] = (tp.fn, args)
            kernels[label] = tp.kernels
        else:
            notes[label] = f"tracejit: not supported yet ({tp.reason})"
            print(f"   {label}: {notes[label]}", flush=True)
    if numexpr is not None:
        peers["numexpr"] = (_numexpr_peer(expr, names, consts), args)
    else:
        notes["numexpr"] = "numexpr not installed"
    peers["numba ref"] = (numba_fn, args)
    row = harness.run_peers(workload, expected, peers, notes=notes, keep_going=keep_going,
                            timing=timing, **_tol(expected))
    if kernels:
        row.extra["kernels"] = kernels
        print("   kernels: " + ", ".join(f"{k} {v}" for k, v in kernels.items()), flush=True)
    return row


def _on_transposes(numba_fn):
    """A Numba reference run on the C-ordered transposes of F-ordered arrays (its kernels read
    flat C-contiguous memory), its result transposed back: F-ordered, as NumPy's."""
    def run(*arrays):
        return numba_fn(*(x.T for x in arrays)).T
    return run


def _f_ordered(arrays, n):
    side = int(np.sqrt(n))
    return tuple(np.asfortranarray(x[:side * side].reshape(side, side)) for x in arrays)


def _tol(expected) -> dict[str, float]:
    rtol, atol = ref.tolerance(np.asarray(expected).dtype)
    return {"rtol": rtol, "atol": atol}


def bench_overhead(*, timing, keep_going, n: int = 100):
    """Per-call cost of a cached tracejit call on tiny arrays vs the kernel alone."""
    a, b, c = ref.make_inputs("fma", size=n)
    print(f"-- overhead: a * b + c on 3 x float64[{n}]", flush=True)
    expected = ref.fma_numpy(a, b, c)
    peers = {"numpy": (ref.fma_numpy, (a, b, c))}
    notes = {}
    tp = harness.tracejit_peer(ref.fma_numpy, (a, b, c), fuse=True)
    if tp.ok:
        harness.check_close("overhead / tracejit fused (first call)", tp.first_result,
                            expected, **_tol(expected))
        peers["tracejit fused"] = (tp.fn, (a, b, c))
    else:
        notes["tracejit fused"] = f"tracejit: not supported yet ({tp.reason})"
        print(f"   tracejit fused: {notes['tracejit fused']}", flush=True)
    peers["numba njit kernel"] = (ref.fma_numba, (a, b, c))
    row = harness.run_peers(f"overhead (n={n})", expected, peers, notes=notes,
                            keep_going=keep_going, timing=timing, **_tol(expected))
    t = row.times
    summary = {}
    if t.get("tracejit fused"):
        summary["tracejit_minus_njit_us"] = (t["tracejit fused"] - t["numba njit kernel"]) * 1e6
        summary["tracejit_minus_numpy_us"] = (t["tracejit fused"] - t["numpy"]) * 1e6
    row.extra["overhead"] = summary
    return row


def bench_argument_kinds(*, timing, keep_going, n: int = 100):
    """The cached call with each kind of argument the fast path takes (arrays, Python and NumPy
    scalars) and a pytree (a dict of arrays, the slower general path); the njit kernel's time
    is in bench_overhead's row."""
    a, b, c = ref.make_inputs("fma", size=n)
    cases = {"arrays": (a, b, c), "python float": (a, b, 0.5), "numpy float64": (a, b,
             np.float64(0.5)), "dict of arrays": ({"a": a, "b": b, "c": c},)}
    rows = []
    for kind, args in cases.items():
        fn = ref.fma_numpy if kind != "dict of arrays" else (lambda p: p["a"] * p["b"] + p["c"])
        expected = fn(*args)
        peers = {"numpy": (fn, args)}
        notes = {}
        tp = harness.tracejit_peer(fn, args, fuse=True)
        if tp.ok:
            peers["tracejit fused"] = (tp.fn, args)
        else:
            notes["tracejit fused"] = f"tracejit: not supported yet ({tp.reason})"
        rows.append(harness.run_peers(f"overhead, {kind}", expected, peers, notes=notes,
                                      keep_going=keep_going, timing=timing, **_tol(expected)))
    return rows


def main(argv=None) -> dict:
    args = parse_args(argv)
    n = args.size or (1_000_000 if args.quick else 10_000_000)
    if args.quick:
        timing = {"repeats": 3, "warmup": 1, "max_time": 2.0}
        tiny_timing = {"repeats": 5, "warmup": 2, "sample_time": 2e-3}
    else:
        timing = {"min_time": 0.5, "max_time": 5.0}
        tiny_timing = {"repeats": 15, "warmup": 5, "sample_time": 2e-2}

    harness.warn_if_busy()
    ok, why = harness.tracejit_available()
    if not ok:
        print(f"tracejit: not available ({why}); running the other peers only")
    if numexpr is None:
        print("numexpr not installed")

    rows = []
    kw = {"timing": timing, "keep_going": args.keep_going}
    a, b, c = ref.make_inputs("chain", size=n, dtype=np.float64)
    rows.append(bench_workload("chain", ref.chain_numpy, ref.chain_numba, (a, b, c),
                               expr=ref.CHAIN_EXPR, names="abc", **kw))
    del a, b, c
    a, b, c = ref.make_inputs("chain", size=n, dtype=np.float32)
    f32 = {"half": np.float32(0.5), "one": np.float32(1.0)}
    rows.append(bench_workload("chain-f32", ref.chain_numpy, ref.chain_numba, (a, b, c),
                               expr=ref.CHAIN_EXPR_TYPED, names="abc", consts=f32, **kw))
    del a, b, c
    arrays = ref.make_inputs("memory-bound", size=n, dtype=np.float64)
    rows.append(bench_workload("memory-bound", ref.membound_numpy, ref.membound_numba,
                               arrays, expr=ref.MEMBOUND_EXPR, names="abcde", **kw))
    del arrays
    a, b, c = _f_ordered(ref.make_inputs("chain", size=n, dtype=np.float64), n)
    rows.append(bench_workload("chain F", ref.chain_numpy, _on_transposes(ref.chain_numba),
                               (a, b, c), expr=ref.CHAIN_EXPR, names="abc", **kw))
    del a, b, c
    arrays = _f_ordered(ref.make_inputs("memory-bound", size=n, dtype=np.float64), n)
    rows.append(bench_workload("memory-bound F", ref.membound_numpy,
                               _on_transposes(ref.membound_numba), arrays,
                               expr=ref.MEMBOUND_EXPR, names="abcde", **kw))
    del arrays
    over = bench_overhead(timing=tiny_timing, keep_going=args.keep_going)

    print()
    table = harness.report(f"elementwise, n={n:,}", rows, peers=PEERS, unit="ms")
    print()
    kinds = bench_argument_kinds(timing=tiny_timing, keep_going=args.keep_going)
    otable = harness.report("per-call overhead, a * b + c, n=100", [over, *kinds], unit="us")
    s = over.extra["overhead"]
    if s:
        print(f"tracejit cached call - njit kernel alone: {s['tracejit_minus_njit_us']:+.2f} us;"
              f" tracejit - numpy eager: {s['tracejit_minus_numpy_us']:+.2f} us")

    results = {"elementwise": table.results(), "overhead": otable.results()}
    path = harness.save_json(args.json or ("elementwise-quick" if args.quick else "elementwise"),
                             results, config={"size": n, "quick": args.quick})
    print(f"\nsaved {path}")
    return results


if __name__ == "__main__":
    main()
