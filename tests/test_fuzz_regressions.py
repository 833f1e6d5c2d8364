"""Bugs the differential fuzzer (tests/fuzz) found, each kept as a named regression test."""

import numpy as np
import pytest
from conftest import check_against_numpy

import tracejit as tj

pytestmark = pytest.mark.filterwarnings("error", category=tj.FallbackWarning)


def test_numpy_scalar_computed_eagerly_is_returned_as_numpy_scalar():
    # np.invert(0) runs in NumPy during tracing and gives np.int64(-1): a captured NumPy scalar
    # must come back as a NumPy scalar, not as a 0-d array.
    check_against_numpy(lambda a: np.invert(0), np.ones(3, np.float32))


def test_captured_numpy_float64_scalar_is_strongly_typed():
    # np.float64 subclasses float; it used to hit the Python-float path and fail with KeyError.
    check_against_numpy(lambda a: a * np.add(2, 3.5), np.ones(3, np.float32))


@pytest.mark.parametrize("scalar", [np.float64(2.5), np.float32(2.5), np.int32(3), np.bool_(True)])
def test_numpy_scalar_argument(scalar):
    check_against_numpy(lambda a, s: a * s, np.ones(3, np.float32), scalar)


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.uint8, np.int32])
@pytest.mark.parametrize("shift", [np.left_shift, np.right_shift])
def test_shift_by_bit_width_or_more(dtype, shift):
    # NumPy defines shifts by >= the bit width (0, or -1 for negative values shifted right);
    # LLVM's shl/ashr leave them undefined.
    x = np.array([1, 2, 3, 5, 7, 0], dtype=dtype)
    if np.dtype(dtype).kind == "i":
        x[3] = -5
    amount = np.array([64, 65, 3, 70, 8, 200 % 128], dtype=dtype)
    check_against_numpy(shift, x, amount)


def test_python_operator_on_python_scalar_argument_gives_python_scalar():
    check_against_numpy(lambda a, s: s >> s, np.ones(3), 1)
    check_against_numpy(lambda a, s: (s * 2, s / 4, s < 3), np.ones(3), 5)


def test_numpy_function_of_python_scalar_is_strongly_typed():
    # np.exp(1.5) is an np.float64: adding it to float32 gives float64, unlike a Python float
    check_against_numpy(lambda a, s: np.exp(s) + a, np.ones(3, np.float32), 1.5)
    check_against_numpy(lambda a, s: np.add(s, s) * a, np.ones(3, np.int8), 3)


def test_python_bool_arithmetic_is_int_arithmetic():
    check_against_numpy(lambda a, b: (b + b, -b, ~b, b & b, b * 3), np.ones(2), True)


def test_inplace_operator_on_scalar_rebinds():
    def f(a, s, n):
        s += 1
        n += a  # a NumPy scalar += array rebinds to the broadcast result, as in NumPy
        return s, n
    check_against_numpy(f, np.ones(3, np.float32), 2, np.float32(1.5))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.uint64, np.bool_])
def test_integer_reciprocal_of_zero_matches_numpy(dtype):
    # NumPy's C loop gives a platform value (INT_MIN for int32/int64 on x86); kernels match it
    check_against_numpy(np.reciprocal, np.array([0, 1, 2, 0], dtype=dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", [lambda a: np.floor_divide(a, -2.5), lambda a: a % 1.5,
                                lambda a: 7 // a], ids=["floordiv", "mod", "rfloordiv"])
def test_float_floor_divide_and_remainder_compile(dtype, fn):
    # _divmod used math.fmod, which Numba does not type: every float // and % failed to compile
    check_against_numpy(fn, np.array([7, -7, 0.5, -0.0, 3, np.inf, 5, 2], dtype))


@pytest.mark.parametrize("fn", [lambda a: a ** 0.5, lambda a: np.power(a, 0.5),
                                lambda a: np.power(a, np.float32(0.5)), lambda a: a ** 2,
                                lambda a: a ** -1, lambda a: (a > 0) ** 2,
                                lambda a: np.power(a, np.full(a.shape, 0.5))],
                         ids=["op-half", "fn-half", "fn-f32-half", "op-2", "op-m1", "bool-2",
                              "array-half"])
def test_power_with_scalar_exponent_follows_numpy(fn):
    # NumPy takes sqrt for a scalar exponent of 0.5 ((-inf) ** 0.5 is nan, (-0.0) ** 0.5 is
    # -0.0) but pow for an array of 0.5s; `bool_array ** 2` is np.square, which gives int8.
    x = np.array([-np.inf, -0.0, 0.0, 4.0, np.nan, 2.0, -2.0, np.inf])
    check_against_numpy(fn, x)
    check_against_numpy(fn, x.astype(np.float32))


def test_returned_float16_constant_keeps_its_dtype():
    # np.rint(False) is np.float16(0.0); kernels compute float16 in float32, but a constant
    # returned as it is must come back as float16 (scalar or array)
    check_against_numpy(lambda a: (np.rint(False), a & a), np.array(-6, np.int32))
    check_against_numpy(lambda a: np.ones(3, np.float16), np.ones(2))


def test_astype_of_numpy_scalar_is_a_numpy_scalar():
    check_against_numpy(lambda s: s.astype(np.float64), np.float16(0.25))
    check_against_numpy(lambda a: np.isfinite(a + 0).astype(np.float64), 2.0)
    check_against_numpy(lambda a: np.signbit(a).astype(np.float32), np.array(3))
    check_against_numpy(lambda a: a.astype(np.float32), np.ones(()))


def test_clip_of_python_scalar_is_strongly_typed():
    # np.clip converts `a` with asarray: np.clip(-3, 0.0, float32) is float64, not float32
    check_against_numpy(lambda a: np.exp2(np.clip(-3, 0.0, a)), np.array(0.93, np.float32))
    check_against_numpy(lambda a, s: np.clip(s, 0.0, a), np.array(0.93, np.float32), 2.5)


@pytest.mark.parametrize("f", [np.maximum, np.minimum])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maximum_minimum_of_equal_zeros_return_the_second_operand(f, dtype):
    # fuzz seed 394: (np.maximum(-0.0, False)) ** -3 is +inf in NumPy; the sign of the zero
    # that maximum returns decides it.
    a = np.array([-0.0, 0.0, -0.0, 1.0, np.nan], dtype)
    b = np.array([0.0, -0.0, -0.0, np.nan, 1.0], dtype)
    check_against_numpy(f, a, b)
    check_against_numpy(lambda x, y: f(x, y) ** -3, a, b)
    check_against_numpy(lambda x: f(-0.0, x > 1) ** -3, np.zeros(3, dtype))


def test_astype_of_a_zero_d_reduction_or_element_is_a_numpy_scalar():
    # np.any(2).astype(np.bool) is np.True_ in NumPy, not a 0-d array
    fn = lambda a: (np.any(a).astype(np.bool_), a.sum().astype(np.float32),  # noqa: E731
                    a[1].astype(np.int8), a.max())
    check_against_numpy(fn, np.arange(3.0))
    check_against_numpy(lambda s: np.any(s).astype(np.bool_), 2)


@pytest.mark.parametrize("index", [lambda a: a[[1, 0, 1]], lambda a: a[:, [0, -3]],
                                   lambda a: a[np.array([2]), [0, 0]]],
                         ids=["rows", "columns", "two-arrays"])
def test_constant_index_array_out_of_range_raises_even_when_unused(index):
    # fuzz seed 550: an unused x[[1, 0, 1]] of a length-1 axis raises IndexError in NumPy; the
    # traced gather was dead code, so nothing checked the index
    def f(a):
        index(a)
        return a * 2
    check_against_numpy(f, np.ones((1, 2)))
    check_against_numpy(lambda a: index(a) * 2, np.ones((1, 2)))
    check_against_numpy(f, np.ones((3, 3)))


def test_merged_kernels_that_need_each_other_are_scheduled_apart():
    # the forward sum of x[:4] and the backward `* C` read C and fuse as siblings; tanh's kernel
    # also computes part of the gradient, which needs that merged kernel: a cycle of two kernels
    def f(a, c):
        x = np.concatenate([np.tanh(a), a[1:3]], axis=0)
        return (np.sum(x[:4]) * c + a).sum()

    a, c = np.linspace(-1, 1, 4), np.array([1.5])
    value, grad = tj.value_and_grad(f)(a, c)
    t = np.tanh(a)
    # the value cancels to ~1e-15 from terms of size 1: any order of the sum is within 1e-14
    np.testing.assert_allclose(value, f(a, c), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, 4 * c[0] * (1 - t * t) + 1, rtol=1e-12)


def test_slice_assignment_of_a_value_computed_with_its_base_in_one_kernel():
    # t2 and t3 come from one kernel; t3's slice of t2[::-1] used to be stored over t2's own
    # buffer while that kernel was still storing t2 there, element by element.
    def f(a):
        t2 = np.maximum(np.positive(a), a)
        t2[::-1] = np.degrees(t2)
        return t2

    check_against_numpy(f, np.linspace(-2, 3, 36).reshape(6, 6))
