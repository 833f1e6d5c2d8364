"""First calls with compile="overlap" (the default) and "background": the trace runs in the
caller's thread and the kernels compile in a background thread while the first call ("overlap";
with "background" every call until they are ready) runs the plain function (NumPy's own results,
no warning); later calls use the compiled code ("overlap" waits for it). A failed background
compile surfaces as a synchronous one does, on the next call; interpreter exit does not wait for
it."""

import json
import os
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from conftest import assert_same

import tracejit as tj
from tracejit import api
from tracejit.backends.base import compiling
from tracejit.executor import Executable


def chain(a, b, c):  # cheap ops: kernels that compile fast
    return a * b + np.abs(c) * 0.5 - a / (1 + b * b)


ARGS = tuple(np.linspace(-2, 2, 50) + k for k in range(3))


@pytest.fixture
def gate(monkeypatch):
    """Background builds wait until gate.set(), as if compiling a kernel."""
    opened, build = threading.Event(), api.build

    def gated_build(*args, **kwargs):
        assert threading.current_thread() is not threading.main_thread()
        compiling()
        opened.wait(60)
        return build(*args, **kwargs)

    monkeypatch.setattr(api, "build", gated_build)
    yield opened
    opened.set()


def pending(traced):
    """The one cache entry of traced, as the background compile left it."""
    (entry,) = traced._cache.values()
    return entry


def test_first_calls_run_eagerly_then_compiled(gate):
    traced = tj.trace(chain, compile="background", fallback="raise")
    for _ in range(3):  # exactly NumPy's results while the kernels compile
        result = traced(*ARGS)
        assert result.dtype == np.float64 and np.array_equal(result, chain(*ARGS))
    info = traced.cache_info()
    assert (info.misses, info.traces, info.hits, info.kernels_compiled) == (1, 1, 0, 0), info
    gate.set()
    assert len(traced.explain(*ARGS).kernels) == 1  # waits for the compile
    for _ in range(2):
        assert_same(traced(*ARGS), chain(*ARGS))
    info = traced.cache_info()
    assert (info.misses, info.traces, info.hits) == (1, 1, 3), info  # explain's lookup, too
    assert traced._fast.last is not None and traced._fast.last.entry is pending(traced)


@pytest.mark.parametrize("mode", ["overlap", "background"])
def test_kernels_in_memory_serve_the_first_call(mode):
    warm = tj.trace(chain, compile="sync", fallback="raise")
    warm(*ARGS)  # compiles the kernel for this dtype and rank
    traced = tj.trace(chain, compile=mode, fallback="raise")
    args = tuple(np.linspace(-1, 1, 70) + k for k in range(3))  # another shape, same kernel
    result = traced(*args)
    assert isinstance(pending(traced), Executable)  # the compiled code, not an eager call
    assert_same(result, chain(*args))
    assert traced._fast.last.entry is pending(traced)


def test_overlap_runs_the_first_call_eagerly_and_the_next_waits(gate):
    traced = tj.trace(chain, compile="overlap", fallback="raise")
    result = traced(*ARGS)  # returns while the kernels compile
    assert result.dtype == np.float64 and np.array_equal(result, chain(*ARGS))
    assert not isinstance(pending(traced), Executable)
    second = []
    waiter = threading.Thread(target=lambda: second.append(traced(*ARGS)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not second  # waits for the compile, runs nothing eagerly
    gate.set()
    waiter.join(60)
    assert_same(second[0], chain(*ARGS))
    assert isinstance(pending(traced), Executable)
    info = traced.cache_info()
    assert (info.misses, info.traces, info.hits, info.fallbacks) == (1, 1, 1, 0), info
    assert_same(traced(*ARGS), chain(*ARGS))


def test_two_threads_calling_while_it_compiles(gate):
    traced = tj.trace(chain, compile="background", fallback="raise")
    start, errors = threading.Barrier(2), []

    def worker():
        try:
            start.wait()
            for _ in range(20):
                assert np.array_equal(traced(*ARGS), chain(*ARGS))
            start.wait()
            gate.set()
            pending_entry = pending(traced)
            getattr(pending_entry, "done", threading.Event()).wait(60)
            for _ in range(5):
                assert_same(traced(*ARGS), chain(*ARGS))
        except Exception as e:  # re-raised in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    info = traced.cache_info()
    assert (info.misses, info.traces, info.hits) == (1, 1, 10), info


@pytest.mark.parametrize("fallback", ["warn", "raise"])
def test_a_failing_background_compile_surfaces_on_the_next_call(monkeypatch, fallback):
    release = threading.Event()

    def failing_build(*args, **kwargs):
        compiling()  # fails after the first call returned
        release.wait(60)
        raise RuntimeError("no code for this kernel")

    monkeypatch.setattr(api, "build", failing_build)
    traced = tj.trace(chain, compile="background", fallback=fallback)
    assert np.array_equal(traced(*ARGS), chain(*ARGS))  # eager, no warning yet
    release.set()
    assert pending(traced).done.wait(60)
    if fallback == "raise":  # as a synchronous compile failure raises it
        with pytest.raises(tj.TracejitError, match="failed internally") as caught:
            traced(*ARGS)
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert traced.cache_info().entries == 0  # the next call tries again
        return
    with pytest.warns(tj.FallbackWarning, match="failed internally.*no code for this kernel"):
        assert np.array_equal(traced(*ARGS), chain(*ARGS))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, like a synchronous fallback
        assert np.array_equal(traced(*ARGS), chain(*ARGS))
    assert traced.cache_info().fallbacks == 2


def test_compile_option(monkeypatch):
    with pytest.raises(ValueError, match="compile must be"):
        tj.trace(chain, compile="later")
    monkeypatch.setenv("TRACEJIT_COMPILE", "background")
    assert tj.trace(chain).compile == "background"
    assert tj.trace(chain, compile="sync").compile == "sync"
    monkeypatch.delenv("TRACEJIT_COMPILE")
    assert tj.trace(chain).compile == "overlap"


# A fresh process: the first call of an unfused chain (7 kernels) returns before any kernel
# is compiled, and the process exits at once, while the background thread is compiling.
SCRIPT = """
import json, numpy as np, tracejit as tj

@tj.trace(fuse=False, compile="background", fallback="raise")
def chain(a, b, c):
    return a * b + np.abs(c) * 0.5 - a / (1 + b * b)

a, b, c = (np.linspace(-2, 2, 100) + k for k in range(3))
want = a * b + np.abs(c) * 0.5 - a / (1 + b * b)
assert np.array_equal(chain(a, b, c), want)
print(json.dumps(chain.cache_info()._asdict()), flush=True)
"""


def test_a_process_exits_while_compiling(tmp_path):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert (info["traces"], info["kernels_compiled"], info["fallbacks"]) == (1, 0, 0), info


def test_overlap_compiles_first_for_arguments_too_big_to_run_eagerly(monkeypatch):
    monkeypatch.setattr(api, "OVERLAP_MAX_BYTES", ARGS[0].nbytes * 2)  # ARGS hold three
    traced = tj.trace(chain, compile="overlap", fallback="raise")
    result = traced(*ARGS)
    assert isinstance(pending(traced), Executable)  # compiled before it ran
    assert_same(result, chain(*ARGS))


def test_a_fork_waits_for_the_background_compile(gate):
    traced = tj.trace(chain, compile="overlap", fallback="raise")
    traced(*ARGS)  # its kernel compiles in the background, held by the gate
    threading.Timer(0.2, gate.set).start()
    pid = os.fork()  # waits for the compile: the child must not inherit it half done
    if pid == 0:
        code = 0 if pending(traced).done.is_set() else 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert_same(traced(*ARGS), chain(*ARGS))
