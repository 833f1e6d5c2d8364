"""tracejit side by side with NumPy, numexpr, hand-written Numba, jax.jit and torch.compile.

One run measures every row of the comparison in bench/README.md at its full size:
  chain          exp(-a*a)*sin(b) + sqrt(abs(c))*0.5 - a/(1+b*b), 10M float64
  black-scholes  call and put prices, 5M float64 (exp/log/sqrt, polynomial CND, np.where)
  sumsq          np.sum((a - b) ** 2), 10M float64, also as a share of STREAM bandwidth
  softmax        row softmax, float32 (4096, 1024)
  layernorm      row layernorm (eps 1e-5, no affine), float32 (8192, 1024)
  mlp            4 layers of h = max(h @ w + b, 0), batch 256, width 1024, float32 (BLAS)
  mlp-grad       value and gradient of 0.5 * mean((mlp(x) - y) ** 2) w.r.t. every parameter
  cached call    the chain on 100 float64 elements (microseconds per call)
  first call     the chain's first and second call in a fresh process (tracejit in its default
                 compile mode, "overlap": the first call runs NumPy while the kernels compile,
                 the second waits for them): tracejit with an
                 empty and with a filled TRACEJIT_CACHE_DIR, fused and unfused, and the peers'
  einsum         np.einsum's common forms in a traced function against NumPy's, float64

Every peer's result is checked against NumPy's (dtype, shape, values) before it is timed; a
peer that is not installed, fails or disagrees is listed with its reason. Steady-state times are
medians over samples pooled from several interleaved rounds (so load from other processes
falls on every peer alike), with the interquartile range; each peer's first call in this
process (its compile, with tracejit's and torch's disk caches emptied for the run) is
reported apart. jax.jit and torch.compile run on their own arrays
(made once from the NumPy inputs, outside the timing; jax's results are waited for).

Usage: python bench/bench_peers.py [--quick] [--only ROW ...] [--peers PEER ...] [--rounds N]
Install the peers with `pip install -e ".[peers]"` (see bench/README.md: torch's CPU build
first). Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, as a user's NumPy runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BENCH = Path(__file__).resolve().parent
for _p in (str(_BENCH.parent), str(_BENCH)):  # the working tree's tracejit, then bench/
    if _p not in sys.path:
        sys.path.insert(0, _p)
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no probing for accelerators

import bench_grad  # noqa: E402
import harness  # noqa: E402
import numpy as np  # noqa: E402
import reference_numba as ref  # noqa: E402

PEERS = ["numpy", "tracejit fused", "tracejit unfused", "numexpr", "numba", "jax.jit",
         "torch.compile"]
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# --------------------------------------------------------------------------- jax and torch


def _workloads(xp, rowmax, rowsum, relu) -> dict[str, Callable[..., Any]]:
    """The workloads written once for an array module `xp` (jax.numpy or torch), whose reductions
    over the last axis keeping it are `rowmax` and `rowsum`, and the loss of the MLP's gradient."""

    def chain(a, b, c):
        return xp.exp(-a * a) * xp.sin(b) + xp.sqrt(xp.abs(c)) * 0.5 - a / (1.0 + b * b)

    def cnd(d):
        a1, a2, a3, a4, a5 = ref._CND_A
        k = 1.0 / (1.0 + 0.2316419 * xp.abs(d))
        ret = ref._RSQRT2PI * xp.exp(-0.5 * d * d) * (
            k * (a1 + k * (a2 + k * (a3 + k * (a4 + k * a5)))))
        return xp.where(d > 0, 1.0 - ret, ret)

    def black_scholes(price, strike, years):
        r, v = ref.BS_RATE, ref.BS_VOLATILITY
        sqrt_t = xp.sqrt(years)
        d1 = (xp.log(price / strike) + (r + 0.5 * v * v) * years) / (v * sqrt_t)
        d2 = d1 - v * sqrt_t
        cnd1, cnd2 = cnd(d1), cnd(d2)
        discount = xp.exp(-r * years)
        return (price * cnd1 - strike * discount * cnd2,
                strike * discount * (1.0 - cnd2) - price * (1.0 - cnd1))

    def softmax(x):
        e = xp.exp(x - rowmax(x))
        return e / rowsum(e)

    def layernorm(x):
        mu = rowsum(x) / x.shape[-1]
        var = rowsum((x - mu) ** 2) / x.shape[-1]
        return (x - mu) / xp.sqrt(var + 1e-5)

    def mlp(x, *params):
        h = x
        for k in range(0, len(params), 2):
            h = relu(h @ params[k] + params[k + 1])
        return h

    def loss(params, x, y):
        h = x
        for k, (w, b) in enumerate(params):
            h = h @ w + b
            h = relu(h) if k < len(params) - 1 else h
        return 0.5 * xp.mean((h - y) ** 2)

    return {"chain": chain, "black-scholes": black_scholes, "softmax": softmax,
            "layernorm": layernorm, "mlp": mlp, "loss": loss,
            "sumsq": lambda a, b: xp.sum((a - b) ** 2)}


def _jax_functions() -> dict[str, Callable[..., Any]]:
    """The workloads written for jax.numpy, each under jax.jit."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    fns = _workloads(jnp, lambda x: x.max(axis=-1, keepdims=True),
                     lambda x: x.sum(axis=-1, keepdims=True), lambda h: jnp.maximum(h, 0))
    fns["mlp-grad"] = jax.value_and_grad(fns.pop("loss"))
    return {name: jax.jit(fn) for name, fn in fns.items()}


def _torch_functions() -> dict[str, Callable[..., Any]]:
    """The workloads written for torch, each under torch.compile."""
    import torch

    fns = _workloads(torch, lambda x: x.amax(dim=-1, keepdim=True),
                     lambda x: x.sum(dim=-1, keepdim=True), torch.relu)
    grad_and_value = torch.func.grad_and_value(fns.pop("loss"))

    def value_and_grad(params, x, y):
        grads, value = grad_and_value(params, x, y)
        return value, grads

    fns["mlp-grad"] = value_and_grad
    return {name: torch.compile(fn) for name, fn in fns.items()}


def _tree_map(fn, tree):
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tree_map(fn, t) for t in tree)
    return fn(tree)


def _leaves(tree) -> list:
    if isinstance(tree, (list, tuple)):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [tree]


def _check(name: str, got, expected, rtol: float, atol: float) -> None:
    """Every leaf of ``got`` equals NumPy's (dtype, shape, values)."""
    got, expected = _leaves(got), _leaves(expected)
    if len(got) != len(expected):
        raise harness.ResultMismatch(f"{name}: {len(got)} results, NumPy gives {len(expected)}")
    for g, e in zip(got, expected, strict=True):
        g, e = np.asarray(g), np.asarray(e)
        if g.shape != e.shape:
            raise harness.ResultMismatch(f"{name}: shape {g.shape}, NumPy's is {e.shape}")
        harness.check_close(name, g, e, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- workloads


@dataclass
class Workload:
    name: str
    inputs: Callable[[bool], tuple]  # quick -> NumPy arguments
    numpy: Callable[..., Any]
    numba: Callable[..., Any] | None
    numexpr: Callable[..., Any] | None
    tol: tuple[float, float]
    target: str  # the target, in words
    unit: str = "ms"
    timing: dict = field(default_factory=dict)


def _numexpr(expr: str, names: str):
    try:
        import numexpr
    except ImportError:
        return None
    return lambda *arrays: numexpr.evaluate(expr, local_dict=dict(zip(names, arrays)))


def _numexpr_black_scholes():
    """Black-Scholes as numexpr steps, each a whole-array expression (numexpr has no erf)."""
    try:
        import numexpr
    except ImportError:
        return None
    r, v = ref.BS_RATE, ref.BS_VOLATILITY
    a1, a2, a3, a4, a5 = ref._CND_A

    def cnd(d):
        k = f"(1.0 / (1.0 + 0.2316419 * abs({d})))"
        ret = (f"{ref._RSQRT2PI} * exp(-0.5 * {d} * {d}) * ({k} * ({a1} + {k} * ({a2} + {k} * "
               f"({a3} + {k} * ({a4} + {k} * {a5})))))")
        return f"where({d} > 0, 1.0 - {ret}, {ret})"

    steps = [
        ("sqrt_t", "sqrt(years)"),
        ("d1", f"(log(price / strike) + ({r} + 0.5 * {v} * {v}) * years) / ({v} * sqrt_t)"),
        ("d2", f"d1 - {v} * sqrt_t"),
        ("cnd1", cnd("d1")),
        ("cnd2", cnd("d2")),
        ("discount", f"exp(-{r} * years)"),
        ("call", "price * cnd1 - strike * discount * cnd2"),
        ("put", "strike * discount * (1.0 - cnd2) - price * (1.0 - cnd1)"),
    ]

    def run(price, strike, years):
        values = {"price": price, "strike": strike, "years": years}
        for name, expr in steps:
            values[name] = numexpr.evaluate(expr, local_dict=values)
        return values["call"], values["put"]

    return run


def _mlp_grad_inputs(quick: bool):
    rng = np.random.default_rng(0)
    n, d, f32 = (64, 256, np.float32) if quick else (256, 1024, np.float32)
    params = [(rng.standard_normal((d, d), dtype=f32) * f32(d ** -0.5),
               rng.standard_normal(d, dtype=f32) * f32(0.1)) for _ in range(4)]
    return (params, rng.standard_normal((n, d), dtype=f32), rng.standard_normal((n, d), dtype=f32))


def _mlp_grad_numpy(params, x, y):
    return bench_grad.numpy_value_and_grad(params, x, y)


WORKLOADS = {
    w.name: w for w in [
        Workload("chain", lambda q: ref.make_inputs("chain", size=1_000_000 if q else 10_000_000),
                 ref.chain_numpy, ref.chain_numba, _numexpr(ref.CHAIN_EXPR, "abc"),
                 ref.tolerance(np.float64), ">= 5.5x"),
        Workload("black-scholes", lambda q: ref.make_inputs(
                     "black-scholes", size=500_000 if q else 5_000_000),
                 ref.black_scholes_numpy, ref.black_scholes_numba, _numexpr_black_scholes(),
                 (1e-9, 1e-9), ">= 6x"),
        Workload("sumsq", lambda q: ref.make_inputs("sumsq", size=1_000_000 if q else 10_000_000),
                 ref.sumsq_numpy, ref.sumsq_numba, _numexpr(ref.SUMSQ_EXPR, "ab"),
                 (1e-9, 0.0), ">= 4.4x and >= 95% of STREAM"),
        Workload("softmax", lambda q: ref.make_inputs(
                     "softmax", shape=(512, 1024) if q else (4096, 1024)),
                 ref.softmax_numpy, ref.softmax_numba, None, (1e-4, 1e-7), ">= 3.2x"),
        Workload("layernorm", lambda q: ref.make_inputs(
                     "layernorm", shape=(1024, 1024) if q else (8192, 1024)),
                 ref.layernorm_numpy, ref.layernorm_numba, None, (1e-4, 1e-4), ">= 7x"),
        Workload("mlp", lambda q: ref.make_inputs("mlp", shape=(64, 256) if q else (256, 1024)),
                 ref.mlp_numpy, ref.mlp_numba, None, (1e-4, 1e-4), "ahead of jax and torch"),
        Workload("mlp-grad", _mlp_grad_inputs, _mlp_grad_numpy, None, None, (2e-3, 2e-5),
                 "ahead of jax and torch"),
        Workload("cached call", lambda q: ref.make_inputs("chain", size=100), ref.chain_numpy,
                 ref.chain_numba_serial, _numexpr(ref.CHAIN_EXPR, "abc"), ref.tolerance(np.float64),
                 "<= 1.6 us", unit="us",
                 timing={"repeats": 15, "sample_time": 2e-2, "min_time": 0.1}),
    ]
}
JAX_TORCH_NAME = {"cached call": "chain"}


@dataclass
class RowResult:
    workload: str
    unit: str
    target: str
    timings: dict[str, harness.Timing] = field(default_factory=dict)
    first_call_s: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, harness.Timing] = field(default_factory=dict)  # NumPy in a peer's process

    def speedup(self, peer: str, stat: str = "median") -> float | None:
        t, base = self.timings.get(peer), self.baselines.get(peer, self.timings.get("numpy"))
        return getattr(base, stat) / getattr(t, stat) if t and base else None


def _timed_first(fn, args):
    t0 = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t0


def _peer_calls(w: Workload, args, peers: list[str], frameworks: dict[str, dict | str]):
    """name -> (fn, args), with first-call times and the reasons a peer is missing."""
    calls, first, notes = {}, {}, {}
    if "numpy" in peers:
        calls["numpy"] = (w.numpy, args)
    for label, fuse in (("tracejit fused", True), ("tracejit unfused", False)):
        if label not in peers:
            continue
        if w.name == "mlp-grad":  # tj.value_and_grad always fuses
            if fuse:
                import tracejit as tj

                calls[label] = (tj.value_and_grad(bench_grad.loss), args)
            continue
        t0 = time.perf_counter()
        tp = harness.tracejit_peer(w.numpy, args, fuse=fuse)
        if tp.ok:
            first[label] = time.perf_counter() - t0
            calls[label] = (tp.fn, args)
        else:
            notes[label] = f"not supported yet ({tp.reason})"
    if "numexpr" in peers and w.numexpr is not None:
        calls["numexpr"] = (w.numexpr, args)
    elif "numexpr" in peers and w.name in ("chain", "black-scholes", "sumsq", "cached call"):
        notes["numexpr"] = "not installed"
    if "numba" in peers and w.numba is not None:
        calls["numba"] = (w.numba, args)
    for label, kind in (("jax.jit", "jax"), ("torch.compile", "torch")):
        if label not in peers:
            continue
        fns = frameworks.get(kind)
        if isinstance(fns, str):
            notes[label] = fns
            continue
        name = JAX_TORCH_NAME.get(w.name, w.name)
        if kind == "jax":
            import jax

            fn = fns[name]
            native = jax.device_put(args)
            calls[label] = (lambda *a, fn=fn: jax.block_until_ready(fn(*a)), native)
        else:
            import torch

            native = _tree_map(torch.from_numpy, args)
            calls[label] = (fns[name], native)
    return calls, first, notes


def run_workload(w: Workload, quick: bool, peers: list[str], frameworks, rounds: int,
                 keep_going: bool) -> RowResult:
    args = w.inputs(quick)
    print(f"-- {w.name}", flush=True)
    row = RowResult(w.name, w.unit, w.target)
    expected = w.numpy(*args)
    calls, row.first_call_s, row.notes = _peer_calls(w, args, peers, frameworks)
    checked = {}
    for name, (fn, fn_args) in calls.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result, seconds = _timed_first(fn, fn_args)
            row.first_call_s.setdefault(name, seconds)
            _check(f"{w.name} / {name}", result, expected, *w.tol)
            checked[name] = (fn, fn_args)
        except harness.ResultMismatch as exc:
            if not keep_going:
                raise
            row.notes[name] = "WRONG RESULT: " + harness._one_line(str(exc), 200)
        except Exception as exc:  # a peer that cannot run this workload
            row.notes[name] = "failed: " + harness._one_line(f"{type(exc).__name__}: {exc}", 200)
    for name, why in row.notes.items():
        print(f"   {name}: {why}", flush=True)
    timing = w.timing or ({"repeats": 3, "max_time": 1.0} if quick else
                          {"min_time": 0.3, "max_time": 3.0})
    row.timings = harness.measure_interleaved(checked, rounds=rounds, **timing)
    if w.name == "sumsq" and "tracejit fused" in checked:
        row.extra["stream"] = stream_bandwidth(args[0].size)
    return row


def stream_bandwidth(n: int) -> dict[str, float]:
    """STREAM copy and triad on n float64 elements with the hand-written Numba kernels, in GB/s
    (bytes as STREAM counts them: no write-allocate traffic)."""
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    ref.stream_copy(b, a)
    ref.stream_triad(a, b, c, 3.0)
    copy = harness.measure(ref.stream_copy, b, a, min_time=0.3)
    triad = harness.measure(ref.stream_triad, a, b, c, 3.0, min_time=0.3)
    return {"copy_GBps": 16 * n / copy / 1e9, "triad_GBps": 24 * n / triad / 1e9}


# --------------------------------------------------------------------------- einsum

# subscripts -> operand shapes (float64): the common forms, at sizes where NumPy takes ms
EINSUMS = {
    "bij,bj->bi": ((512, 256, 256), (512, 256)),
    "ij,jk->ik": ((512, 512), (512, 512)),
    "bij,bjk->bik": ((64, 128, 128), (64, 128, 128)),
    "ij,ij->i": ((4096, 1024), (4096, 1024)),
    "i,i->": ((1_000_000,), (1_000_000,)),
    "ij,j->i": ((4096, 1024), (1024,)),
    "ij,i->j": ((4096, 1024), (4096,)),
    "i,j->ij": ((2048,), (2048,)),
    "ij->ji": ((2048, 2048),),
}


def bench_einsum(quick: bool, rounds: int) -> list[RowResult]:
    """np.einsum in a traced function against NumPy's own, per subscript form."""
    import tracejit as tj

    rng = np.random.default_rng(0)
    rows = []
    for subscripts, shapes in EINSUMS.items():
        args = tuple(rng.standard_normal(tuple(max(1, d // 4) if quick else d for d in shape))
                     for shape in shapes)
        fn = (lambda s: lambda *ops: np.einsum(s, *ops))(subscripts)
        traced = tj.trace(fn, fallback="raise")
        row = RowResult(f"einsum {subscripts}", "ms", ">= 1x")
        row.first_call_s["tracejit fused"] = _timed_first(traced, args)[1]
        _check(row.workload, traced(*args), fn(*args), 1e-10, 1e-10)
        row.timings = harness.measure_interleaved(
            {"numpy": (fn, args), "tracejit fused": (traced, args)}, rounds=rounds,
            **({"repeats": 3, "max_time": 1.0} if quick else {"min_time": 0.2, "max_time": 2.0}))
        rows.append(row)
        print(f"-- {row.workload}: {row.speedup('tracejit fused'):.2f}x", flush=True)
    return rows


# --------------------------------------------------------------------------- first calls

FIRST_CALL_PEERS = ("tracejit fused", "tracejit unfused", "numba", "jax.jit", "torch.compile")


def first_call_child(peer: str, n: int) -> None:
    """In a fresh process: import the peer, make its inputs, time its first call of the chain
    (trace + compile + one run) and the second; print them as JSON."""
    t0 = time.perf_counter()
    args = ref.make_inputs("chain", size=n)
    if peer.startswith("tracejit"):
        import tracejit as tj

        # the default mode, named: importing harness made "sync" this process's default
        fn = tj.trace(ref.chain_numpy, fuse=peer == "tracejit fused", fallback="raise",
                      compile="overlap")
    elif peer == "numba":
        fn = ref.chain_numba
    elif peer == "jax.jit":
        import jax

        fn = _jax_functions()["chain"]
        args = jax.device_put(args)
        jax.block_until_ready(args)
        fn = (lambda f: lambda *a: jax.block_until_ready(f(*a)))(fn)
    else:
        import torch

        fn, args = _torch_functions()["chain"], _tree_map(torch.from_numpy, args)
    imported = time.perf_counter() - t0
    _, first = _timed_first(fn, args)
    _, second = _timed_first(fn, args)
    print(json.dumps({"import_s": imported, "first_s": first, "second_s": second}))


def first_calls(peers: list[str], n: int) -> dict[str, dict[str, Any]]:
    """Each peer's first call in fresh processes: cold (empty compile caches) then warm (the
    caches the cold process filled), where the peer keeps a disk cache."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        for peer in FIRST_CALL_PEERS:
            if peer not in peers:
                continue
            env = dict(os.environ)
            warm_too = peer.startswith("tracejit") or peer == "torch.compile"
            cache = str(Path(tmp) / peer.replace(" ", "-"))
            env["TRACEJIT_CACHE_DIR"] = cache
            env["TORCHINDUCTOR_CACHE_DIR"] = cache  # torch's FX graph and kernel caches
            for state in ("cold", "warm") if warm_too else ("cold",):
                proc = subprocess.run(
                    [sys.executable, __file__, "--first-call", peer, "--first-call-size", str(n)],
                    env=env, capture_output=True, text=True, timeout=600)
                label = f"{peer}, {state}"
                if proc.returncode:
                    out[label] = {"error": harness._one_line(proc.stderr.strip()[-400:], 300)}
                else:
                    out[label] = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"   first call {label}: {out[label]}", flush=True)
    return out


# --------------------------------------------------------------------------- report


def _fmt(seconds: float, unit: str) -> str:
    v = seconds * {"ms": 1e3, "us": 1e6}[unit]
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def target_met(row: RowResult) -> bool | None:
    s = row.speedup("tracejit fused")
    t = row.timings.get("tracejit fused")
    if t is None:
        return None
    if row.workload == "cached call":
        return t.median <= 1.6e-6
    if row.workload.startswith("mlp"):
        rivals = [row.speedup(p) for p in ("jax.jit", "torch.compile") if p in row.timings]
        return s >= 1.0 and all(s > r for r in rivals)
    need = float(row.target.split("x")[0].lstrip(">= "))
    met = s >= need
    if row.workload == "sumsq" and "stream" in row.extra:
        met = met and row.extra["stream"]["pct_tracejit"] >= 95
    return met


def summary(rows: list[RowResult], peers: list[str], stat: str) -> str:
    """A markdown table: NumPy's time and each peer's speedup over it (absolute times for
    microsecond rows), from each peer's `stat` ("median" or "best") sample."""
    lines = ["| workload | " + " | ".join(peers) + " | target | met |",
             "|---" * (len(peers) + 3) + "|"]
    for r in rows:
        cells = []
        for p in peers:
            t = r.timings.get(p)
            if t is None:
                cells.append("fails" if p in r.notes else "-")
            elif p == "numpy" or r.unit != "ms":
                cells.append(f"{_fmt(getattr(t, stat), r.unit)} {r.unit}")
            else:
                cells.append(f"{r.speedup(p, stat):.2f}x")
        met = target_met(r) if stat == "median" else None
        lines.append(f"| {r.workload} | " + " | ".join(cells) + f" | {r.target} | "
                     + {True: "yes", False: "**no**", None: "-"}[met] + " |")
    return "\n".join(lines)


def render(rows: list[RowResult], firsts: dict, env: dict, quick: bool) -> str:
    peers = [p for p in PEERS if any(p in r.timings or p in r.notes for r in rows)]
    out = ["Medians:", summary(rows, peers, "median"), "",
           "Fastest samples (the least disturbed by other processes):",
           summary(rows, peers, "best"), "",
           "Median [interquartile range] per call, and the first call in this process "
           "(compile included):"]
    for r in rows:
        out.append(f"  {r.workload}:")
        for p in peers:
            t = r.timings.get(p)
            if t is not None:
                q1, q3 = harness.quartiles(t.samples)
                first = r.first_call_s.get(p)
                out.append(f"    {p:<17} {_fmt(t.median, r.unit):>8} {r.unit} "
                           f"[{_fmt(q1, r.unit)}-{_fmt(q3, r.unit)}], min {_fmt(t.best, r.unit)},"
                           f" {t.repeats} samples; first call "
                           + (f"{first:.3f} s" if first is not None else "-")
                           + (f"; NumPy in its process {_fmt(r.baselines[p].median, r.unit)}"
                              if p in r.baselines else ""))
            elif p in r.notes:
                out.append(f"    {p:<17} {r.notes[p]}")
        if "stream" in r.extra:
            s = r.extra["stream"]
            out.append(f"    STREAM copy {s['copy_GBps']:.1f} GB/s, triad {s['triad_GBps']:.1f}"
                       f" GB/s; sumsq reads 16 B/element: tracejit {s['tracejit_GBps']:.1f} GB/s"
                       f" = {s['pct_tracejit']:.0f}% of the better of the two")
    if firsts:
        out.append("First call of the chain (100 float64) in a fresh process, after imports:")
        for label, r in firsts.items():
            out.append(f"    {label:<26} " + (
                f"first {r['first_s']:.3f} s, second {r['second_s']:.3f} s, "
                f"imports + inputs {r['import_s']:.2f} s" if "error" not in r else r["error"]))
    out.append("BLAS settings: " + ", ".join(f"{k}={env.get(k)}" for k in BLAS_ENV)
               + f"; quick={quick}")
    return "\n".join(out)


# Each runs in a process of its own with NumPy timed beside it, its speedup taken over that
# NumPy: in one process, after torch and jax had run, tracejit's parallel Numba kernels ran
# 3-10x slower (np.einsum forms measured both ways; their thread pools compete with Numba's).
APART = ("jax.jit", "torch.compile")


def run_apart(peer: str, rows: list[RowResult], args) -> None:
    """Time `peer` on the rows' workloads in a fresh process beside NumPy; merge into rows."""
    print(f"-- {peer}, in a process of its own", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, __file__, "--in-process", "--peers", "numpy", peer, "--only",
               *[r.workload for r in rows], "--rounds", str(args.rounds), "--json", str(out)]
        cmd += ["--quick"] * args.quick + ["--keep-going"] * args.keep_going
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        found = {} if proc.returncode else {
            r["workload"]: r for r in json.loads(out.read_text())["results"]["rows"]}
    for row in rows:
        got = found.get(row.workload)
        if got is None:
            row.notes[peer] = "failed: " + harness._one_line(proc.stderr.strip()[-300:], 200)
        elif peer in got["timing"]:
            row.timings[peer] = _timing(got["timing"][peer])
            row.baselines[peer] = _timing(got["timing"]["numpy"])
            row.first_call_s[peer] = got["first_call_s"].get(peer)
        elif peer in got["notes"]:
            row.notes[peer] = got["notes"][peer]


def _timing(d: dict) -> harness.Timing:
    return harness.Timing(median=d["median_s"], best=d["best_s"], worst=d["worst_s"],
                          repeats=d["repeats"], number=d["number"], samples=d["samples"])


def _frameworks(peers: list[str]) -> dict[str, dict | str]:
    out: dict[str, dict | str] = {}
    for label, kind, make in (("jax.jit", "jax", _jax_functions),
                              ("torch.compile", "torch", _torch_functions)):
        if label in peers:
            try:
                out[kind] = make()
            except ImportError as exc:
                out[kind] = f"not installed ({exc.name}); pip install -e '.[peers]'"
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    p.add_argument("--only", nargs="+", choices=[*WORKLOADS, "first call", "einsum"],
                   default=[*WORKLOADS, "first call", "einsum"])
    p.add_argument("--peers", nargs="+", choices=PEERS, default=PEERS)
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--keep-going", action="store_true",
                   help="list a peer with a wrong result instead of stopping")
    p.add_argument("--json", default=None, help="output (default bench/results/peers.json)")
    p.add_argument("--in-process", action="store_true",
                   help="run jax.jit and torch.compile in this process too")
    p.add_argument("--first-call", choices=FIRST_CALL_PEERS, help=argparse.SUPPRESS)
    p.add_argument("--first-call-size", type=int, default=100, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.first_call:
        first_call_child(args.first_call, args.first_call_size)
        return {}
    env = {k: os.environ.get(k) for k in BLAS_ENV}
    if any(env.values()):
        print(f"warning: {env} is set; a user's NumPy runs without them and its matmul is "
              "slower with them (unset them for this command)", flush=True)
    harness.warn_if_busy()
    # compile caches start empty, so each peer's first call in this process compiles
    caches = tempfile.TemporaryDirectory(prefix="bench-peers-")
    os.environ["TRACEJIT_CACHE_DIR"] = os.environ["TORCHINDUCTOR_CACHE_DIR"] = caches.name
    peers = list(args.peers)
    here = peers if args.in_process else [p for p in peers if p not in APART]
    # tracejit before torch and jax: it asks OpenMP threads not to spin (OMP_WAIT_POLICY),
    # which counts only if set before an OpenMP runtime loads
    harness.tracejit_available()
    frameworks = _frameworks(here)
    rows = []
    for name, w in WORKLOADS.items():
        if name in args.only:
            rows.append(run_workload(w, args.quick, here, frameworks,
                                     1 if args.quick else args.rounds, args.keep_going))
            if "stream" in rows[-1].extra and "tracejit fused" in rows[-1].timings:
                s, t = rows[-1].extra["stream"], rows[-1].timings["tracejit fused"].median
                n = WORKLOADS["sumsq"].inputs(args.quick)[0].size
                s["tracejit_GBps"] = 16 * n / t / 1e9
                s["pct_tracejit"] = 100 * s["tracejit_GBps"] / max(s["copy_GBps"],
                                                                   s["triad_GBps"])
    for peer in peers:
        if peer not in here and rows:
            run_apart(peer, rows, args)
    firsts = first_calls(peers, 100) if "first call" in args.only else {}
    einsums = bench_einsum(args.quick, 1 if args.quick else args.rounds) \
        if "einsum" in args.only and "tracejit fused" in peers else []
    print()
    print(render(rows, firsts, env, args.quick), flush=True)
    if einsums:
        print("\nnp.einsum in a traced function, float64 (medians):")
        print(summary(einsums, ["numpy", "tracejit fused"], "median"), flush=True)
    rows += einsums
    results = {
        "rows": [{"workload": r.workload, "unit": r.unit, "target": r.target,
                  "met": target_met(r), "notes": r.notes, "first_call_s": r.first_call_s,
                  "timing": {p: {**t.as_dict(), "iqr_s": harness.quartiles(t.samples),
                                 "samples": t.samples} for p, t in r.timings.items()},
                  "numpy_beside": {p: t.as_dict() for p, t in r.baselines.items()},
                  **r.extra} for r in rows],
        "first_calls": firsts,
        "blas_env": env,
    }
    path = harness.save_json(args.json or ("peers-quick" if args.quick else "peers"), results,
                             config={"quick": args.quick, "rounds": args.rounds})
    print(f"\nsaved {path}")
    return results


if __name__ == "__main__":
    main()
