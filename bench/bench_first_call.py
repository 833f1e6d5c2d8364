"""First-call latency: the first call of `chain` (trace + compile) in fresh processes.

Each run is a new Python process calling the traced chain
`exp(-a*a)*sin(b)+sqrt(abs(c))*0.5-a/(1+b*b)` once on 100 float64 elements, fused (1 kernel)
and unfused (`fuse=False`, one kernel per op), in each `compile` mode: "overlap" (the default:
the first call runs eagerly while a thread compiles, the second call waits for it), "sync" (the
first call compiles) and "background" (calls run eagerly until the compiled code is in place);
cold (an empty kernel cache folder), new (the folder filled by an earlier process that ran
another function: the vector-math helpers are on disk, the chain's kernels are not: the usual
state of a machine that has run tracejit before) and warm (the chain's kernels on disk).
`second call` is the call right after the first; `ready` is when compiled code is in place,
counted from the first call. Every result is checked against NumPy in the child.

Usage: python bench/bench_first_call.py [--runs N] [--only overlap sync background] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
started = time.perf_counter()
import numpy as np
import tracejit as tj
imported = time.perf_counter()

@tj.trace(fuse={fuse}, compile={mode!r}, fallback="raise")
def chain(a, b, c):
    return np.exp(-a * a) * np.sin(b) + np.sqrt(np.abs(c)) * 0.5 - a / (1 + b * b)

if {other}:  # another function calling the same vector math, run in its place
    chain = tj.trace(lambda a, b, c: np.sin(a) * np.exp(b) - c, fuse={fuse}, compile={mode!r})

a, b, c = (np.linspace(-2, 2, 100) + k for k in range(3))
t = time.perf_counter()
got = chain(a, b, c)
first = time.perf_counter() - t
t2 = time.perf_counter()
again = chain(a, b, c)
second = time.perf_counter() - t2
chain.explain(a, b, c)  # waits for a background compile
ready = time.perf_counter() - t
want = chain.eager(a, b, c)
for r in (got, again):
    assert r.dtype == want.dtype and np.allclose(r, want, rtol=1e-12, atol=1e-13)
print(json.dumps(dict(import_s=imported - started, first_s=first, second_s=second,
                      ready_s=ready, kernels_compiled=chain.cache_info().kernels_compiled)))
"""


def run_child(fuse: bool, mode: str, cache: str, other: bool = False) -> dict:
    env = dict(os.environ, TRACEJIT_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
    env.pop("TRACEJIT_COMPILE", None)
    done = subprocess.run([sys.executable, "-c", CHILD.format(fuse=fuse, mode=mode, other=other)],
                          env=env, text=True, capture_output=True, timeout=600)
    if done.returncode:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.3f} ({min(values):.3f}-{max(values):.3f})"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="fresh processes per row (default 3)")
    modes = ["overlap", "sync", "background"]
    p.add_argument("--only", nargs="+", choices=modes, default=modes)
    p.add_argument("--json", default=str(ROOT / "bench" / "results" / "first_call.json"))
    args = p.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; seconds, "
          f"median (min-max) of {args.runs} fresh processes")
    print(f"{'':28s} {'first call':>22s} {'second call':>22s} {'compiled code ready':>24s} "
          f"{'import':>8s}")
    rows = {}
    for fuse in (True, False):
        for mode in args.only:
            for state in ("cold", "new", "warm"):
                results = []
                for _ in range(args.runs):
                    with tempfile.TemporaryDirectory() as cache:
                        if state != "cold":  # code on disk from an earlier process
                            run_child(fuse, "sync", cache, other=state == "new")
                        results.append(run_child(fuse, mode, cache))
                name = f"{'fused' if fuse else 'unfused'} {mode} {state}"
                rows[name] = results
                print(f"{name:28s} {spread([r['first_s'] for r in results]):>22s} "
                      f"{spread([r['second_s'] for r in results]):>22s} "
                      f"{spread([r['ready_s'] for r in results]):>24s} "
                      f"{statistics.median(r['import_s'] for r in results):8.2f}", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
