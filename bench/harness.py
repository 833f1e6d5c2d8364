"""Small shared timing / reporting harness for the tracejit micro-benchmarks.

- ``measure(fn, *args)``: median seconds per call, warm-up (and so compilation) excluded.
- ``Table`` / ``report(name, rows)``: print peers side by side with ratios vs NumPy eager.
- ``save_json(name, results)``: write ``bench/results/<name>.json`` with machine info.
- ``check_close`` / ``tracejit_peer``: correctness check and a guarded tracejit peer.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Steady-state benchmarks compile in the first call, so that every result checked and every
# call timed is compiled code; the first-call benchmarks run their children in the default
# mode ("overlap").
os.environ.setdefault("TRACEJIT_COMPILE", "sync")

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
BASELINE = "numpy"

# Environment variables that change BLAS / threading behaviour. They are recorded as found,
# never modified.
RECORDED_ENV = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMBA_THREADING_LAYER",
    "NUMEXPR_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
    "TRACEJIT_DISABLE",
)
# as found when the benchmark started (an imported library may set some later)
_ENV_AT_START = {k: os.environ.get(k) for k in RECORDED_ENV}


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    median: float  # seconds per call
    best: float
    worst: float
    repeats: int  # number of samples
    number: int  # calls per sample
    samples: list[float] = field(default_factory=list)  # seconds per call, one per sample

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "best_s": self.best,
            "worst_s": self.worst,
            "repeats": self.repeats,
            "number": self.number,
        }


def measure_stats(
    fn: Callable[..., Any],
    *args: Any,
    repeats: int | None = None,
    min_time: float = 0.2,
    max_time: float = 6.0,
    warmup: int = 2,
    sample_time: float = 2e-3,
) -> Timing:
    """Time ``fn(*args)``; return a :class:`Timing` (seconds per call).

    Up to ``warmup`` calls run first and are not timed (JIT compilation, caches, page faults);
    after the first, more run only while the warm-up has taken under 0.5 s.
    Each sample runs ``number`` back-to-back calls so that a sample lasts at least
    ``sample_time`` (matters for microsecond calls). With ``repeats=None`` the number of
    samples is chosen so the timed part lasts about ``min_time`` seconds, clamped to
    [5, 50] samples and cut short (keeping at least 3) once ``max_time`` is exceeded.
    """
    # Warm-up: at least one call; further ones (up to ``warmup``) only while they are cheap.
    # The last warm-up call also calibrates ``number``.
    spent = 0.0
    one = 0.0
    for i in range(max(warmup, 1)):
        if i > 0 and spent > 0.5:
            break
        t0 = time.perf_counter()
        fn(*args)
        one = time.perf_counter() - t0
        spent += one
    one = max(one, 1e-9)
    number = max(1, math.ceil(sample_time / one))
    if repeats is None:
        repeats = min(50, max(5, math.ceil(min_time / (one * number))))
    repeats = max(1, int(repeats))

    samples: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(number):
                fn(*args)
            samples.append((time.perf_counter() - t0) / number)
            if len(samples) >= 3 and time.perf_counter() - start > max_time:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timing(
        median=statistics.median(samples),
        best=min(samples),
        worst=max(samples),
        repeats=len(samples),
        number=number,
        samples=samples,
    )


def measure_interleaved(
    calls: dict[str, tuple[Callable[..., Any], Sequence[Any]]], *, rounds: int = 3,
    **timing: Any,
) -> dict[str, Timing]:
    """Time every ``(fn, args)`` in ``calls`` in turn, ``rounds`` times over, and pool each one's
    samples: a burst of load from other processes then falls on every peer alike rather than on
    whichever ran at that moment."""
    pooled: dict[str, list[Timing]] = {name: [] for name in calls}
    for r in range(rounds):
        for name, (fn, args) in calls.items():
            pooled[name].append(measure_stats(fn, *args, **{"warmup": 1 if r else 2, **timing}))
    out = {}
    for name, runs in pooled.items():
        samples = [s for t in runs for s in t.samples]
        out[name] = Timing(median=statistics.median(samples), best=min(samples),
                           worst=max(samples), repeats=len(samples), number=runs[-1].number,
                           samples=samples)
    return out


def quartiles(samples: Sequence[float]) -> tuple[float, float]:
    """The interquartile range (25th and 75th percentiles) of timing samples."""
    if len(samples) < 2:
        return samples[0], samples[0]
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, q3


def measure(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Median seconds per call of ``fn(*args)`` (warm-up excluded). See :func:`measure_stats`."""
    return measure_stats(fn, *args, **kwargs).median


# --------------------------------------------------------------------------- correctness


class ResultMismatch(AssertionError):
    pass


def check_close(
    name: str, got: Any, expected: Any, *, rtol: float, atol: float
) -> None:
    """Assert a peer's output equals the NumPy reference (dtype, shape and values)."""
    got_arr = np.asarray(got)
    exp_arr = np.asarray(expected)
    if got_arr.dtype != exp_arr.dtype:
        raise ResultMismatch(
            f"{name}: dtype {got_arr.dtype} differs from NumPy's {exp_arr.dtype}"
        )
    try:
        np.testing.assert_allclose(got_arr, exp_arr, rtol=rtol, atol=atol, err_msg=name)
    except AssertionError as exc:
        raise ResultMismatch(f"{name}: result differs from NumPy\n{exc}") from None


# --------------------------------------------------------------------------- tracejit peers


@dataclass
class TracejitPeer:
    fn: Callable[..., Any] | None  # the traced function, or None when unavailable
    reason: str = ""  # why it is unavailable
    kernels: int | None = None  # kernels in the compiled plan, if explain() says
    first_result: Any = None  # result of the first (compiling) call

    @property
    def ok(self) -> bool:
        return self.fn is not None


def tracejit_available() -> tuple[bool, str]:
    try:
        import tracejit as tj
    except Exception as exc:  # pragma: no cover - depends on the working tree
        return False, f"import failed: {type(exc).__name__}: {exc}"
    if not hasattr(tj, "trace"):
        return False, "tracejit has no `trace` yet"
    return True, ""


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tracejit_peer(func: Callable[..., Any], args: Sequence[Any], *, fuse: bool) -> TracejitPeer:
    """Trace ``func`` and run it once on ``args``; never raises.

    Returns an unavailable peer (with the reason) when tracejit is not importable, tracing
    raises, or the call fell back to eager NumPy.
    """
    ok, why = tracejit_available()
    if not ok:
        return TracejitPeer(None, why)
    import tracejit as tj

    try:
        try:
            f = tj.trace(func, fuse=fuse, fallback="raise")
        except TypeError:  # option not supported: detect fallback via cache_info instead
            f = tj.trace(func, fuse=fuse)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = f(*args)
    except Exception as exc:
        return TracejitPeer(None, _one_line(f"{type(exc).__name__}: {exc}"))

    fallbacks = 0
    try:
        fallbacks = int(getattr(f.cache_info(), "fallbacks", 0) or 0)
    except Exception:
        pass
    fallback_msgs = [
        str(w.message) for w in caught if "fallback" in str(w.message).lower()
        or "eager" in str(w.message).lower()
    ]
    if fallbacks or fallback_msgs:
        reason = fallback_msgs[0] if fallback_msgs else "fell back to eager NumPy"
        return TracejitPeer(None, _one_line(reason))

    kernels = None
    try:
        kernels = len(f.explain(*args).kernels)
    except Exception:
        pass
    return TracejitPeer(f, "", kernels, result)


# --------------------------------------------------------------------------- reporting


def _ratio_text(peer: str, t: float, t_base: float) -> str:
    if peer == BASELINE:
        return f"{peer} 1.00x"
    r = t_base / t
    if r >= 1.0:
        return f"{peer} {r:.2f}x faster"
    return f"{peer} {1.0 / r:.2f}x slower"


@dataclass
class Row:
    workload: str
    times: dict[str, float | None]  # peer -> seconds per call (None: not run)
    notes: dict[str, str] = field(default_factory=dict)  # peer -> why not run
    extra: dict[str, Any] = field(default_factory=dict)


class Table:
    """Rows of peer timings for several workloads; ``print()`` renders them side by side."""

    def __init__(self, name: str, peers: Sequence[str], unit: str = "ms") -> None:
        self.name = name
        self.peers = list(peers)
        self.unit = unit
        self.rows: list[Row] = []

    def add(self, row: Row) -> None:
        for peer in row.times:
            if peer not in self.peers:
                self.peers.append(peer)
        self.rows.append(row)

    def render(self) -> str:
        scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[self.unit]
        header = ["workload"] + [f"{p} [{self.unit}]" for p in self.peers] + ["vs numpy eager"]
        lines: list[list[str]] = []
        for row in self.rows:
            cells = [row.workload]
            for p in self.peers:
                t = row.times.get(p)
                cells.append("-" if t is None else f"{t * scale:.3f}")
            t_base = row.times.get(BASELINE)
            ratios = [
                _ratio_text(p, row.times[p], t_base)
                for p in self.peers
                if t_base and row.times.get(p)
            ]
            cells.append(", ".join(ratios))
            lines.append(cells)
        widths = [
            max(len(header[i]), *(len(c[i]) for c in lines)) if lines else len(header[i])
            for i in range(len(header) - 1)
        ]

        def fmt(cells: list[str]) -> str:
            left = [cells[0].ljust(widths[0])]
            left += [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:], strict=True)]
            return "  ".join(left + [cells[-1]])

        out = [f"== {self.name} ==", fmt(header), fmt(["-" * w for w in widths] + ["-" * 14])]
        out += [fmt(c) for c in lines]
        grouped: dict[str, list[str]] = {}  # message -> ["workload / peer", ...]
        for row in self.rows:
            for p, msg in row.notes.items():
                grouped.setdefault(msg, []).append(f"{row.workload} / {p}")
        if grouped:
            out.append("notes:")
            for msg, where in grouped.items():
                out.append(f"  {'; '.join(where)}: {msg}")
        return "\n".join(out)

    def results(self) -> list[dict[str, Any]]:
        return [
            {
                "workload": row.workload,
                "seconds": dict(row.times),
                "notes": dict(row.notes),
                **row.extra,
            }
            for row in self.rows
        ]


def report(name: str, rows: Sequence[Row], peers: Sequence[str] | None = None,
           unit: str = "ms") -> Table:
    """Print ``rows`` as a table and return it."""
    if peers is None:
        peers = []
        for row in rows:
            peers += [p for p in row.times if p not in peers]
    table = Table(name, peers, unit=unit)
    for row in rows:
        table.add(row)
    print(table.render(), flush=True)
    return table


# --------------------------------------------------------------------------- machine info / json


def _version(mod: str) -> str | None:
    try:
        m = __import__(mod)
    except Exception:
        return None
    return getattr(m, "__version__", "unknown")


def _blas_info() -> dict[str, Any] | None:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return {k: blas.get(k) for k in ("name", "version", "openblas configuration")}
    except Exception:
        return None


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "numba": _version("numba"),
        "numexpr": _version("numexpr"),
        "blas": _blas_info(),
        "env": dict(_ENV_AT_START),
    }
    changed = {
        k: os.environ.get(k) for k in RECORDED_ENV if os.environ.get(k) != _ENV_AT_START[k]
    }
    if changed:  # e.g. set by an imported library during the run
        info["env_set_during_run"] = changed
    if hasattr(os, "getloadavg"):
        info["loadavg_1_5_15min"] = list(os.getloadavg())
    if hasattr(os, "sched_getaffinity"):
        info["cpu_affinity_count"] = len(os.sched_getaffinity(0))
    try:
        import numba

        info["numba_num_threads"] = numba.get_num_threads()
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except Exception:  # only known after a parallel function has run
            info["numba_threading_layer"] = None
    except Exception:
        pass
    try:
        import numexpr

        info["numexpr_nthreads"] = numexpr.nthreads
    except Exception:
        pass
    ok, why = tracejit_available()
    info["tracejit"] = _version("tracejit") if ok else f"unavailable: {why}"
    try:
        import subprocess

        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True,
            text=True, timeout=5,
        )
        info["git_rev"] = rev.stdout.strip() or None
    except Exception:
        info["git_rev"] = None
    return info


def save_json(path: str | os.PathLike[str], results: Any, **meta: Any) -> Path:
    """Write ``results`` plus machine info as JSON.

    A bare name (``"elementwise"``) goes to ``bench/results/<name>.json``; anything with a
    directory part or a ``.json`` suffix is used as given. Returns the path written.
    """
    p = Path(path)
    if p.parent == Path(".") and p.suffix != ".json":
        p = RESULTS_DIR / f"{p.name}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": p.stem,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
        "machine": machine_info(),
        **meta,
        "results": results,
    }
    p.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return p


# --------------------------------------------------------------------------- running peers


def run_peers(
    workload: str,
    expected: Any,
    peers: dict[str, tuple[Callable[..., Any], Sequence[Any]]],
    *,
    notes: dict[str, str] | None = None,
    rtol: float,
    atol: float,
    keep_going: bool = False,
    timing: dict[str, Any] | None = None,
) -> Row:
    """Check every peer against ``expected`` (NumPy's result), then time each.

    ``peers`` maps a peer name to ``(fn, args)``. A mismatch raises :class:`ResultMismatch`
    unless ``keep_going``, in which case the peer is reported as a wrong result and not timed.
    """
    notes = dict(notes or {})
    times: dict[str, float | None] = {name: None for name in peers}
    for name in notes:
        times.setdefault(name, None)
    stats: dict[str, Any] = {}
    for name, (fn, args) in peers.items():
        try:
            check_close(f"{workload} / {name}", fn(*args), expected, rtol=rtol, atol=atol)
        except ResultMismatch as exc:
            if not keep_going:
                raise
            notes[name] = "WRONG RESULT: " + _one_line(str(exc), 300)
            print(f"!! {notes[name]}", file=sys.stderr, flush=True)
            continue
    for name, (fn, args) in peers.items():
        if name in notes:
            continue
        st = measure_stats(fn, *args, **(timing or {}))
        times[name] = st.median
        stats[name] = st.as_dict()
    return Row(workload, times, notes, {"timing": stats})


def warn_if_busy(threshold: float = 0.75) -> float | None:
    """Print a warning when the 1-minute load average says other work shares the CPUs."""
    if not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[0]
    if load > threshold:
        print(f"warning: 1-minute load average is {load:.2f} on {os.cpu_count()} CPUs; "
              "other processes are running and the timings will be noisy", flush=True)
    return load
