"""Memory benchmark: peak memory and allocations of one steady-state call, tracejit vs NumPy.

Workloads on float64 arrays (1M elements by default): `chain`, a 10-op elementwise chain that
reassigns one variable (eager NumPy frees each temporary at the next line), and `tree`, the
expression exp(-a*a)*sin(b) + sqrt(abs(a))*0.5 - a/(1+b*b) (eager NumPy holds several
temporaries at once). NumPy reports
its data allocations to tracemalloc, so for each peer, after warm-up calls:
  peak     the highest traced memory during one call, above what was held before it
  allocs   NumPy data blocks the call allocated that are still held by its result
  ratio    peak / output size (1.0 = the call allocated nothing but its result)
tracejit fused runs the chain as one kernel; tracejit unfused runs one kernel per op, so its
numbers show what memory planning alone saves (intermediates in the arena or in the output).
The arena a cache entry keeps between calls is reported separately: it is allocated once.
Times (median per call) are printed alongside for context.

Usage: python bench/bench_memory.py [--size N] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc
from pathlib import Path

_BENCH = Path(__file__).resolve().parent
for _p in (str(_BENCH.parent), str(_BENCH)):  # the working tree's tracejit, then bench/
    if _p not in sys.path:
        sys.path.insert(0, _p)

import harness  # noqa: E402
import numpy as np  # noqa: E402


def ten_op_chain(a, b):
    c = a * b
    c = c + 1.0
    c = np.sin(c)
    c = c * a
    c = c - b
    c = np.abs(c)
    c = c + 2.0
    c = np.sqrt(c)
    c = c * 0.5
    return c - a


def tree(a, b):
    return np.exp(-a * a) * np.sin(b) + np.sqrt(np.abs(a)) * 0.5 - a / (1 + b * b)


WORKLOADS = {"chain": ten_op_chain, "tree": tree}


def steady_state_memory(fn, args, warmup=2):
    """(peak bytes above the baseline, allocations held by the result) for one call."""
    for _ in range(warmup):
        fn(*args)
    numpy_data = tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces([numpy_data])
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = fn(*args)
        _, peak = tracemalloc.get_traced_memory()
        after = tracemalloc.take_snapshot().filter_traces([numpy_data])
    finally:
        tracemalloc.stop()
    held = [d for d in after.compare_to(before, "traceback") if d.count_diff > 0]
    del result
    return peak - base, sum(d.count_diff for d in held)


def bench_workload(workload, func, a, b, timing):
    expected = func(a, b)
    out_bytes = expected.nbytes
    peers = {"numpy": func}
    notes, plans = {}, {}
    for label, fuse in (("tracejit fused", True), ("tracejit unfused", False)):
        tp = harness.tracejit_peer(func, (a, b), fuse=fuse)
        if not tp.ok:
            notes[label] = f"tracejit: not supported yet ({tp.reason})"
            continue
        harness.check_close(f"{workload} / {label}", tp.first_result, expected, rtol=1e-12,
                            atol=1e-13)
        peers[label] = tp.fn
        plans[label] = tp.fn.explain(a, b).memory

    print(f"-- {workload}: 2 x float64[{a.size:,}] -> output {out_bytes / 2**20:.2f} MiB")
    print(f"{'peer':<18} {'peak MiB':>9} {'peak/output':>12} {'allocs':>7} {'arena MiB':>10}"
          f" {'naive MiB':>10} {'planned MiB':>12}")
    results = []
    for label, fn in peers.items():
        peak, allocs = steady_state_memory(fn, (a, b))
        plan = plans.get(label)
        row = {"workload": workload, "peer": label, "peak_bytes": peak,
               "peak_over_output": peak / out_bytes, "allocations": allocs,
               "output_bytes": out_bytes}
        cells = ["-", "-", "-"]
        if plan is not None:
            row.update(arena_bytes=plan.arena_bytes, naive_bytes=plan.naive_bytes,
                       planned_bytes=plan.planned_bytes, buffers=plan.buffers)
            cells = [f"{x / 2**20:.2f}" for x in
                     (plan.arena_bytes, plan.naive_bytes, plan.planned_bytes)]
        print(f"{label:<18} {peak / 2**20:>9.2f} {peak / out_bytes:>11.2f}x {allocs:>7}"
              f" {cells[0]:>10} {cells[1]:>10} {cells[2]:>12}")
        results.append(row)
    for label, msg in notes.items():
        print(f"   {label}: {msg}")
    if "tracejit unfused" in plans:
        print(f"tracejit unfused plan:\n{plans['tracejit unfused']}")
    print()
    row = harness.run_peers(workload, expected, {k: (f, (a, b)) for k, f in peers.items()},
                            notes=notes, rtol=1e-12, atol=1e-13, timing=timing)
    return results, row


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=None, help="elements (default 1M, 200k --quick)")
    p.add_argument("--quick", action="store_true", help="smaller arrays, few timing repeats")
    p.add_argument("--json", default=None, help="output path (default bench/results/memory.json)")
    args = p.parse_args(argv)
    n = args.size or (200_000 if args.quick else 1_000_000)
    timing = {"repeats": 3, "warmup": 1} if args.quick else {"min_time": 0.5, "max_time": 5.0}

    rng = np.random.default_rng(0)
    a, b = rng.random(n), rng.random(n) + 0.5
    results, rows = [], []
    for workload, func in WORKLOADS.items():
        res, row = bench_workload(workload, func, a, b, timing)
        results += res
        rows.append(row)
    print()
    table = harness.report(f"time per call, n={n:,}", rows, unit="ms")
    path = harness.save_json(args.json or "memory", {"memory": results, "time": table.results()},
                             config={"size": n, "quick": args.quick})
    print(f"\nsaved {path}")
    return {"memory": results}


if __name__ == "__main__":
    main()
