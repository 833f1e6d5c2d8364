"""CUDA benchmarks: tracejit's backend="cuda", fused vs unfused, vs CuPy and torch eager.

Workloads (float32):
  chain        exp(-a*a)*sin(b) + sqrt(abs(c))*0.5 - a/(1+b*b), 3 x 2^24 elements
  memory-bound a*b + c*d - e, 5 x 2^24 elements
  softmax      row-wise softmax over the last axis, (8192, 1024)
  layernorm    row-wise layernorm over the last axis, eps=1e-5, no affine, (8192, 1024)

Peers: "fused" and "unfused" run tracejit's kernels on device arrays (cuda.device_runner: no
host copies), "fused+copies" is the traced call on NumPy arrays (copies in and out at each
launch), "cupy" and "torch" are eager CuPy and PyTorch on the same device when installed. For
the elementwise workloads the fused kernel's bandwidth (bytes read and written per second) is
given as a share of the device's copy bandwidth (a device-to-device copy of the same bytes).

Usage: python bench/bench_cuda.py [--quick] [--json PATH]
With NUMBA_ENABLE_CUDASIM=1 it runs in the Numba simulator at tiny sizes: a check of the
script, not a measurement.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tracejit as tj  # noqa: E402
from tracejit.backends import cuda as tj_cuda  # noqa: E402

cuda = tj_cuda.cuda
SIM = tj_cuda.SIMULATED


def chain(a, b, c):
    return np.exp(-a * a) * np.sin(b) + np.sqrt(np.abs(c)) * 0.5 - a / (1.0 + b * b)


def memory_bound(a, b, c, d, e):
    return a * b + c * d - e


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layernorm(x):
    m = x.mean(axis=-1, keepdims=True)
    v = ((x - m) ** 2).mean(axis=-1, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5)


def _inputs(name, quick):
    rng = np.random.default_rng(0)
    n = 1000 if SIM else (1 << 20 if quick else 1 << 24)
    rows = (4, 64) if SIM else ((1024, 1024) if quick else (8192, 1024))
    count = {"chain": 3, "memory-bound": 5}.get(name)
    if count:
        return [rng.standard_normal(n).astype(np.float32) for _ in range(count)]
    return [rng.standard_normal(rows).astype(np.float32)]


WORKLOADS = {"chain": chain, "memory-bound": memory_bound, "softmax": softmax,
             "layernorm": layernorm}


def _timed(fn, repeats):
    """Median and spread of seconds per call on the device (synchronised), warm-up excluded."""
    fn()
    cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def _copy_bandwidth(nbytes, repeats):
    src = cuda.device_array(nbytes // 4, np.float32)
    dst = cuda.device_array(nbytes // 4, np.float32)
    t, _, _ = _timed(lambda: dst.copy_to_device(src), repeats)
    return 2 * nbytes / t  # read and written


def _eager_peers(fn, args):
    peers = {}
    try:
        import cupy

        dev = [cupy.asarray(a) for a in args]
        cupy_np = {"exp": cupy.exp, "sin": cupy.sin, "sqrt": cupy.sqrt, "abs": cupy.abs}
        peers["cupy"] = (lambda: _with_module(fn, cupy, dev, cupy_np),
                         lambda r: cupy.asnumpy(r))
    except ImportError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            dev = [torch.from_numpy(a).cuda() for a in args]
            peers["torch"] = (lambda: _torch(fn, dev), lambda r: r.cpu().numpy())
    except ImportError:
        pass
    return peers


def _with_module(fn, module, args, _names):
    # CuPy arrays dispatch NumPy's functions (__array_function__ / __array_ufunc__)
    return fn(*args)


def _torch(fn, args):
    import torch

    if fn is softmax:
        return torch.softmax(args[0], dim=-1)
    if fn is layernorm:
        return torch.nn.functional.layer_norm(args[0], args[0].shape[-1:], eps=1e-5)
    if fn is chain:
        a, b, c = args
        return torch.exp(-a * a) * torch.sin(b) + torch.sqrt(torch.abs(c)) * 0.5 - a / (1 + b * b)
    a, b, c, d, e = args
    return a * b + c * d - e


def bench(name, quick, repeats):
    fn = WORKLOADS[name]
    args = _inputs(name, quick)
    want = fn(*args)
    dev = [cuda.to_device(a) for a in args]
    rows = {}
    for label, fuse in (("fused", True), ("unfused", False)):
        traced = tj.trace(backend="cuda", fuse=fuse, fallback="raise")(fn)
        run = tj_cuda.device_runner(traced._executable(args, {}))
        got = run(*dev)[0].copy_to_host()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        rows[label] = _timed(lambda run=run: run(*dev), repeats)
        if fuse:
            rows["kernels (fused)"] = len(traced._executable(args, {}).kernels)
    traced = tj.trace(backend="cuda", fallback="raise")(fn)
    np.testing.assert_allclose(traced(*args), want, rtol=1e-4, atol=1e-5)
    rows["fused+copies"] = _timed(lambda: traced(*args), max(1, repeats // 4))
    for peer, (call, back) in _eager_peers(fn, args).items():
        np.testing.assert_allclose(back(call()), want, rtol=1e-4, atol=1e-5)
        rows[peer] = _timed(call, repeats)
    moved = sum(a.nbytes for a in args) + want.nbytes
    rows["bytes moved"] = moved
    if name in ("chain", "memory-bound"):
        rows["copy bandwidth [GB/s]"] = _copy_bandwidth(moved // 2, repeats) / 1e9
        rows["fused bandwidth [GB/s]"] = moved / rows["fused"][0] / 1e9
        rows["fused / copy bandwidth"] = rows["fused bandwidth [GB/s]"] / \
            rows["copy bandwidth [GB/s]"]
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repeats")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    repeats = 2 if SIM else (10 if args.quick else 40)
    device = "simulator" if SIM else cuda.get_current_device().name
    device = device.decode() if isinstance(device, bytes) else device
    print(f"device: {device}{' (simulated: not a measurement)' if SIM else ''}")
    results = {}
    for name in WORKLOADS:
        rows = results[name] = bench(name, args.quick, repeats)
        print(f"-- {name}")
        for peer, value in rows.items():
            if isinstance(value, tuple):
                med, lo, hi = (x * 1e3 for x in value)
                print(f"   {peer:24s} {med:9.3f} ms  (min {lo:.3f}, max {hi:.3f})")
            else:
                print(f"   {peer:24s} {value:.3g}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "simulated": SIM, "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
