"""Gradient benchmark: tj.value_and_grad of an MLP loss vs the same gradient written by hand.

Workload: 0.5 * mean((mlp(x) - y) ** 2) for a float32 MLP (batch 256, 4 layers of 1024 with
ReLU between them), differentiated with respect to every weight and bias. Peers:
  numpy by hand    forward, then backward by the chain rule, in NumPy
  tracejit grad    tj.value_and_grad(loss) (forward and backward compiled together)
Both results are checked against each other before timing. The tracejit peer is reported as
"not supported yet" when this tree cannot trace the loss (np.mean / matmul missing).

With --steps it also prints the compiled plan step by step: each BLAS call with its operands'
shapes and layouts (C, F or strided: a transpose reaches BLAS as an F-ordered view, not a copy)
and each fused kernel with its ops and the bytes it reads and writes, with its median time.

Usage: python bench/bench_grad.py [--batch N] [--width N] [--layers N] [--quick] [--steps]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

_BENCH = Path(__file__).resolve().parent
for _p in (str(_BENCH.parent), str(_BENCH)):  # the working tree's tracejit, then bench/
    if _p not in sys.path:
        sys.path.insert(0, _p)

import harness  # noqa: E402
import numpy as np  # noqa: E402


def mlp(params, x):
    h = x
    for k, (w, b) in enumerate(params):
        h = h @ w + b
        if k < len(params) - 1:
            h = np.maximum(h, 0)
    return h


def loss(params, x, y):
    return 0.5 * np.mean((mlp(params, x) - y) ** 2)


def numpy_value_and_grad(params, x, y):
    """The gradient a NumPy user writes by hand: keep the activations, then the chain rule."""
    acts, pre, h = [x], [], x
    for k, (w, b) in enumerate(params):
        z = h @ w + b
        pre.append(z)
        h = np.maximum(z, 0) if k < len(params) - 1 else z
        acts.append(h)
    diff = h - y
    value = 0.5 * np.mean(diff ** 2)
    g = diff * (1.0 / diff.size)
    grads = [None] * len(params)
    for k in reversed(range(len(params))):
        w, _ = params[k]
        if k < len(params) - 1:
            g = g * (pre[k] > 0)
        grads[k] = (acts[k].T @ g, g.sum(axis=0))
        if k:
            g = g @ w.T
    return value, grads


def leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in leaves(item)]
    return [tree]


def _describe(a):
    if not isinstance(a, np.ndarray) or a.ndim == 0:
        return "scalar"
    order = "C" if a.flags.c_contiguous else "F" if a.flags.f_contiguous else "strided"
    return f"{a.dtype}{list(a.shape)} {order}"


def _bytes(a):
    """Bytes of memory an array argument spans (a broadcast axis counts once)."""
    if not isinstance(a, np.ndarray):
        return 0
    return int(np.prod([n for n, st in zip(a.shape, a.strides) if st], dtype=np.int64)) \
        * a.itemsize


def plan_steps(traced, args, calls=30):
    """The compiled plan of traced(*args), step by step: (median seconds, what runs, detail),
    timing each kernel and host call of the executable's run() in a copy of its namespace."""
    exe = traced.explain(*args).executable
    ns, seen, times = dict(exe.namespace), {}, {}
    kernel_ops = iter(" ".join(k.ops) for k in exe.kernels)
    written = set(exe.memory.regions.values())  # slice writes stored by their kernels: no call
    host_ops = iter(s.node.op for s in exe.steps if hasattr(s, "node") and s.node not in written)

    def wrap(name, fn):
        def timed(*a, **kw):
            t0 = time.perf_counter()
            out = fn(*a, **kw)
            times.setdefault(name, []).append(time.perf_counter() - t0)
            if name not in seen:
                arrays = [*a, *kw.values()]
                if name.startswith("k"):
                    what = f"kernel {next(kernel_ops)}"
                    detail = f"{sum(_bytes(x) for x in arrays) / 2 ** 20:.2f} MiB moved"
                else:
                    what = next(host_ops)
                    detail = ", ".join(_describe(x) for x in arrays if isinstance(x, np.ndarray))
                seen[name] = (what, detail)
            return out
        return timed

    for name in [n for n in ns if re.fullmatch(r"[kf]\d+", n)]:
        ns[name] = wrap(name, ns[name])
    exec(compile(exe.source, "<tracejit-run timed>", "exec"), ns)
    flat = [leaf for a in args for leaf in leaves(a)]
    for _ in range(calls):
        ns["run"](*flat)
    return [(statistics.median(times[n]), *seen[n]) for n in seen]  # in call order


def print_steps(steps):
    blas = [s for s in steps if s[1] == "matmul"]
    print(f"-- plan: {len(steps)} steps, {sum(s[1].startswith('kernel') for s in steps)} "
          f"kernels; median ms per step")
    for t, what, detail in steps:
        print(f"  {t * 1e3:7.3f}  {what}: {detail}")
    total = sum(s[0] for s in steps)
    print(f"  {total * 1e3:7.3f}  in all; matmul {sum(s[0] for s in blas) * 1e3:.3f}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--quick", action="store_true", help="few repeats")
    p.add_argument("--steps", action="store_true", help="time the compiled plan step by step")
    p.add_argument("--json", default=None, help="output path (default bench/results/grad.json)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    harness.warn_if_busy()
    rng = np.random.default_rng(0)
    n, d, f32 = args.batch, args.width, np.float32
    params = [(rng.standard_normal((d, d), dtype=f32) * f32(d ** -0.5), np.zeros(d, f32))
              for _ in range(args.layers)]
    x = rng.standard_normal((n, d), dtype=f32)
    y = rng.standard_normal((n, d), dtype=f32)
    workload = f"mlp-grad {args.layers}x{d} batch {n} f32"
    print(f"-- {workload}", flush=True)

    expected = numpy_value_and_grad(params, x, y)
    peers = {"numpy by hand": numpy_value_and_grad}
    notes = {}
    ok, why = harness.tracejit_available()
    if ok:
        import tracejit as tj
        try:
            traced = tj.value_and_grad(loss)
            got = traced(params, x, y)
            for a, b in zip(leaves(got), leaves(expected)):
                harness.check_close(workload, a, b, rtol=2e-3, atol=2e-5)
            peers["tracejit grad"] = traced
        except harness.ResultMismatch:
            raise
        except Exception as exc:  # cannot trace this loss on this tree
            notes["tracejit grad"] = "not supported yet: " + harness._one_line(
                f"{type(exc).__name__}: {exc}")
    else:
        notes["tracejit grad"] = why
    timing = {"min_time": 0.2, "max_time": 2.0} if args.quick else {}
    times, stats = {name: None for name in [*peers, *notes]}, {}
    for name, fn in peers.items():
        st = harness.measure_stats(fn, params, x, y, **timing)
        times[name], stats[name] = st.median, st.as_dict()
    row = harness.Row(workload, times, notes, {"timing": stats})
    table = harness.report("gradient of an MLP loss", [row])
    path = harness.save_json(args.json or "grad", [{"workload": row.workload, "times_s": row.times,
                                                     "notes": row.notes, **row.extra}])
    print(f"wrote {path}")
    if args.steps and "tracejit grad" in peers:
        print_steps(plan_steps(peers["tracejit grad"], (params, x, y)))
    return table


if __name__ == "__main__":
    main()
