"""Scalar functions with NumPy's exact semantics, for templates whose Python operator differs
(integer division by zero gives 0, float floor division and remainder follow npy_divmod)."""

import numpy as np
from numba import njit

_jit = njit(error_model="numpy", cache=False)

@_jit
def _ifloordiv(a, b):
    if b == 0:
        return a - a
    return a // b

@_jit
def _imod(a, b):
    if b == 0:
        return a - a
    return a % b

@_jit
def _divmod(a, b):
    mod = np.fmod(a, b)
    div = (a - mod) / b
    if mod:
        if (b < 0) != (mod < 0):
            mod += b
            div -= 1.0
    else:
        mod = np.copysign(0.0, b)
    if div:
        floordiv = np.floor(div)
        if div - floordiv > 0.5:
            floordiv += 1.0
    else:
        floordiv = np.copysign(0.0, a / b)
    return floordiv, mod

@_jit
def _ffloordiv(a, b):
    if b == 0:
        return a / b
    return _divmod(a, b)[0]

@_jit
def _fmod(a, b):
    if b == 0:
        return np.nan
    return _divmod(a, b)[1]

@_jit
def _ipow(a, b):
    if b < 0:
        return (a - a) + (1 if a == 1 else (0 if a != -1 else (1 if b % 2 == 0 else -1)))
    result = a - a + 1
    base = a
    while b:
        if b & 1:
            result *= base
        base *= base
        b >>= 1
    return result

@_jit
def _irecip(a, at_zero):
    if a == 0:
        return at_zero + (a - a)
    if a == 1 or a == -1:
        return a
    return a - a


@_jit
def _lshift(a, b, bits):
    if b < 0 or b >= bits:  # NumPy defines over-wide shifts; LLVM leaves them undefined
        return a - a
    return a << b


@_jit
def _rshift(a, b, bits):
    if b < 0 or b >= bits:
        return ~(a - a) if a < 0 else a - a
    return a >> b


@_jit
def _fpow_scalar_exponent(a, b):
    if b == 0.5:  # NumPy: sqrt, so (-inf) ** 0.5 is nan and (-0.0) ** 0.5 is -0.0
        return np.sqrt(a)
    return a ** b
