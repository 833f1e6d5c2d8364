"""`python -m tracejit demo | explain`: a guided look at what tracejit does to a function."""

import argparse
import inspect
import sys
import textwrap
import time

import numpy as np

import tracejit as tj


def chain(a, b, c):
    return np.exp(-a * a) * np.sin(b) + np.sqrt(np.abs(c)) * 0.5 - a / (1.0 + b * b)


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
    fused = tj.trace(chain)
    unfused = tj.trace(chain, fuse=False)
    expected = chain(a, b, c)
    for f in (fused, unfused):
        np.testing.assert_allclose(f(a, b, c), expected, rtol=1e-12, atol=1e-12)
    print("The function:\n")
    print(textwrap.indent(inspect.getsource(chain), "    "))
    print("\nIts graph, traced once for this signature:\n")
    print(fused.graph(a, b, c))
    report = fused.explain(a, b, c)
    print(f"\nFused into {len(report.kernels)} kernel; its generated source:\n")
    print(report.kernels[0].source)
    rows = [("numpy eager", _median_ms(chain, a, b, c)),
            ("tracejit unfused (one kernel per op)", _median_ms(unfused, a, b, c)),
            ("tracejit fused", _median_ms(fused, a, b, c))]
    base = rows[0][1]
    print(f"Median time per call, {size:,} float64 elements (results checked against NumPy):\n")
    for name, ms in rows:
        print(f"  {name:<38} {ms:9.2f} ms   {base / ms:5.2f}x numpy")
    print(f"\n{fused.cache_info()}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tracejit")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="trace a sample function, show its kernel and timings")
    d.add_argument("--size", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
