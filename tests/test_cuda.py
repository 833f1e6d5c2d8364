"""backend="cuda": every kernel kind checked against NumPy in the Numba CUDA simulator (or on a
GPU, with TRACEJIT_CUDA_DEVICE=1), and compiled to PTX for sm_90 by the real numba.cuda, which
needs no GPU (in a subprocess: the simulator replaces numba.cuda in this one)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# before numba.cuda is first imported: it picks the simulator or the driver once
if os.environ.get("TRACEJIT_CUDA_DEVICE") != "1":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    import numba

    numba.config.reload_config()

pytest.importorskip("numba.cuda", reason="the cuda extra (numba-cuda[cu13]) is not installed")

from conftest import check_against_numpy  # noqa: E402

import tracejit as tj  # noqa: E402
from tracejit.backends import cuda as cuda_backend  # noqa: E402

if os.environ.get("TRACEJIT_CUDA_DEVICE") != "1" and not cuda_backend.SIMULATED \
        and not cuda_backend.cuda.is_available():
    pytest.skip("numba.cuda was imported before this module could select its simulator, and "
                "it sees no GPU", allow_module_level=True)

rng = np.random.default_rng(13)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _layernorm(x):
    m = x.mean(axis=-1, keepdims=True)
    v = ((x - m) ** 2).mean(axis=-1, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5)


def _mlp(x, w, b):
    return np.maximum(x @ w + b, 0)


def _loss(x):
    return np.sum(np.tanh(x) ** 2)


def _normal(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# one case per kernel kind; small sizes, since the simulator runs every thread in Python
CASES = {
    "elementwise-flat": (lambda a, b: np.exp(-a * a) * np.sin(b) + np.sqrt(np.abs(b)) * 0.5,
                         (_normal(300), _normal(300))),
    "elementwise-broadcast-strided": (lambda a, b: np.where(a > b, a / (1.0 + b * b), -a),
                                      (_normal(9, 14)[::2, ::-1], _normal(14))),
    "elementwise-float32-scalar": (lambda a, s: np.tanh(a * s) - np.float32(1.5),
                                   (_normal(40, dtype=np.float32), 0.75)),
    "elementwise-int-helpers": (lambda a, b: (a // b, a % b, a ** 2, a << 3),
                                (rng.integers(-50, 50, 60), rng.integers(1, 9, 60))),
    "elementwise-rounding": (lambda a: (np.rint(a * 3), np.floor(a) + np.ceil(a), np.trunc(a),
                                        np.cbrt(a), np.exp2(a), np.signbit(a)),
                             (_normal(50) * 4,)),
    "elementwise-float16": (lambda a: a * a + np.float16(1), (_normal(33, dtype=np.float16),)),
    "elementwise-0d": (lambda a, b: a * b + 1.0, (np.asarray(2.0), _normal(5))),
    "full-reduction": (lambda a, b: np.sum((a - b) ** 2), (_normal(500), _normal(500))),
    "full-argmax-nan": (lambda a: (np.argmax(a), np.max(a)), (np.where(
        np.arange(90) == 40, np.nan, _normal(90)),)),
    "axis-reduction": (lambda a: (a.max(axis=1), a.argmin(axis=1), (a > 0).any(axis=1)),
                       (_normal(6, 70),)),
    "column-reduction": (lambda a: (a.sum(axis=0), a.min(axis=0)), (_normal(40, 9),)),
    "column-reduction-3d": (lambda a: a.mean(axis=(0, 1)), (_normal(3, 5, 11),)),
    "rowwise-softmax": (_softmax, (_normal(4, 40, dtype=np.float32),)),
    "rowwise-layernorm": (_layernorm, (_normal(3, 33),)),
    "matmul-epilogue": (_mlp, (_normal(5, 20), _normal(20, 18), _normal(18))),
}


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_kinds_match_numpy(name):
    fn, args = CASES[name]
    check_against_numpy(fn, *args, backend="cuda", calls=1)


def test_backward_graph_matches_numpy():
    x = _normal(6, 10)
    grad = tj.trace(backend="cuda", fallback="raise")(lambda x: tj.grad(_loss)(x))
    np.testing.assert_allclose(grad(x), 2 * np.tanh(x) * (1 - np.tanh(x) ** 2), rtol=1e-12)


def test_negative_integer_power_raises_as_numpy():
    power = tj.trace(backend="cuda", fallback="raise")(lambda a, b: a ** b)
    with pytest.raises(ValueError, match="negative integer powers"):
        power(np.arange(4), np.array([1, 2, -1, 3]))


def test_tiled_matmul_matches_numpy():
    a, b = _normal(13, 21), _normal(21, 10)
    np.testing.assert_allclose(cuda_backend.matmul(a, b), a @ b, rtol=1e-12)
    out = np.empty((13, 10))
    assert cuda_backend.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)


def _two_layers(x, w, b):
    h = np.tanh(x * 2.0) @ w + b  # intermediates share the device arena as the plan says
    return np.exp(-h * h).sum(axis=1)


@pytest.mark.parametrize("name", ["rowwise-softmax", "matmul-epilogue", "full-argmax-nan",
                                  "two-layers"])
def test_device_runner_keeps_device_arrays_on_the_device(name):
    fn, args = CASES[name] if name in CASES else (
        _two_layers, (_normal(6, 9), _normal(9, 9), _normal(9)))
    traced = tj.trace(backend="cuda", fallback="raise")(fn)
    run = cuda_backend.device_runner(traced._executable(args, {}))
    dev = [cuda_backend.cuda.to_device(a) for a in args]
    want = fn(*args)
    for _ in range(2):  # the second call reuses the device buffers of the first
        got = run(*dev)
        assert all(hasattr(g, "copy_to_host") for g in got)  # device arrays, not NumPy
        for g, w in zip(got, want if isinstance(want, tuple) else (want,)):
            np.testing.assert_allclose(g.copy_to_host(), w, rtol=1e-6)


def test_device_arrays_in_device_arrays_out():
    traced = tj.trace(backend="cuda", fallback="raise")(_two_layers)
    args = (_normal(6, 9), _normal(9, 9), _normal(9))
    dev = [cuda_backend.cuda.to_device(a) for a in args]
    for _ in range(2):
        got = traced(*dev)
        assert hasattr(got, "copy_to_host")  # a device array, not copied back
        np.testing.assert_allclose(got.copy_to_host(), _two_layers(*args), rtol=1e-10)
    assert traced.cache_info().traces == 1
    np.testing.assert_allclose(traced(*args), _two_layers(*args), rtol=1e-10)  # NumPy in, out


def test_kernels_are_cached_by_source():
    fn = tj.trace(backend="cuda", fallback="raise")(lambda a: a * 3.0 + 1.0)
    fn(_normal(10))
    fn(_normal(12))  # a new shape of the same rank: a new trace, no new kernel
    assert fn.cache_info().kernels_compiled == 1


# every kernel kind once: flat, strided and broadcast elementwise with device helpers,
# libdevice math and float16, split full reductions (sum; argmax and max), block-per-row,
# thread-per-column, rowwise, a matmul epilogue, and the tiled matmul
PTX_CASES = ["elementwise-broadcast-strided", "elementwise-int-helpers", "elementwise-rounding",
             "elementwise-float16",
             "full-reduction", "full-argmax-nan", "axis-reduction", "column-reduction",
             "rowwise-softmax", "matmul-epilogue"]
_PTX_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, "tests")
    import test_cuda as t
    from tracejit.backends import cuda
    assert not cuda.SIMULATED
    for name in sys.argv[1:]:
        fn, args = t.CASES[name]
        exe = t.tj.trace(backend="cuda", fallback="raise")(fn)._executable(args, {})
        for ck in exe.kernels:
            ptx = cuda.compile_ptx(ck.kernel, ck.layouts, cc=(9, 0))
            assert ".target sm_90" in ptx and ".entry" in ptx, ptx[:200]
    for dtype in (np.float32, np.float64):
        assert ".target sm_90" in cuda.matmul_ptx(dtype, cc=(9, 0))
    print("ok")
""")


def test_every_kernel_kind_compiles_to_ptx_for_sm_90():
    env = dict(os.environ, TRACEJIT_CUDA_DEVICE="1")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-c", _PTX_SCRIPT, *PTX_CASES], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
