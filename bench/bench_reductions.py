"""Reduction / row-wise / matmul micro-benchmarks: tracejit vs NumPy, numexpr and Numba.

Workloads:
  sumsq       np.sum((a - b) ** 2), 10M float64
  colsum      x.sum(axis=0), float64 (4096, 4096): a reduction over the first axis
  softmax     row-wise softmax over the last axis, float32 (4096, 1024)
  layernorm   row-wise layernorm over the last axis, eps=1e-5, no affine, float32 (8192, 1024)
  mlp         forward of 4 layers h = np.maximum(h @ w + b, 0), batch 256, width 1024, float32

numexpr runs where it applies (sumsq). A tracejit peer that cannot trace a workload yet (falls
back or errors) is reported as "tracejit: not supported yet (<reason>)".

Usage: python bench/bench_reductions.py [--quick] [--only NAME ...] [--keep-going]
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
WORKLOADS = ("sumsq", "colsum", "softmax", "layernorm", "mlp")

# workload -> (rtol, atol) vs NumPy. float32 row reductions may sum in a different order.
TOLERANCE = {
    "sumsq": (1e-9, 0.0),
    "colsum": (1e-9, 1e-9),
    "softmax": (1e-4, 1e-7),
    "layernorm": (1e-4, 1e-4),
    "mlp": (1e-4, 1e-4),
}

# full size / --quick size
SHAPES = {
    "sumsq": (10_000_000, 1_000_000),
    "colsum": ((4096, 4096), (1024, 1024)),
    "softmax": ((4096, 1024), (512, 1024)),
    "layernorm": ((8192, 1024), (1024, 1024)),
    "mlp": ((256, 1024), (64, 1024)),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller inputs and few repeats")
    p.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS),
                   help="run only these workloads")
    p.add_argument("--keep-going", action="store_true",
                   help="report a peer with a wrong result instead of stopping")
    p.add_argument("--json", default=None,
                   help="output path (default bench/results/reductions[-quick].json)")
    return p.parse_args(argv)


def _inputs(workload: str, quick: bool):
    full, small = SHAPES[workload]
    dims = small if quick else full
    if workload == "sumsq":
        return ref.make_inputs("sumsq", size=dims, dtype=np.float64)
    return ref.make_inputs(workload, shape=dims)


def _describe(args) -> str:
    a = args[0]
    return f"{a.dtype}{list(a.shape)}" + (f" + {len(args) - 1} more" if len(args) > 1 else "")


def bench_workload(workload: str, args, *, timing, keep_going) -> harness.Row:
    numpy_fn, numba_fn = ref.PAIRS[workload]
    print(f"-- {workload}: {_describe(args)}", flush=True)
    expected = numpy_fn(*args)
    rtol, atol = TOLERANCE[workload]
    peers = {"numpy": (numpy_fn, args)}
    notes: dict[str, str] = {}
    kernels: dict[str, int | None] = {}
    for label, fuse in (("tracejit fused", True), ("tracejit unfused", False)):
        tp = harness.tracejit_peer(numpy_fn, args, fuse=fuse)
        if tp.ok:
            harness.check_close(f"{workload} / {label} (first call)", tp.first_result,
                                expected, rtol=rtol, atol=atol)
            peers[label] = (tp.fn, args)
            kernels[label] = tp.kernels
        else:
            notes[label] = f"tracejit: not supported yet ({tp.reason})"
            print(f"   {label}: {notes[label]}", flush=True)
    if workload == "sumsq":
        if numexpr is not None:
            peers["numexpr"] = (
                lambda a, b: numexpr.evaluate(ref.SUMSQ_EXPR, local_dict={"a": a, "b": b}),
                args,
            )
        else:
            notes["numexpr"] = "numexpr not installed"
    peers["numba ref"] = (numba_fn, args)
    row = harness.run_peers(workload, expected, peers, notes=notes, rtol=rtol, atol=atol,
                            keep_going=keep_going, timing=timing)
    if kernels:
        row.extra["kernels"] = kernels
        print("   kernels: " + ", ".join(f"{k} {v}" for k, v in kernels.items()), flush=True)
    return row


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.quick:
        timing = {"repeats": 3, "warmup": 1, "max_time": 2.0}
    else:
        timing = {"min_time": 0.5, "max_time": 5.0}
    harness.warn_if_busy()
    ok, why = harness.tracejit_available()
    if not ok:
        print(f"tracejit: not available ({why}); running the other peers only")
    if numexpr is None:
        print("numexpr not installed")

    rows = []
    for workload in WORKLOADS:
        if workload not in args.only:
            continue
        inputs = _inputs(workload, args.quick)
        rows.append(bench_workload(workload, inputs, timing=timing, keep_going=args.keep_going))
        del inputs

    print()
    table = harness.report("reductions" + (" (quick sizes)" if args.quick else ""), rows,
                           peers=PEERS, unit="ms")
    sizes = {w: SHAPES[w][1 if args.quick else 0] for w in args.only}
    path = harness.save_json(args.json or ("reductions-quick" if args.quick else "reductions"),
                             {"reductions": table.results()},
                             config={"quick": args.quick, "sizes": sizes})
    print(f"\nsaved {path}")
    return {"reductions": table.results()}


if __name__ == "__main__":
    main()
