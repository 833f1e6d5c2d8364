"""Thread safety: many threads calling traced functions at once, with new and seen signatures.

Each signature must be traced and compiled exactly once (compilation runs under the function's
lock), results must be right in every thread, cache_info() must add up, and nested traced
functions must not deadlock.
"""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import assert_same

import tracejit as tj
from tracejit.backends import cpu

THREADS = 8
TIMEOUT = 120  # seconds; a deadlock shows up as threads still alive after this


def run_threads(target, n=THREADS):
    """Start n threads on target(i), wait for them, and re-raise the first exception."""
    errors, barrier = [], threading.Barrier(n)

    def wrapped(i):
        try:
            barrier.wait()  # all threads start together, to provoke races
            target(i)
        except BaseException as e:  # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + TIMEOUT
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "threads did not finish: deadlock?"
    if errors:
        raise errors[0]


def model(a, b):
    return np.tanh(a) * b - 0.5 * a


SIGNATURES = [  # (shape of a, shape of b, dtype): rank/dtype changes make new kernels
    ((7,), (7,), np.float64),
    ((3, 4), (4,), np.float64),
    ((5,), (), np.float32),
    ((2, 3), (2, 3), np.float32),
    ((6,), (6,), np.int64),
    ((0, 3), (3,), np.float64),
]


def args_for(sig, seed):
    shape_a, shape_b, dtype = sig
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape_a) * 3).astype(dtype)
    b = (rng.standard_normal(shape_b) * 3).astype(dtype)
    return a, b


def test_eight_threads_one_function_each_signature_compiled_once():
    traced = tj.trace(model, fallback="raise")
    traced(*args_for(SIGNATURES[0], 0))  # one signature already seen before the threads start
    calls_per_thread = 12

    def work(i):
        for j in range(calls_per_thread):
            sig = SIGNATURES[(i + j) % len(SIGNATURES)]
            a, b = args_for(sig, 100 * i + j)
            with np.errstate(all="ignore"):
                assert_same(traced(a, b), model(a, b))

    run_threads(work)
    info = traced.cache_info()
    total = 1 + THREADS * calls_per_thread
    assert info.traces == len(SIGNATURES), info  # each signature traced once
    assert info.misses == len(SIGNATURES), info
    assert info.hits + info.misses == total, info  # no lost or double-counted call
    assert info.entries == len(SIGNATURES) and info.fallbacks == 0, info


def test_threads_share_kernels_across_functions():
    fs = [tj.trace(model, fallback="raise") for _ in range(4)]
    a, b = args_for(SIGNATURES[1], 1)
    expected = model(a, b)

    def work(i):
        for _ in range(5):
            assert_same(fs[i % len(fs)](a, b), expected)

    run_threads(work)
    for f in fs:
        info = f.cache_info()
        assert info.traces == 1 and info.hits + info.misses == 2 * 5, info


def test_traced_function_calling_traced_functions_does_not_deadlock():
    @tj.trace(fallback="raise")
    def inner(x):
        return np.exp(x) + 1

    @tj.trace(fallback="raise")
    def scale():
        return inner(np.ones(()))  # a concrete call made while `outer` is being traced

    @tj.trace(fallback="raise")
    def outer(x):
        return inner(x) * scale()  # inner is inlined into outer's trace

    def work(i):
        for n in range(1, 6):
            x = np.linspace(0, 1, n + i % 2)
            assert_same(outer(x), (np.exp(x) + 1) * (np.exp(np.ones(())) + 1))

    run_threads(work)
    assert outer.cache_info().traces == 6  # lengths 1..6, each traced once
    assert outer.cache_info().fallbacks == 0


def test_cache_clear_while_other_threads_call():
    traced = tj.trace(model, fallback="raise")
    a, b = args_for(SIGNATURES[0], 3)
    expected = model(a, b)

    def work(i):
        for _ in range(20):
            if i == 0:
                traced.cache_clear()
            assert_same(traced(a, b), expected)

    run_threads(work, n=4)
    info = traced.cache_info()
    assert info.entries <= 1 and info.traces <= info.misses, info


def test_parallel_launches_serialised_when_layer_is_not_threadsafe(monkeypatch):
    """Under Numba's workqueue layer two parallel kernels may not run at once."""
    active, peak = [0], [0]
    lock = threading.Lock()

    def fake_kernel(*args):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1

    monkeypatch.setattr(cpu, "_layer_is_threadsafe", [False])
    launch = cpu._serialise_if_needed(fake_kernel)
    run_threads(lambda i: [launch() for _ in range(3)], n=4)
    assert peak[0] == 1


@pytest.mark.parametrize("layer", ["workqueue"])
def test_concurrent_parallel_kernels_under_workqueue_layer(layer):
    """In a fresh process forced onto the workqueue layer, threads running parallel kernels at
    once must neither crash nor give wrong results (Numba aborts on concurrent workqueue use)."""
    code = """
import threading, numpy as np, tracejit as tj
f = tj.trace(lambda a: np.sqrt(a) * 2 + 1, parallel=True, fallback="raise")
x = np.arange(4096.0)
f(x)
errors = []
def work():
    for _ in range(20):
        if not np.allclose(f(x), np.sqrt(x) * 2 + 1):
            errors.append("wrong")
threads = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
import numba
print(numba.threading_layer(), len(errors))
"""
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer, NUMBA_NUM_THREADS="2")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [layer, "0"], proc.stdout
