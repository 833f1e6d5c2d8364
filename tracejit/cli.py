"""The command line: `python -m tracejit demo | bench | explain`, a look at what tracejit does
without writing a script."""

import argparse
import importlib
import inspect
import os
import re
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import tracejit as tj

from . import examples

# `explain --args`: "f32[4096,1024]" is an array of that dtype and shape; "f64[]" a 0-d array
_ARRAY_SPEC = re.compile(r"^([a-z]+\d*)\[([\d,\s]*)\]$")
_DTYPES = {"f64": "float64", "f32": "float32", "f16": "float16", "i64": "int64", "i32": "int32",
           "i16": "int16", "i8": "int8", "u64": "uint64", "u32": "uint32", "u16": "uint16",
           "u8": "uint8", "bool": "bool"}

# the benchmark scripts `bench` runs, from the source tree's bench/ folder
_BENCH_SCRIPTS = ("bench_elementwise", "bench_reductions")


class CommandError(Exception):
    """Bad input on the command line: printed as a one-line error, exit status 2."""


@contextmanager
def progress(label, after=1.0, stream=None):
    """Say on stderr what is running once it has taken longer than `after` seconds (Numba
    compiles take seconds), and how long it took; quick steps print nothing."""
    stream = stream or sys.stderr
    done = threading.Event()
    start = time.perf_counter()

    def tick():
        if done.wait(after):
            return
        stream.write(f"{label} ...")
        stream.flush()
        while not done.wait(1.0):
            stream.write(".")
            stream.flush()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        elapsed = time.perf_counter() - start
        if elapsed > after:
            stream.write(f" {elapsed:.1f} s\n")
            stream.flush()


def parse_arg_spec(spec, rng):
    """One `--args` item as a value: `f32[4096,1024]` a random array, `f64[]` a 0-d array,
    `3` an int, `0.5` a float."""
    m = _ARRAY_SPEC.match(spec.strip())
    if m:
        name, dims = m.groups()
        if name not in _DTYPES:
            raise CommandError(f"unknown dtype {name!r} in {spec!r}; use one of "
                             f"{', '.join(_DTYPES)}")
        shape = tuple(int(d) for d in dims.replace(" ", "").split(",") if d)
        dtype = np.dtype(_DTYPES[name])
        if dtype.kind == "f":
            return rng.standard_normal(shape).astype(dtype)
        if dtype.kind == "b":
            return rng.random(shape) < 0.5
        return rng.integers(0, 10, size=shape).astype(dtype)
    for kind in (int, float):
        try:
            return kind(spec)
        except ValueError:
            pass
    raise CommandError(f"cannot read {spec!r}: write an array as dtype[shape] (f32[4096,1024], "
                     "i64[10], f64[] for 0-d) or a Python number (3, 0.5)")


def load_function(target):
    """`package.module:function` (the function may be `Class.method`), imported with the
    current directory on the path, as scripts see it."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise CommandError(f"expected MODULE:FUNCTION, such as tracejit.examples:softmax, "
                         f"not {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise CommandError(f"cannot import {module_name!r}: {e}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CommandError(f"{module_name!r} has no {attr!r}") from None
    if not callable(obj):
        raise CommandError(f"{target} is a {type(obj).__name__}, not a function")
    return obj


def _median_ms(fn, *args, repeats=7):
    fn(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def demo(size):
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(size) for _ in range(3))
    fused = tj.trace(examples.chain)
    unfused = tj.trace(examples.chain, fuse=False)
    expected = examples.chain(a, b, c)
    with progress("compiling chain (fused, then one kernel per op)"):
        for f in (fused, unfused):  # the first call runs NumPy while the kernels compile;
            for _ in range(2):  # the second waits for them
                np.testing.assert_allclose(f(a, b, c), expected, rtol=1e-12, atol=1e-12)
    print("The function, from tracejit/examples.py:\n")
    print(textwrap.indent(inspect.getsource(examples.chain), "    "))
    print("Its graph, traced once for this signature; each line names the code that made it:\n")
    print(fused.graph(a, b, c))
    report = fused.explain(a, b, c)
    print(f"\nFused into {len(report.kernels)} kernel; its generated source:\n")
    print(report.kernels[0].source)
    rows = [("numpy eager", _median_ms(examples.chain, a, b, c)),
            ("tracejit unfused (one kernel per op)", _median_ms(unfused, a, b, c)),
            ("tracejit fused", _median_ms(fused, a, b, c))]
    base = rows[0][1]
    print(f"Median time per call, {size:,} float64 elements (results checked against NumPy):\n")
    for name, ms in rows:
        print(f"  {name:<38} {ms:9.2f} ms   {base / ms:5.2f}x numpy")
    print(f"\n{fused.cache_info()}")
    print("\nNext: python -m tracejit explain tracejit.examples:softmax --args \"f32[512,1024]\"")


def explain(target, specs, fuse=True, seed=0):
    fn = load_function(target)
    rng = np.random.default_rng(seed)
    args = [parse_arg_spec(s, rng) for s in specs]
    if isinstance(fn, tj.TracedFunction):  # already decorated: keep its options
        fn = fn if fuse else tj.trace(fn.fn, fuse=False, static_argnames=fn.static_argnames,
                                      backend=fn.backend, parallel=fn.parallel)
    else:
        fn = tj.trace(fn, fuse=fuse)
    with progress(f"tracing and compiling {target}"):
        report = fn.explain(*args)
    print(report)


def bench_dir():
    """The source tree's bench/ folder; the benchmarks are not part of an installed package."""
    return Path(__file__).resolve().parent.parent / "bench"


def bench(quick, plot_path):
    folder = bench_dir()
    if not (folder / "harness.py").exists():
        raise CommandError(f"no benchmarks at {folder}: they ship with the source tree, so run "
                         "`pip install -e .` from a clone of the repository")
    sys.path[:0] = [str(folder)]
    results = {}
    for name in _BENCH_SCRIPTS:
        print(f"\n=== {name}.py{' --quick' if quick else ''}", flush=True)
        script = importlib.import_module(name)
        results.update(script.main(["--quick"] if quick else []))
    from .render import bench_figure  # matplotlib only when plotting

    plot_path = Path(plot_path or folder / "results" / f"bench{'-quick' if quick else ''}.png")
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    title = f"tracejit benchmarks{' (--quick sizes)' if quick else ''}, {os.cpu_count()} CPUs"
    bench_figure(results, title=title).savefig(plot_path, dpi=120)
    print(f"\nplot saved to {plot_path}")


def make_parser():
    parser = argparse.ArgumentParser(
        prog="python -m tracejit",
        description="tracejit: trace NumPy functions into fused Numba kernels, and see what the "
                    "compiler did.",
        epilog="examples:\n"
               "  python -m tracejit demo\n"
               "  python -m tracejit explain tracejit.examples:softmax --args \"f32[512,1024]\"\n"
               "  python -m tracejit bench --quick --plot bench.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tracejit {tj.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser("demo", help="trace a sample function, show its graph, kernel and timings")
    d.add_argument("--size", type=int, default=2_000_000, help="elements per array")
    b = sub.add_parser("bench", help="fused vs unfused vs NumPy micro-benchmarks: a table, JSON "
                       "in bench/results/ and a PNG plot")
    b.add_argument("--quick", action="store_true", help="small sizes and few repeats (seconds)")
    b.add_argument("--plot", metavar="PATH", help="where to write the PNG "
                   "(default bench/results/bench[-quick].png)")
    e = sub.add_parser("explain", help="print the graph, kernels and memory plan of a function",
                       description="Trace MODULE:FUNCTION on random arguments of the given "
                       "types and print what runs: the graph, each kernel with its generated "
                       "source, and the memory plan.")
    e.add_argument("target", metavar="MODULE:FUNCTION", help="e.g. tracejit.examples:softmax "
                   "or mymodule:loss (the current directory is importable)")
    e.add_argument("--args", default="", metavar="\"SPEC ...\"",
                   help="argument types, space-separated: f32[4096,1024] (an array), f64[] "
                        "(0-d), 3 or 0.5 (Python numbers)")
    e.add_argument("--no-fuse", dest="fuse", action="store_false",
                   help="one kernel per op (the unfused baseline)")
    e.add_argument("--seed", type=int, default=0, help="random seed for the arguments")
    return parser


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            parser.print_help()
        elif args.command == "demo":
            demo(args.size)
        elif args.command == "bench":
            bench(args.quick, args.plot)
        elif args.command == "explain":
            explain(args.target, args.args.split(), fuse=args.fuse, seed=args.seed)
    except CommandError as e:
        parser.exit(2, f"python -m tracejit {args.command}: error: {e}\n")
    except tj.TracejitError as e:  # the traced function's own problem, already naming its line
        parser.exit(1, f"python -m tracejit {args.command}: {type(e).__name__}: {e}\n")
    return 0
