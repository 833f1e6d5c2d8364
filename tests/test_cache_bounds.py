"""Bounded caches: a per-function LRU of signatures, a bounded global kernel cache, memory that
stays flat under ever-new shapes, and TRACEJIT_LOG=recompiles explaining each cache miss."""

import gc
import logging
import os
import tracemalloc

import numpy as np
import pytest
from conftest import assert_same

import tracejit as tj
from tracejit import api
from tracejit.backends import cpu


def f(a, b):
    return np.exp(a) * b + 1


def test_lru_keeps_the_most_recently_used_signatures():
    traced = tj.trace(f, max_cache_entries=3, fallback="raise")
    xs = {n: np.linspace(0, 1, n) for n in range(1, 6)}
    for n in (1, 2, 3):
        traced(xs[n], 2.0)
    traced(xs[1], 2.0)  # 1 is now the most recently used; 2 is the least
    traced(xs[4], 2.0)  # evicts 2
    info = traced.cache_info()
    assert (info.entries, info.misses, info.hits) == (3, 4, 1), info
    traced(xs[1], 2.0)
    traced(xs[3], 2.0)
    assert traced.cache_info().misses == 4  # 1 and 3 survived
    assert_same(traced(xs[2], 2.0), f(xs[2], 2.0))  # 2 was evicted: traced again, still right
    info = traced.cache_info()
    assert (info.entries, info.misses, info.traces) == (3, 5, 5), info


def test_default_bound_applies():
    traced = tj.trace(lambda a: a + 1, fallback="raise")
    for n in range(api.DEFAULT_MAX_CACHE_ENTRIES + 5):
        traced(np.zeros(n))
    assert traced.cache_info().entries == api.DEFAULT_MAX_CACHE_ENTRIES


def test_fallback_entries_are_bounded_too():
    def f(a):
        return a if a.sum() > 0 else -a  # a Python branch on a value: runs eagerly

    traced = tj.trace(f, max_cache_entries=2, fallback="eager")
    for n in range(5):
        assert_same(traced(np.arange(n, 0, -1.0)), f(np.arange(n, 0, -1.0)))
    info = traced.cache_info()
    assert info.entries == 2 and info.fallbacks == 5, info


def test_global_kernel_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(cpu, "MAX_KERNELS", 2)
    fns = [lambda a: np.sin(a) + 0.25, lambda a: np.cos(a) - 0.5, lambda a: np.tanh(a) * 3.0]
    x = np.linspace(-1, 1, 5)
    traced = [tj.trace(fn, fallback="raise") for fn in fns]
    for t, fn in zip(traced, fns):
        assert_same(t(x), fn(x))
        assert cpu.kernel_cache_size() <= 2
    for t, fn in zip(traced, fns):  # executables keep their kernels after eviction
        assert_same(t(x), fn(x))


def _rss_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


# Every call below is a cache miss (trace + plan, ~3 ms): the default keeps the test fast;
# TRACEJIT_MEMORY_CALLS=10000 runs the full check.
CALLS = int(os.environ.get("TRACEJIT_MEMORY_CALLS", "2000"))


def test_ever_new_shapes_keep_memory_bounded():
    """CALLS calls, each with a shape never seen before: entries stay at the bound and
    Python-level memory stays flat (an unbounded cache grows by ~20 KB per signature)."""
    traced = tj.trace(f, max_cache_entries=8, fallback="raise")
    b = np.float64(0.5)
    for n in range(200):  # warm up: kernels compiled, caches at their bound
        traced(np.zeros(n), b)
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        rss_start = _rss_bytes()
        for n in range(200, 200 + CALLS):
            traced(np.zeros(n), b)  # a new length each call
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - start
        rss_growth = _rss_bytes() - rss_start
    finally:
        tracemalloc.stop()
    info = traced.cache_info()
    assert info.entries == 8 and info.misses == 200 + CALLS and info.kernels_compiled <= 2, info
    assert growth < 2**20, f"Python memory grew by {growth} bytes over {CALLS} new shapes"
    assert rss_growth < 32 * 2**20, f"RSS grew by {rss_growth} bytes over {CALLS} new shapes"


@pytest.fixture
def recompile_log(monkeypatch, caplog):
    monkeypatch.setenv("TRACEJIT_LOG", "recompiles")
    caplog.set_level(logging.INFO, logger="tracejit")
    return caplog


def test_recompile_log_names_the_argument_that_changed(recompile_log):
    traced = tj.trace(f, fallback="raise")
    x = np.ones((3, 4))
    traced(x, 2.0)
    assert "compiling f for a: float64[3, 4] contiguous, b: float" in recompile_log.text
    recompile_log.clear()
    traced(x, 2.0)
    assert recompile_log.text == ""  # a hit logs nothing
    traced(np.ones((3, 5)), 2.0)
    assert "recompiling f because a: float64[3, 4] contiguous -> float64[3, 5] contiguous" \
        in recompile_log.text
    assert "b:" not in recompile_log.text.split("because", 1)[1]  # only what changed
    recompile_log.clear()
    traced(np.ones((3, 5), np.float32), 2.0)
    assert "float64[3, 5] contiguous -> float32[3, 5] contiguous" in recompile_log.text
    recompile_log.clear()
    traced(np.ones((5, 3), np.float32).T, 2.0)
    assert "float32[3, 5] contiguous -> float32[3, 5] F-contiguous" in recompile_log.text
    recompile_log.clear()
    traced(np.ones((5, 3), np.float32).T, np.float32(2))
    assert "b: float -> float32 scalar" in recompile_log.text


def test_recompile_log_explains_an_eviction(recompile_log):
    traced = tj.trace(f, max_cache_entries=1, fallback="raise")
    traced(np.ones(3), 2.0)
    traced(np.ones(4), 2.0)
    recompile_log.clear()
    traced(np.ones(3), 2.0)
    assert "recompiling f because a: float64[4] contiguous -> float64[3] contiguous" \
        in recompile_log.text


def test_recompile_log_off_by_default(monkeypatch, caplog):
    monkeypatch.delenv("TRACEJIT_LOG", raising=False)
    caplog.set_level(logging.INFO, logger="tracejit")
    traced = tj.trace(f, fallback="raise")
    traced(np.ones(3), 2.0)
    traced(np.ones(4), 2.0)
    assert caplog.text == ""
