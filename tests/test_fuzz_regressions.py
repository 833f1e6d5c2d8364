"""Bugs the differential fuzzer (tests/fuzz) found, each kept as a named regression test."""

import numpy as np
import pytest
from conftest import check_against_numpy


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
