"""Compile time stays bounded when tracing unrolls a Python loop: kernels are capped in size
(fusion.MAX_KERNEL_OPS ops, MAX_KERNEL_PASSES passes over a row), so the kernels of a loop are
alike and compile once; a first call that still compiles long warns (CompileTimeWarning) with
the reason and what to do. Split kernels write over their dying input through its own array,
so LLVM vectorises them."""

import warnings

import numpy as np
import pytest
from conftest import check_against_numpy

import tracejit as tj
from tracejit import executor
from tracejit.errors import CompileTimeWarning, FallbackWarning
from tracejit.passes.fusion import MAX_KERNEL_OPS, MAX_KERNEL_PASSES


def euler(x):
    for _ in range(1000):
        x = x + 0.01 * (-x)
    return x


def test_an_unrolled_loop_compiles_a_few_alike_kernels():
    x = np.ones(10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileTimeWarning)  # a slow machine may still warn
        f = check_against_numpy(euler, x)
    kernels = f.explain(x).kernels
    assert len(kernels) == -(-3000 // MAX_KERNEL_OPS)
    assert all(len(k.kernel.nodes) <= MAX_KERNEL_OPS for k in kernels)
    assert len({k.source for k in kernels}) <= 3  # the loop's kernels, the first and the last
    assert f.cache_info().kernels_compiled <= 3


def test_rowwise_kernels_are_capped_in_passes():
    def f(x):
        for _ in range(12):
            x = np.tanh(x - x.mean(axis=1, keepdims=True)) * 1.5
        return x

    x = np.random.default_rng(0).standard_normal((8, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileTimeWarning)
        traced = check_against_numpy(f, x)
    kernels = [k.kernel for k in traced.explain(x).kernels]
    assert all(k.meta.get("count", 1) <= MAX_KERNEL_PASSES for k in kernels)
    assert any("passes over each row (compile time)" in line
               for k in kernels for line in k.meta["notes"])


def test_slow_compile_warns_with_the_reason(monkeypatch):
    monkeypatch.setattr(executor, "COMPILE_WARN_SECONDS", 0.0)

    def loop(x):
        for _ in range(45):
            x = x * 0.5 + 0.25  # the line the warning names
        return x

    line = loop.__code__.co_firstlineno + 2
    f = tj.trace(loop, fallback="raise")
    x = np.ones(4)
    with pytest.warns(CompileTimeWarning) as caught:
        np.testing.assert_allclose(f(x), loop(x))
    (w,) = caught
    assert not issubclass(w.category, FallbackWarning)
    message = str(w.message)
    assert f"90 ops, 90 of them made by test_compile_budget.py:{line}" in message
    assert "Move the loop out of the traced function" in message
    assert w.filename == __file__  # points at the call
    assert f.cache_info().fallbacks == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f(x)  # a cache hit compiles nothing and does not warn again
        tj.trace(lambda a: np.exp(a) * 2 + 1)(x)  # a small graph never warns


def test_split_kernels_write_through_the_input_they_overwrite():
    def chain(x):
        for _ in range(70):  # 140 ops: two kernels
            x = x * 0.99 + 0.01
        return x

    x = np.linspace(0, 1, 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileTimeWarning)
        f = check_against_numpy(chain, x)
        check_against_numpy(chain, x, parallel=True)
    info = f.explain(x)
    assert len(info.kernels) == 2 and info.memory.in_place
    assert "out0_f = x0_f" in info.kernels[1].source
