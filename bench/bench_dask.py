"""Traced functions on Dask arrays vs Dask's own NumPy path, on arrays generated chunk by chunk.

Workloads (float64): `chain` (`exp(-a*a)*sin(b) + sqrt(abs(c))*0.5 - a/(1+b*b)`, three
inputs), `sumsq` (`np.sum(a * a)`) and a row `softmax` (rows of --cols elements, whole rows per
chunk). Inputs are made one chunk at a time, so nothing the size of a whole array is ever held:
by default (`--inputs tiled`) each chunk draws 64 Ki uniform values from its own seed and
repeats them, one memory pass, so the timings are the workloads' own; `--inputs random`
(`da.random`) draws every value, which costs more than sumsq itself. With `--inputs mesh` each
input is a field evaluated by NumPy code on a mesh of coordinates, `(x[:, None] - c) ** 2 +
(y[None, :] + c) ** 2` on two `da.linspace` (rows of --cols points, whole rows per chunk): Dask's
peer runs it as Dask's NumPy path, tracejit's peer traces it too (`tj.trace(field)`), and the
workload composes with it, so a chunk of the inputs is never made. The elementwise results
(chain, softmax) are consumed by Dask's `.sum()` (both peers pay the same for it), so results
never have to fit in memory.

Peers: `dask` runs the plain function on the Dask arrays (Dask's NumPy path: one NumPy call and
one temporary per op, per chunk); `tracejit` runs the same function traced (one fused kernel per
chunk). Schedulers: `threads` (2 threads) and `distributed` (a `LocalCluster` of 2 worker
processes, one thread each). `inputs` times making the inputs alone (each chunk made, one
value of it kept, by Dask's NumPy path): with opaque makers (tiled, random) the part of every
run that no peer can speed up; with `mesh`, tracejit's peer computes the inputs inside its kernel.

Each (workload, peer, scheduler) runs in a fresh process, so its peak memory is its own: the
RSS high-water mark (VmHWM) of that process for `threads`, and of each worker process for
`distributed` (the larger is shown), reset after the warm-up so compilation is not counted;
"above rest" subtracts the RSS the process holds at rest after the warm-up (its libraries:
Numba and LLVM make tracejit's processes start larger).
Before timing, each run compiles on a few chunks of the timed shapes and checks tracejit's
result against Dask's own path there. Times are the median of --repeats runs (with best and
worst); the peers take turns, one run each per round, so a machine whose load drifts slows
them alike. Peak memory is the largest of the runs.

`--breakdown` shows where the time goes per chunk instead: each peer computed once on the
threaded scheduler without Dask's graph optimisation (one task per step: making a chunk, each
NumPy call or the kernel, each merge of the reduction tree) under Dask's profiler, the task
times summed per step.

Usage: python bench/bench_dask.py [--size N] [--chunk N] [--cols N] [--repeats N]
           [--schedulers threads distributed] [--only chain sumsq softmax] [--quick]
           [--inputs tiled|random|mesh] [--breakdown]
The full size of the issue (2e9 elements per input, 16 GB each; eager NumPy would need five
such arrays for the chain): python bench/bench_dask.py --size 2e9 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

_BENCH = Path(__file__).resolve().parent
for _p in (str(_BENCH.parent), str(_BENCH)):  # the working tree's tracejit, then bench/
    if _p not in sys.path:
        sys.path.insert(0, _p)

import numpy as np  # noqa: E402


def chain(a, b, c):
    return np.exp(-a * a) * np.sin(b) + np.sqrt(np.abs(c)) * 0.5 - a / (1.0 + b * b)


def sumsq(a):
    return np.sum(a * a)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


WORKLOADS = {"chain": (chain, 3), "sumsq": (sumsq, 1), "softmax": (softmax, 1)}
PEERS = ("inputs", "dask", "tracejit")


TILE = 1 << 16  # values drawn per chunk by --inputs tiled


def tiled_chunk(block_info=None, seed=0):
    """A chunk of uniform [0, 1) values: TILE values drawn for this chunk, repeated."""
    info = block_info[None]
    shape = info["chunk-shape"]
    base = np.random.default_rng([seed, *info["chunk-location"]]).random(TILE)
    out = np.empty(int(np.prod(shape)))
    whole = out.size // TILE * TILE
    out[:whole].reshape(-1, TILE)[:] = base
    out[whole:] = base[:out.size - whole]
    return out.reshape(shape)


def field(x, y, c):
    """The squared distance of each mesh point from (c, -c): x a column's coordinates, y a
    row's."""
    return (x[:, None] - c) ** 2 + (y[None, :] + c) ** 2


def make_inputs(workload, size, chunk, cols, seed=0, kind="tiled", traced=False):
    """The workload's inputs, chunk by chunk; with `traced`, mesh fields by a traced function."""
    import dask.array as da

    if kind == "mesh":
        import tracejit as tj

        make = tj.trace(field, fallback="raise") if traced else field
        rows = max(size // cols, 1)
        x = da.linspace(-1.0, 1.0, rows, chunks=max(chunk // cols, 1))
        y = da.linspace(-1.0, 1.0, cols, chunks=cols)
        count = WORKLOADS[workload][1]
        return tuple(make(x, y, 0.125 * (seed + i)) for i in range(count))
    if workload == "softmax":
        rows = max(size // cols, 1)
        shape, chunks = (rows, cols), (max(chunk // cols, 1), cols)
    else:
        shape, chunks = (size,), (chunk,)
    count = WORKLOADS[workload][1]
    if kind == "random":
        rng = da.random.default_rng(seed)
        return tuple(rng.random(shape, chunks=chunks) for _ in range(count))
    chunks = da.core.normalize_chunks(chunks, shape)
    return tuple(da.map_blocks(tiled_chunk, chunks=chunks, dtype=np.float64,
                               meta=np.empty((0,) * len(shape)), seed=(seed, i))
                 for i in range(count))


def first_value(block):
    return block[(slice(0, 1),) * block.ndim]


def lazy_result(workload, peer, arrays):
    import dask.array as da

    if peer == "inputs":  # each chunk made and one value of it kept (fused into one task)
        firsts = [a.map_blocks(first_value, chunks=tuple((1,) * len(c) for c in a.chunks))
                  for a in arrays]
        return da.stack([f.sum() for f in firsts]).sum()
    fn = WORKLOADS[workload][0]
    if peer == "tracejit":
        import tracejit as tj

        fn = tj.trace(fn, fallback="raise")
    out = fn(*arrays)
    return out if out.ndim == 0 else out.sum()


def reset_peak():
    """Start a new RSS high-water mark (Linux: clear_refs 5 resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False  # then the peak includes warm-up and compilation


def _status_bytes(field):
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_bytes():
    """This process's RSS high-water mark since the last reset_peak()."""
    peak = _status_bytes("VmHWM")
    return peak if peak is not None else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def rss_bytes():
    return _status_bytes("VmRSS") or 0


def run_one(workload, peer, scheduler, size, chunk, cols, repeats, kind):
    """One configuration in this (fresh) process: check, warm up, time; peak memory."""
    import dask

    warnings.simplefilter("error")  # a tracejit fallback would not measure tracejit
    client = cluster = None
    if scheduler == "distributed":
        import distributed

        # the dashboard on a free port: were 8787 taken (another cluster), Dask would warn,
        # and warnings are errors here
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=":0")
        client = distributed.Client(cluster)
        compute = client.compute

        def peak():
            return max(client.run(peak_bytes).values())

        def reset():
            return all(client.run(reset_peak).values())

        def rss():
            return max(client.run(rss_bytes).values())
    else:
        dask.config.set(scheduler="threads", num_workers=2)

        def compute(x, sync=True):
            return x.compute()

        peak, reset, rss = peak_bytes, reset_peak, rss_bytes
    try:
        # chunks of the timed shapes (kernels for big arrays differ from those for small ones)
        small_size = min(size, 4 * chunk + size % chunk)
        small = make_inputs(workload, small_size, chunk, cols, 1, kind, peer == "tracejit")
        got = compute(lazy_result(workload, peer, small), sync=True)
        small = make_inputs(workload, small_size, chunk, cols, 1, kind)
        want = compute(lazy_result(workload, "dask" if peer != "inputs" else peer, small),
                       sync=True)
        np.testing.assert_allclose(got, want, rtol=1e-10)
        was_reset, resting = reset(), rss()
        times = []
        for i in range(repeats):
            arrays = make_inputs(workload, size, chunk, cols, 2 + i, kind, peer == "tracejit")
            start = time.perf_counter()
            compute(lazy_result(workload, peer, arrays), sync=True)
            times.append(time.perf_counter() - start)
        return {"seconds": times, "peak_rss": peak(), "resting_rss": resting,
                "peak_after_warmup": was_reset}
    finally:
        if client is not None:
            client.close()
            cluster.close()


def breakdown(workload, size, chunk, cols, kind):
    """Where the time goes per chunk: each peer computed unfused (one Dask task per step) on 2
    threads under Dask's profiler; per step, its tasks' total and median time."""
    import dask
    from dask.diagnostics import Profiler
    from dask.utils import key_split

    warnings.simplefilter("error")
    dask.config.set(scheduler="threads", num_workers=2)
    for peer in PEERS:
        warm = make_inputs(workload, min(size, 4 * chunk + size % chunk), chunk, cols, 1, kind,
                           peer == "tracejit")
        lazy_result(workload, peer, warm).compute()
    print(f"{workload}: {size:.3g} float64 elements per input ({kind}), chunks of {chunk:.3g}, "
          "unfused, 2 threads")
    for peer in PEERS:
        arrays = make_inputs(workload, size, chunk, cols, 2, kind, peer == "tracejit")
        with Profiler() as prof:
            start = time.perf_counter()
            dask.compute(lazy_result(workload, peer, arrays), optimize_graph=False)
            wall = time.perf_counter() - start
        steps = {}
        for task in prof.results:
            steps.setdefault(key_split(task.key), []).append(task.end_time - task.start_time)
        busy = sum(map(sum, steps.values()))
        print(f"{peer}: {wall:.3f} s; of its {2 * wall:.3f} thread-seconds, "
              f"{2 * wall - busy:.3f} outside tasks (scheduling, freeing, idle)")
        for name, times in steps.items():
            print(f"  {name:<30}{len(times):>6} tasks {sum(times):8.3f} s, "
                  f"median {statistics.median(times) * 1e3:7.2f} ms")


def _run_process(workload, peer, scheduler, size, chunk, args):
    """One timed run in a fresh process (its own peak memory); its result, or the error."""
    cmd = [sys.executable, __file__, "--one", workload, peer, scheduler, "--size", str(size),
           "--chunk", str(chunk), "--cols", str(args.cols), "--repeats", "1",
           "--inputs", args.inputs]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=float, default=2e8, help="elements per input array")
    ap.add_argument("--chunk", type=float, default=2 ** 22, help="elements per chunk")
    ap.add_argument("--cols", type=int, default=1024, help="softmax row length")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--schedulers", nargs="+", default=["threads", "distributed"],
                    choices=["threads", "distributed"])
    ap.add_argument("--only", nargs="+", choices=sorted(WORKLOADS), default=sorted(WORKLOADS))
    ap.add_argument("--inputs", choices=["tiled", "random", "mesh"], default="tiled",
                    help="tiled: per chunk, 64 Ki random values repeated (one memory pass); "
                    "random: every value drawn (slower than sumsq itself); mesh: a field on "
                    "a mesh by NumPy code, traced by tracejit's peer and composed")
    ap.add_argument("--quick", action="store_true", help="2e7 elements, one repeat")
    ap.add_argument("--breakdown", action="store_true",
                    help="per-step task times of each peer (unfused, threads) instead")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # workload peer scheduler
    args = ap.parse_args(argv)
    size, chunk = int(args.size), int(args.chunk)
    if args.quick:
        size, args.repeats = int(2e7), 1
    if args.breakdown:
        for workload in args.only:
            breakdown(workload, size, chunk, args.cols, args.inputs)
        return None
    if args.one:
        result = run_one(*args.one, size, chunk, args.cols, args.repeats, args.inputs)
        print(json.dumps(result))
        return result

    import harness

    results = []
    print(f"{size:.3g} float64 elements per input ({args.inputs}), chunks of {chunk:.3g}; "
          f"median of {args.repeats} (best..worst); peak = RSS high-water mark")
    print(f"{'workload':<9}{'scheduler':<13}{'peer':<10}{'seconds':>22}{'peak MiB':>10}"
          f"{'above rest':>12}{'vs dask':>9}")
    for workload in args.only:
        for scheduler in args.schedulers:
            runs = {peer: [] for peer in PEERS}
            for _ in range(args.repeats):  # peers take turns: a load that drifts hits all
                for peer in PEERS:
                    runs[peer].append(_run_process(workload, peer, scheduler, size, chunk,
                                                   args))
            row = {}
            for peer in PEERS:
                done = [r for r in runs[peer] if "seconds" in r]
                if not done:
                    print(f"{workload:<9}{scheduler:<13}{peer:<10} failed: "
                          f"{runs[peer][0]['error']}")
                    continue
                seconds = [r["seconds"][0] for r in done]
                row[peer] = {"seconds": seconds, "peak_rss": max(r["peak_rss"] for r in done),
                             "above_rest": max(r["peak_rss"] - r["resting_rss"] for r in done)}
                med = statistics.median(seconds)
                ratio = ""
                if peer == "tracejit" and "dask" in row:
                    ratio = f"{statistics.median(row['dask']['seconds']) / med:.2f}x"
                spread = f"{med:.2f} ({min(seconds):.2f}..{max(seconds):.2f})"
                print(f"{workload:<9}{scheduler:<13}{peer:<10}{spread:>22}"
                      f"{row[peer]['peak_rss'] / 2**20:>10.0f}"
                      f"{row[peer]['above_rest'] / 2**20:>12.0f}{ratio:>9}", flush=True)
            results.append({"workload": workload, "scheduler": scheduler, "peers": row})
    path = harness.save_json("dask", results, config={"size": size, "chunk": chunk,
                                                       "cols": args.cols,
                                                       "repeats": args.repeats,
                                                       "inputs": args.inputs})
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
