"""The on-disk kernel cache (backends/disk_cache.py): a new process calling a function another
process ran loads its kernels instead of compiling them; entries are named by content, written
atomically, and recompiled when they cannot be read."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np

from tracejit.backends import disk_cache

# one call of a small traced function in a fresh process: prints its cache_info as JSON
SCRIPT = """
import json, numpy as np, tracejit as tj

@tj.trace
def f(a, b):
    return a * b + 1.0

a, b = np.linspace(-2.0, 2.0, 101), np.arange(101.0)
got, want = f(a, b), a * b + 1.0
assert got.dtype == want.dtype and np.array_equal(got, want)
print(json.dumps(f.cache_info()._asdict()))
"""


def start(folder):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(folder))
    return subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def entries(folder):
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


def test_a_new_process_loads_kernels_instead_of_compiling(tmp_path):
    # two processes at once on an empty cache: both compile, both write the same entry
    first = [start(tmp_path) for _ in range(2)]
    for proc in first:
        assert finish(proc)["kernels_compiled"] == 1
    files = entries(tmp_path)
    assert any(p.suffix == ".nbi" for p in files) and any(p.suffix == ".nbc" for p in files)
    assert not any(".tmp." in p.name for p in files)  # written to a temporary name, renamed

    warm = finish(start(tmp_path))
    assert warm["kernels_compiled"] == 0 and warm["traces"] == 1

    for p in files:  # corrupt every entry: the next process compiles again and overwrites it
        p.write_bytes(b"not a pickle")
    assert finish(start(tmp_path))["kernels_compiled"] == 1
    assert all(p.read_bytes() != b"not a pickle" for p in files)


def test_entries_are_named_by_content_not_time():
    a = disk_cache.kernel_key("def kernel(x0, out0):\n    pass\n", False)
    assert a == disk_cache.kernel_key("def kernel(x0, out0):\n    pass\n", False)
    assert a != disk_cache.kernel_key("def kernel(x0, out0):\n    pass\n", True)
    assert a != disk_cache.kernel_key("def kernel(x0, out1):\n    pass\n", False)
    assert len(a) == 64 and int(a, 16) >= 0


def test_folder_is_configurable(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path / "kernels"))
    assert disk_cache.cache_dir() == tmp_path / "kernels"
    monkeypatch.delenv("TRACEJIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert disk_cache.cache_dir() == tmp_path / "tracejit"
    for off in ("", "0"):
        monkeypatch.setenv("TRACEJIT_CACHE_DIR", off)
        assert disk_cache.cache_dir() is None
        disp = numba.njit(lambda x: x + 1)
        assert disk_cache.attach(disp, "source", False) is disp
        assert disp.stats.cache_path is None  # Numba's no-cache default
        assert disp(np.float64(1.0)) == 2.0


# A traced function of x in a fresh process; prints how its vector-math helpers were obtained
# and whether its kernel's loop is packed SIMD code
LIBRARY_SCRIPT = """
import json, re, sys, numpy as np, tracejit as tj
from tracejit.backends import cpu, vecmath

fn = [lambda x: np.sin(x) * np.exp(-x) + 1.0, lambda x: np.exp(x) - np.sin(x)][int(sys.argv[1])]
traced = tj.trace(fn, fallback="raise", compile="sync")
x = np.linspace(-3.0, 3.0, 1001)
got, want = traced(x), fn(x)
assert got.dtype == want.dtype and np.allclose(got, want, rtol=4e-16, atol=4e-16)
(disp,) = cpu._dispatchers.values()
asm = disp.inspect_asm(disp.signatures[0])
helpers = [vecmath._sin64, vecmath._exp64]
print(json.dumps(dict(
    kernels_compiled=traced.cache_info().kernels_compiled,
    helpers_loaded=sum(sum(h.stats.cache_hits.values()) for h in helpers),
    helpers_compiled=sum(sum(h.stats.cache_misses.values()) for h in helpers),
    packed=len(re.findall(r"\\bv?(mul|fmadd\\w*)p[sd]\\s", asm)),
    libm_calls=len(re.findall(r"call\\w*\\s+\\w*(sin|exp)\\b", asm)))))
"""


def test_vector_math_compiles_once_for_every_kernel(tmp_path):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path))

    def run(which):
        done = subprocess.run([sys.executable, "-c", LIBRARY_SCRIPT, str(which)], env=env,
                              text=True, capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = run(0)
    assert (first["helpers_loaded"], first["helpers_compiled"]) == (0, 2), first
    assert any((tmp_path / "library").rglob("*.nbc"))
    second = run(1)  # another kernel, linking the helpers the first process compiled
    assert second["kernels_compiled"] == 1, second
    assert (second["helpers_loaded"], second["helpers_compiled"]) == (2, 0), second
    for info in (first, second):  # inlined and vectorised as when compiled in-process
        assert info["packed"] > 20 and info["libm_calls"] == 0, info
