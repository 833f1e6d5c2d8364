"""Vector math for CPU kernels: transcendental functions without libm calls, so that LLVM
vectorises the fused loops around them (Numba calls scalar libm, and there is no SVML here).

Each function is range reduction plus a polynomial, with bit manipulation through integer views
and selects instead of branches. float64 follows fdlibm/musl (log family, cosh) and SLEEF/Cephes
(exp family, carrying the reduced argument in two doubles); sinh and tanh compute in two doubles.
float32 exp, log and tanh run in float32 with Cephes' polynomials (eight lanes), the other
float32 functions compute in float64 and round once. The op table (ops.VECTOR_MATH) says which
loop dtypes use which function, by name (`vexp(x)`, ...); `LIBM` maps each name to the NumPy
function a backend without vector math (CUDA) uses instead. Accuracy and the functions left on
libm: see bench/README.md and tests/test_vecmath.py.
"""

import decimal
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from .scalar_helpers import _expf, _fma32

# Every function and helper is compiled once per process and signature, and LLVM inlines it
# (alwaysinline) into the kernel loops that call it, where the loop is vectorised. Numba's own
# inlining (inline="always") would type the helpers again at each call site: seconds per kernel.
_inline = njit(error_model="numpy", cache=False, forceinline=True, no_cpython_wrapper=True,
               no_cfunc_wrapper=True)


# --------------------------------------------------------------------------- bit views, fma

@intrinsic
def _bits(typingctx, x):
    """The int64 with a float64's bits (a register move, vectorisable)."""
    if x != types.float64:
        return None
    return types.int64(x), lambda context, builder, sig, args: builder.bitcast(
        args[0], ir.IntType(64))


@intrinsic
def _from_bits(typingctx, i):
    """The float64 with an int64's bits."""
    if i != types.int64:
        return None
    return types.float64(i), lambda context, builder, sig, args: builder.bitcast(
        args[0], ir.DoubleType())


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma: one instruction with FMA3)."""
    if not (a == b == c == types.float64):
        return None

    def codegen(context, builder, sig, args):
        f64 = ir.DoubleType()
        fma = builder.module.declare_intrinsic("llvm.fma", [f64], ir.FunctionType(f64, [f64] * 3))
        return builder.call(fma, args)

    return types.float64(a, b, c), codegen


@_inline
def _two_sum(a, b):
    """(s, e): s = a + b rounded, e what it lost (Knuth)."""
    s = a + b
    t = s - a
    return s, (a - (s - t)) + (b - t)


@_inline
def _fast_two_sum(a, b):
    """_two_sum for |a| >= |b| (or a == 0), in three operations."""
    s = a + b
    return s, b - (s - a)


_MAGIC = 6755399441055744.0  # 1.5 * 2**52: x + MAGIC - MAGIC rounds |x| < 2**51 to an integer
_MAGIC_BITS = 0x4338000000000000
_DEFAULT_NAN_BITS = -(1 << 51)  # glibc's NaN for (-2)**0.5: x86's default NaN, sign bit set
_TINY = 2.0**-54  # below this, expm1, log1p, sinh and tanh are x itself (and keep -0.0)


@_inline
def _pow2(n):
    """2**n for an integral float n in [-1022, 1023], built from bits: AVX2 has no int64 to
    double conversion, so integers stay floats and reach the exponent field through MAGIC."""
    return _from_bits((_bits(n + _MAGIC) - _MAGIC_BITS + 1023) << 52)


@_inline
def _scale(y, n):
    """y * 2**n for n in [-1076, 1024], in two halves so that subnormal results round once."""
    ni = _bits(n + _MAGIC) - _MAGIC_BITS
    h = ni >> 1
    return y * _from_bits((h + 1023) << 52) * _from_bits((ni - h + 1023) << 52)


# --------------------------------------------------------------------------- exp family

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # low 21 bits zero
_LN2_LO = 1.90821492927058770002e-10


@_inline
def _reduce_ln2(x):
    """(r, c, n): x = n * ln2 + r + c, n an integral float, |r| <= ln2/2, c what rounding r
    lost; |x| < 2**50."""
    n = (x * _LOG2E + _MAGIC) - _MAGIC
    r1 = _fma(n, -_LN2_HI, x)  # exact
    r = _fma(n, -_LN2_LO, r1)
    return r, _fma(n, -_LN2_LO, r1 - r), n


@_inline
def _expm1_series(r):
    """(expm1(r) - r - r*r/2) / r**3 by Taylor's series to r**13, in Estrin's order (a third of
    Horner's latency: long dependency chains, not operations, bound power and sinh)."""
    r2 = r * r
    r4 = r2 * r2
    q03 = _fma(r2, _fma(r, 1.0 / 720.0, 1.0 / 120.0), _fma(r, 1.0 / 24.0, 1.0 / 6.0))
    q47 = _fma(r2, _fma(r, 1.0 / 3628800.0, 1.0 / 362880.0), _fma(r, 1.0 / 40320.0, 1.0 / 5040.0))
    q8 = _fma(r2, 1.0 / 6227020800.0, _fma(r, 1.0 / 479001600.0, 1.0 / 39916800.0))
    return _fma(r4 * r4, q8, _fma(r4, q47, q03))


@_inline
def _expm1_reduced(x):
    """(s, lo, n) with exp(x) = 2**n * (1 + s + lo), s + lo = expm1(r) for the reduced argument
    |r| <= ln2/2 carried as two doubles (expm1 needs it where 2**n * (1 + s) - 1 cancels);
    |x| < 2**50. expm1(r) is its Taylor series to r**13 (truncation below 1e-19 relative)."""
    r, c, n = _reduce_ln2(x)
    q = _fma(_expm1_series(r), r, 0.5)
    p = r * r * q
    s = r + p
    return s, ((r - s) + p) + c * (1.0 + s), n


@_inline
def _exp64(x):
    s, lo, n = _expm1_reduced(min(max(x, -746.0), 710.0))  # beyond: 0 and inf
    y = _scale(1.0 + (s + lo), n)
    return x if x != x else y


@_inline
def _expm1_64(x):
    s, lo, n = _expm1_reduced(min(max(x, -40.0), 710.0))  # expm1(-40) is -1 in float64
    t = _pow2(n - 1.0)  # 2**n * (1 + s + lo) - 1, halved so that n = 1024 does not overflow
    y = 2.0 * _fma(t, lo, _fma(t, s, t - 0.5))
    y = x if abs(x) < _TINY else y
    return x if x != x else y


# cosh follows fdlibm's formulas (glibc's, so NumPy's), from one reduction;
# above log(DBL_MAX) fdlibm squares exp(|x| / 2) (1.5 ulp), where this scales exp(|x|) exactly


@_inline
def _exp_parts(v):
    """For 0 <= v <= 710.5: expm1(v) (valid for v <= 22), exp(v) / 2, and what rounding the
    second lost."""
    s, lo, n = _expm1_reduced(v)
    t = _pow2(n - 2.0)  # 2**(n - 2): exp(710.5) / 2 is finite, 2**1024 is not
    quarter_exp = _fma(t, s + lo, t)
    lost = _fma(t, s, t - quarter_exp) + t * lo  # t - quarter_exp is exact (Sterbenz)
    return 4.0 * _fma(t, lo, _fma(t, s, t - 0.25)), 2.0 * quarter_exp, 2.0 * lost


@_inline
def _cosh64(x):
    a = abs(x)
    e, half_exp, half_lost = _exp_parts(min(a, 710.5))
    w = 1.0 + e
    mid = half_exp + (half_lost + 0.5 / (half_exp + half_exp))  # exp(a) / 2 + exp(-a) / 2
    y = 1.0 + (e * e) / (w + w) if a < 0.34657359027997264 else mid
    y = y if a < 22.0 else half_exp
    return a if x != x else y


# sinh and tanh within half an ulp or so (glibc's are up to 1.7 and 1.2 ulp off): expm1 of the
# reduced argument with r*r/2 exact, exp(v)/4 - 1/4 as two doubles, one quotient of two-double
# values corrected by its fma residual

@_inline
def _expm1_dd(r, c):
    """expm1(r + c) as s + lo to about 2**-60 relative, for |r| <= ln2/2 and |c| < 2**-40:
    r*r/2 split exactly, the rest of the series (to r**13) rounded once."""
    half_r = 0.5 * r
    h2 = half_r * r
    h2_lo = _fma(half_r, r, -h2)
    p, p_lo = _fast_two_sum(h2, (r * h2) * (2.0 * _expm1_series(r)))
    s, e = _fast_two_sum(r, p)
    return s, e + (p_lo + h2_lo) + c * (1.0 + s)


@_inline
def _quarter_expm1(v, c):
    """exp(v) / 4 - c as two doubles, for 0 <= v <= 710.5 and c = 1/4 (exact below v = 38,
    where tanh is 1 to the last bit) or 0."""
    r, lost, n = _reduce_ln2(v)
    s, lo = _expm1_dd(r, lost)
    t = _pow2(n - 2.0)  # 2**(n - 2): exp(710.5) / 4 is finite, 2**1024 is not
    hi, e = _two_sum(t - c, t * s)  # t - c and t * s exact
    return hi, e + t * lo


@_inline
def _dd_quotient(nh, nl, dh, dl):
    """(nh + nl) / (dh + dl) as two doubles: one division, corrected by its fma residual."""
    inv = 1.0 / dh
    q = nh * inv
    return q, (_fma(-q, dh, nh) + (nl - q * dl)) * inv


@_inline
def _sinh64(x):
    a = abs(x)
    mid = a < 22.0  # above, sinh is exp(a) / 2 (exp(-a) is below its last bit)
    ah, al = _quarter_expm1(min(a, 710.5), 0.25 if mid else 0.0)
    # sinh = (E - 1/E) / 2 = 2 (A + (A / (A + 1/4)) / 4) with A = (E - 1) / 4: no cancellation
    dh, dl = _two_sum(ah, 0.25)
    qh, ql = _dd_quotient(ah, al, dh, dl + al)
    w = 0.25 if mid else 0.0
    h, e = _two_sum(ah, w * qh)
    y = np.copysign(2.0 * (h + (e + (al + w * ql))), x)  # overflows in the last product only
    y = x if a < _TINY else y
    return x if x != x else y


@_inline
def _tanh64(x):
    a = abs(x)
    # tanh = (E - 1) / (E + 1) = A / (A + 1/2) with E = exp(2a), A = (E - 1) / 4
    ah, al = _quarter_expm1(min(a + a, 44.0), 0.25)
    dh, dl = _two_sum(ah, 0.5)
    qh, ql = _dd_quotient(ah, al, dh, dl + al)
    y = np.copysign(qh + ql, x)
    y = x if a < _TINY else y
    return x if x != x else y


# --------------------------------------------------------------------------- log family
# fdlibm/musl: x = 2**k * (1 + f) with 1 + f in [sqrt(2)/2, sqrt(2)), s = f / (2 + f),
# log(1 + f) = f - f*f/2 + s * (f*f/2 + R(s*s))

_LG1, _LG2, _LG3 = 6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01
_LG4, _LG5, _LG6 = 2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT_HALF_HIGH = 0x3FE6A09E00000000  # high word of sqrt(2)/2, where the reduction splits
_EXP_FIELD = 0x000FFFFFFFFFFFFF
_TWO52_BITS = 0x4330000000000000


@_inline
def _log_split(x):
    """(f, k) with x = 2**k * (1 + f), 1 + f in [sqrt(2)/2, sqrt(2)); x > 0 finite (subnormals
    are scaled by 2**54 first). k is a float, read from the exponent field through 2**52."""
    sub = x < 2.2250738585072014e-308
    x = x * 18014398509481984.0 if sub else x
    b = _bits(x) + (0x3FF0000000000000 - _SQRT_HALF_HIGH)
    k = _from_bits((b >> 52) | _TWO52_BITS) - (4503599627370496.0 + 1023.0)
    k = k - 54.0 if sub else k
    f = _from_bits((b & _EXP_FIELD) + _SQRT_HALF_HIGH) - 1.0
    return f, k


@_inline
def _log_poly(f):
    """(hfsq, s * (hfsq + R)): log(1 + f) = f - hfsq + the second."""
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    return hfsq, s * (hfsq + (t2 + t1))


@_inline
def _log_special(x, y):
    """log's value at the edges of its domain: nan below 0 and for nan, -inf at 0, inf at inf."""
    y = -np.inf if x == 0.0 else y
    y = np.nan if x < 0.0 else y
    return x if (x != x or x == np.inf) else y


@_inline
def _log64(x):
    f, k = _log_split(x)
    hfsq, tail = _log_poly(f)
    return _log_special(x, tail + k * _LN2_LO - hfsq + f + k * _LN2_HI)


@_inline
def _log1p64(x):
    u = 1.0 + x
    f, k = _log_split(u)
    # the rounding of 1 + x, carried as a correction while it matters (musl's log1p)
    c = (1.0 - (u - x) if k >= 2.0 else x - (u - 1.0)) / u
    c = c if k < 54.0 else 0.0
    hfsq, tail = _log_poly(f)
    y = tail + (k * _LN2_LO + c) - hfsq + f + k * _LN2_HI
    y = x if abs(x) < _TINY else y
    return _log_special(u, y) if u <= 0.0 or x == np.inf else (x if x != x else y)


_LOW_WORD_MASK = -(1 << 32)


@_inline
def _log_hi_lo(f):
    """log(1 + f) as hi + lo, hi with its low 32 bits zero so that hi * (a 21-bit constant)
    is exact (musl's log2/log10)."""
    hfsq, tail = _log_poly(f)
    hi = _from_bits(_bits(f - hfsq) & _LOW_WORD_MASK)
    return hi, f - hi - hfsq + tail


_IVLN2_HI, _IVLN2_LO = 1.44269504072144627571e+00, 1.67517131648865118353e-10
_IVLN10_HI, _IVLN10_LO = 4.34294481878168880939e-01, 2.50829467116452752298e-11
_LOG10_2_HI, _LOG10_2_LO = 3.01029995663611771306e-01, 3.69423907715893078616e-13


@_inline
def _log2_64(x):
    f, k = _log_split(x)
    hi, lo = _log_hi_lo(f)
    val_hi = hi * _IVLN2_HI
    val_lo = (lo + hi) * _IVLN2_LO + lo * _IVLN2_HI
    w = k + val_hi
    val_lo += (k - w) + val_hi
    return _log_special(x, val_lo + w)


@_inline
def _log10_64(x):
    f, k = _log_split(x)
    hi, lo = _log_hi_lo(f)
    val_hi = hi * _IVLN10_HI
    y2 = k * _LOG10_2_HI
    val_lo = k * _LOG10_2_LO + (lo + hi) * _IVLN10_LO + lo * _IVLN10_HI
    w = y2 + val_hi
    val_lo += (y2 - w) + val_hi
    return _log_special(x, val_lo + w)


# --------------------------------------------------------------------------- float32
# NumPy has AVX2 loops for float32 exp, log and tanh; to keep up, these three run in float32
# itself (eight lanes instead of four) with Cephes' polynomials. The others compute in float64.

_F32_MAGIC_BITS = 0x4B400000  # 1.5 * 2**23, for rounding float32 to an integer


@intrinsic
def _bits32(typingctx, x):
    if x != types.float32:
        return None
    return types.int32(x), lambda context, builder, sig, args: builder.bitcast(
        args[0], ir.IntType(32))


@intrinsic
def _from_bits32(typingctx, i):
    if i != types.int32:
        return None
    return types.float32(i), lambda context, builder, sig, args: builder.bitcast(
        args[0], ir.FloatType())


_f = np.float32


@_inline
def _log32(x):
    """Cephes' logf: x = 2**k * m with m in [sqrt(2)/2, sqrt(2)), log(m) by a degree-9
    polynomial in m - 1. Subnormal arguments are scaled by 2**25 first."""
    sub = x < _f(1.17549435e-38)
    xs = x * _f(33554432.0) if sub else x
    b = np.int32(_bits32(xs) + np.int32(0x3F800000 - 0x3F3504F3))  # Numba widens int32 sums
    k = _from_bits32(np.int32((b >> 23) | 0x4B000000)) - _f(8388608.0 + 127.0)
    k = k - _f(25.0) if sub else k
    f = _from_bits32(np.int32((b & 0x007FFFFF) + 0x3F3504F3)) - _f(1.0)
    z = f * f
    y = _f(7.0376836292e-2)
    y = y * f + _f(-1.1514610310e-1)
    y = y * f + _f(1.1676998740e-1)
    y = y * f + _f(-1.2420140846e-1)
    y = y * f + _f(1.4249322787e-1)
    y = y * f + _f(-1.6668057665e-1)
    y = y * f + _f(2.0000714765e-1)
    y = y * f + _f(-2.4999993993e-1)
    y = y * f + _f(3.3333331174e-1)
    y = y * f * z
    y = y + k * _f(-2.12194440e-4)
    y = y - _f(0.5) * z
    y = f + y + k * _f(0.693359375)
    y = _f(-np.inf) if x == _f(0.0) else y
    y = _f(np.nan) if x < _f(0.0) else y
    return x if (x != x or x == _f(np.inf)) else y


@_inline
def _exp32(x):
    """scalar_helpers' float32 exp, compiled once here (it is inlined by Numba where used)."""
    return _expf(x)


@_inline
def _tanh32(x):
    """Cephes' tanhf: an odd polynomial below 0.625, 1 - 2 / (exp(2|x|) + 1) above."""
    a = abs(x)
    z = x * x
    p = _f(-5.70498872745e-3)
    p = p * z + _f(2.06390887954e-2)
    p = p * z + _f(-5.37397155531e-2)
    p = p * z + _f(1.33314422036e-1)
    p = p * z + _f(-3.33332819422e-1)
    small = p * z * x + x
    e = _expf(min(a + a, _f(40.0)))
    big = np.copysign(_f(1.0) - _f(2.0) / (e + _f(1.0)), x)
    y = small if a < _f(0.625) else big
    y = x if a < _f(2.0**-12) else y  # tanh(x) rounds to x (and keeps -0.0)
    return x if x != x else y


_ATAN_HI = (4.63647609000806093515e-01, 7.85398163397448278999e-01, 9.82793723247329054082e-01,
            1.57079632679489655800e+00)
_ATAN_LO = (2.26987774529616870924e-17, 3.06161699786838301793e-17, 1.39033110312309984516e-17,
            6.12323399573676603587e-17)
_AT = (3.33333333333329318027e-01, -1.99999999998764832476e-01, 1.42857142725034663711e-01,
       -1.11111104054623557880e-01, 9.09088713343650656196e-02, -7.69187620504482999495e-02,
       6.66107313738753120669e-02, -5.83357013379057348645e-02, 4.97687799461593236017e-02,
       -3.65315727442169155270e-02, 1.62858201153657823623e-02)


@_inline
def _arctan64(x):
    """fdlibm's atan without branches: within an ulp of glibc's (correctly rounded) atan."""
    a = abs(x)
    # fdlibm: |x| folded towards 0 by atan(x) = atan(c) + atan((x - c) / (1 + x c)), c in
    # {0.5, 1, 1.5, inf}, picked by range (one division, operands by select)
    r0 = a < 0.6875
    r1 = a < 1.1875
    r2 = a < 2.4375
    num = 2.0 * a - 1.0 if r0 else (a - 1.0 if r1 else (a - 1.5 if r2 else -1.0))
    den = 2.0 + a if r0 else (a + 1.0 if r1 else (1.0 + 1.5 * a if r2 else a))
    hi = _ATAN_HI[0] if r0 else (_ATAN_HI[1] if r1 else (_ATAN_HI[2] if r2 else _ATAN_HI[3]))
    lo = _ATAN_LO[0] if r0 else (_ATAN_LO[1] if r1 else (_ATAN_LO[2] if r2 else _ATAN_LO[3]))
    small = a < 0.4375
    t = a if small else num / den
    z = t * t
    w = z * z
    s1 = z * (_AT[0] + w * (_AT[2] + w * (_AT[4] + w * (_AT[6] + w * (_AT[8] + w * _AT[10])))))
    s2 = w * (_AT[1] + w * (_AT[3] + w * (_AT[5] + w * (_AT[7] + w * _AT[9]))))
    y = t - t * (s1 + s2) if small else hi - ((t * (s1 + s2) - lo) - t)
    y = _ATAN_HI[3] + _ATAN_LO[3] if a >= 7.378697629483821e19 else y  # 2**66
    y = a if a < 7.450580596923828e-09 else y
    y = np.copysign(y, x)
    return x if x != x else y


@_inline
def _arctan_via64(x):
    """arctan for float32 arguments, in float64: |x| > 1 folds to pi/2 - arctan(1/|x|), two
    halvings arctan(t) = 2 arctan(t / (1 + sqrt(1 + t*t))) bring t below tan(pi/16), then the
    Taylor series to t**15 (truncation below 1e-13). A few float64 ulps: float32 only."""
    a = abs(x)
    big = a > 1.0
    t = 1.0 / a if big else a
    t = t / (1.0 + np.sqrt(1.0 + t * t))
    t = t / (1.0 + np.sqrt(1.0 + t * t))
    z = t * t
    p = z * (-1.0 / 15.0) + 1.0 / 13.0
    p = p * z - 1.0 / 11.0
    p = p * z + 1.0 / 9.0
    p = p * z - 1.0 / 7.0
    p = p * z + 1.0 / 5.0
    p = p * z - 1.0 / 3.0
    y = 4.0 * (t + t * z * p)
    y = 1.5707963267948966 - y if big else y
    # the sign by a select, not copysign: LLVM folds a float16 rounding of copysign(y, x) for
    # an integer x into a float64-to-float16 conversion, a libcall the JIT cannot link
    y = -y if x < 0.0 else y
    return x if x != x or x == 0.0 else y


@_inline
def _arctan32(x):
    return np.float32(_arctan_via64(np.float64(x)))


# --------------------------------------------------------------------------- sin and cos
# x = n * pi/2 + r with |r| <= pi/4, r carried as two doubles, then fdlibm's kernels for sin(r)
# and cos(r), picked by n mod 4. One reduction for every argument, Payne-Hanek without branches:
# x = m * 2**s with m the 53-bit integer significand, so only the bits of 2/pi that make
# m * 2**s * bit smaller than 4 matter; a table indexed by x's exponent holds them as four
# doubles of 52-53 bits (scaled by 2**s), each product m * part splits exactly with an fma, the
# integer parts fall away mod 4, and the fraction is summed with its rounding errors carried
# (Ogita-Rump-Oishi Sum2), so even the double nearest a multiple of pi/2 keeps its digits. The
# table lookups are a gather in the vector loop.

_PIO2_1, _PIO2_2 = 1.5707963267948966, 6.123233995736766e-17  # pi/2 to 106 bits
# 2/pi to 1216 bits (fdlibm's ipio2 table, in hex)
_TWO_OVER_PI_BITS = int(
    "a2f9836e4e441529fc2757d1f534ddc0db6295993c439041fe5163abdebbc561b7246e3a424dd2e006492eea"
    "09d1921cfe1deb1cb129a73ee88235f52ebb4484e99c7026b45f7e413991d639835339f49c845f8bbdf9283b"
    "1ff897ffde05980fef2f118b5a0a6d1f6d367ecf27cb09b74f463f669e5fea2d7527bac7ebe5f17b3d0739f7"
    "8a5292ea6bfb5fb11f8d5d0856033046fc7b6bab", 16)
_HUGE_E0 = 1023 - 28  # first exponent field of the table; below, sin(x) is x and cos(x) is 1


def _two_over_pi_window(s, first, last):
    """The bits first..last (after the binary point) of 2/pi as a float, times 2**s."""
    top = 1216
    window = (_TWO_OVER_PI_BITS >> (top - last)) & ((1 << (last - first + 1)) - 1)
    return math.ldexp(float(window), s - last)  # window < 2**53: exact


def _payne_hanek_table(exponents, bias, edges, dtype):
    """Per exponent field e (x = m * 2**(e - bias)): the four windows of 2/pi's bits that
    products with the significand m need, bits s + edges[i] .. s + edges[i + 1] - 1 for
    s = e - bias, each exact in `dtype`; as four rows over the exponents."""
    rows = []
    for e in exponents:
        s = e - bias
        rows.append([_two_over_pi_window(s, max(s + a, 1), s + b - 1) if s + b - 1 >= 1 else 0.0
                     for a, b in zip(edges, edges[1:])])
    return np.array(rows, dtype=dtype).T.copy()


_PH0, _PH1, _PH2, _PH3 = _payne_hanek_table(range(_HUGE_E0, 2047), 1075,
                                             (-1, 51, 104, 157, 210), np.float64)
_PH_ROWS = _PH0.size


@_inline
def _rint(v):
    """v rounded to an integer, |v| < 2**51."""
    return (v + _MAGIC) - _MAGIC


@_inline
def _rem_pio2(x):
    """(hi, lo, q): x = n * pi/2 + hi + lo, |hi + lo| <= pi/4, hi = hi + lo rounded, q = n mod 4
    (an int); for 2**-28 <= |x| < inf (garbage elsewhere)."""
    b = _bits(x)
    row = min(max(((b >> 52) & 0x7FF) - _HUGE_E0, 0), _PH_ROWS - 1)
    m = _from_bits((b & _EXP_FIELD) | _TWO52_BITS)  # the significand as an integer
    h0, h1, h2, h3 = _PH0[row], _PH1[row], _PH2[row], _PH3[row]
    p0 = m * h0  # below 2**55, on the grid 2**-50
    v = p0 * 0.25
    v = v if v >= 4503599627370496.0 else (v + 4503599627370496.0) - 4503599627370496.0
    f0 = (p0 - 4.0 * v) + _fma(m, h0, -p0)  # m * h0 mod 4, exact (|f0| <= 4 on 2**-50)
    p1 = m * h1
    a, e1 = _two_sum(f0, p1)
    n = _rint(a)
    p2 = m * h2
    s, e2 = _two_sum(a - n, _fma(m, h1, -p1))  # the terms left are below 2**-49
    s, e3 = _two_sum(s, e1)
    s, e4 = _two_sum(s, p2)
    c = ((e2 + e3) + e4) + (_fma(m, h2, -p2) + m * h3)
    hi = s + c
    lo = c - (hi - s)  # hi + lo: the fraction of x * 2/pi, |hi| <= 1/2 + 2**-48
    y = hi * _PIO2_1
    lo = _fma(hi, _PIO2_1, -y) + _fma(hi, _PIO2_2, lo * _PIO2_1)
    r = y + lo
    lo = lo - (r - y)
    q = _bits(n + _MAGIC) & 3
    neg = x < 0.0
    return (-r if neg else r), (-lo if neg else lo), (-q if neg else q)


_S1, _S2, _S3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
_S4, _S5, _S6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
_C1, _C2, _C3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
_C4, _C5, _C6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11


@_inline
def _sin_kernel(x, y):
    """fdlibm's __kernel_sin: sin(x + y) for |x + y| <= pi/4, y the tail of x."""
    z = x * x
    v = z * x
    r = _S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))
    return x - ((z * (0.5 * y - v * r) - y) - v * _S1)


@_inline
def _cos_kernel(x, y):
    """fdlibm's __kernel_cos (musl's form): cos(x + y) for |x + y| <= pi/4."""
    z = x * x
    w = z * z
    r = z * (_C1 + z * (_C2 + z * _C3)) + w * w * (_C4 + z * (_C5 + z * _C6))
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + (z * r - x * y))


@_inline
def _by_quadrant(s, c, q):
    """sin(n * pi/2 + r) from s = sin(r), c = cos(r) and q = n mod 4."""
    y = c if q & 1 else s
    return -y if q & 2 else y


@_inline
def _sin64_any(x):
    hi, lo, q = _rem_pio2(x)
    y = _by_quadrant(_sin_kernel(hi, lo), _cos_kernel(hi, lo), q)
    y = x if abs(x) < 7.450580596923828e-09 else y  # 2**-27: sin(x) rounds to x (keeps -0.0)
    return y if abs(x) < np.inf else x - x  # nan for inf and nan


@_inline
def _cos64_any(x):
    hi, lo, q = _rem_pio2(x)
    y = _by_quadrant(_sin_kernel(hi, lo), _cos_kernel(hi, lo), q + 1)
    y = 1.0 if abs(x) < 7.450580596923828e-09 else y
    return y if abs(x) < np.inf else x - x


# float32 sin and cos run in float32 (eight lanes: float64 would halve the loop's width) and
# take one path for every argument: Payne-Hanek as above with the 24-bit significand and four
# float32 windows of 2/pi per exponent (23-24 bits each, so each product splits exactly with an
# fma), the fraction summed with its rounding errors carried (Ogita-Rump-Oishi Sum2): about
# 2**-60 absolute. Then Cephes' float32 kernels with the tail.

_F32_MAGIC = np.float32(12582912.0)  # 1.5 * 2**23
_E32_0 = 127 - 13  # first exponent field of the table; below, sin(x) is x and cos(x) is 1


_PHF0, _PHF1, _PHF2, _PHF3 = _payne_hanek_table(range(_E32_0, 255), 150,
                                                 (-1, 22, 46, 70, 94), np.float32)
_PHF_ROWS = _PHF0.size


@_inline
def _rem_pio2_32(x):
    """(hi, lo, q): x = n * pi/2 + hi + lo, |hi + lo| <= pi/4, q = n mod 4 (an int32); for
    2**-13 <= |x| < inf (garbage elsewhere)."""
    b = _bits32(x)
    row = min(max(np.int32(((b >> 23) & 0xFF) - _E32_0), np.int32(0)), np.int32(_PHF_ROWS - 1))
    m = _from_bits32(np.int32((b & 0x7FFFFF) | 0x4B000000))  # the significand as an integer
    t0, t1, t2, t3 = _PHF0[row], _PHF1[row], _PHF2[row], _PHF3[row]
    p0 = m * t0  # below 2**26, on the grid 2**-21
    v = p0 * _f(0.25)
    v = v if v >= _f(8388608.0) else (v + _f(8388608.0)) - _f(8388608.0)
    f0 = (p0 - _f(4.0) * v) + _fma32(m, t0, -p0)  # m * t0 mod 4, exact
    p1 = m * t1
    a, e1 = _two_sum(f0, p1)
    shifted = a + _F32_MAGIC
    n = shifted - _F32_MAGIC
    p2 = m * t2
    s, e2 = _two_sum(a - n, _fma32(m, t1, -p1))  # the terms left are below 2**-20
    s, e3 = _two_sum(s, e1)
    s, e4 = _two_sum(s, p2)
    c = ((e2 + e3) + e4) + (_fma32(m, t2, -p2) + m * t3)
    hi = s + c
    lo = c - (hi - s)
    y = hi * _f(1.5707964)  # times pi/2 = 1.5707964 - 4.371139e-08 (48 bits)
    lo = _fma32(hi, _f(1.5707964), -y) + _fma32(hi, _f(-4.371139e-08), lo * _f(1.5707964))
    r = y + lo
    lo = lo - (r - y)
    q = np.int32(_bits32(shifted) & 3)
    neg = x < _f(0.0)
    return (-r if neg else r), (-lo if neg else lo), (-q if neg else q)


@_inline
def _sin_kernel_f32(x, y):
    """Cephes' sinf polynomial: sin(x + y) for |x + y| <= pi/4, y the tail of x."""
    z = x * x
    p = _fma32(_fma32(z, _f(-1.9515295891e-4), _f(8.3321608736e-3)), z, _f(-1.6666654611e-1))
    return x + _fma32(x * z, p, y)


@_inline
def _cos_kernel_f32(x, y):
    """Cephes' cosf polynomial: cos(x + y) for |x + y| <= pi/4."""
    z = x * x
    q = _fma32(_fma32(z, _f(2.443315711809948e-5), _f(-1.388731625493765e-3)), z,
               _f(4.166664568298827e-2))
    return _f(1.0) + _fma32(z, _fma32(z, q, _f(-0.5)), -x * y)


@_inline
def _sin32_any(x):
    hi, lo, q = _rem_pio2_32(x)
    y = _by_quadrant(_sin_kernel_f32(hi, lo), _cos_kernel_f32(hi, lo), q)
    y = x if abs(x) < _f(2.0**-12) else y  # sin(x) rounds to x (and keeps -0.0)
    return y if abs(x) < _f(np.inf) else x - x


@_inline
def _cos32_any(x):
    hi, lo, q = _rem_pio2_32(x)
    y = _by_quadrant(_sin_kernel_f32(hi, lo), _cos_kernel_f32(hi, lo), np.int32(q + np.int32(1)))
    y = _f(1.0) if abs(x) < _f(2.0**-12) else y
    return y if abs(x) < _f(np.inf) else x - x


# --------------------------------------------------------------------------- sin and cos, fast
# The table reduction costs as much as the rest (float32: four gathers an element, which this
# CPU does as scalar loads), yet kernels almost never meet arguments that need it. So sin and cos
# reduce with Cody-Waite (no table) below a bound, and reach the table through a call that LLVM
# vectorises into one call per vector (a vector-function-abi-variant): that call tests all lanes
# at once and runs the table reduction only for the lanes past the bound, one by one. This is
# the branch NumPy's own SIMD loops take; per element, a kernel cannot.

_VECTOR_WIDTHS = (2, 4, 8, 16)


def _all_lanes(b, test):
    """i1: `test` (a vector of i1) holds in every lane."""
    lanes = test.type.count
    mask = b.bitcast(test, ir.IntType(lanes))
    return b.icmp_unsigned("==", mask, ir.Constant(ir.IntType(lanes), (1 << lanes) - 1))


def _all_below(bound):
    """The lane test of the argument reductions: every |x| < bound (NaN is not); the vector to
    return then is the last argument (x itself, or the fast path's result passed along)."""

    def test(b, args):
        x = args[0]
        small = b.and_(b.fcmp_ordered("<", x, ir.Constant(x.type, [bound] * x.type.count)),
                       b.fcmp_ordered(">", x, ir.Constant(x.type, [-bound] * x.type.count)))
        return _all_lanes(b, small), args[-1]

    return test


def _all_flags_clear(b, args):
    """The lane test of power: no lane flags itself (args: x, y, flag, the fast result)."""
    zero = ir.Constant(args[2].type, [0.0] * args[2].type.count)
    return _all_lanes(b, b.fcmp_ordered("==", args[2], zero)), args[3]


def _lanes_function(module, scalar, vty, all_fast):
    """The vector variant of `scalar`: one test of all lanes (`all_fast` gives it and the vector
    to return when it holds), else `scalar` lane by lane."""
    fn = ir.Function(module, ir.FunctionType(vty, [vty] * len(scalar.args)),
                     f"{scalar.name}_v{vty.count}")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    fast, passthrough = all_fast(b, fn.args)
    entry, slow, done = b.block, fn.append_basic_block("slow"), fn.append_basic_block("done")
    b.cbranch(fast, done, slow)
    b.position_at_end(slow)
    y = passthrough
    for i in range(vty.count):
        lane = ir.Constant(ir.IntType(32), i)
        y = b.insert_element(y, b.call(scalar, [b.extract_element(a, lane) for a in fn.args]),
                             lane)
    b.branch(done)
    b.position_at_end(done)
    phi = b.phi(vty)
    phi.add_incoming(passthrough, entry)
    phi.add_incoming(y, slow)
    b.ret(phi)
    return fn


def _rare_path(name, impl, dtype, arity, all_fast):
    """An intrinsic f(args) = impl(args) (one argument; x and the fast path's result; or
    power's four: x, y, flag, fast) for
    loops that LLVM vectorises: a scalar function (noinline, no memory access) whose vector
    variants run it only for the lanes that need it (all_fast: see _lanes_function)."""
    nb = types.float32 if dtype == np.float32 else types.float64

    def codegen(context, builder, sig, args):
        mod = builder.module
        symbol = f"tracejit_{name}"
        if symbol in mod.globals:
            return builder.call(mod.globals[symbol], args)
        ty = context.get_value_type(nb)
        cres = context.compile_subroutine(builder, impl.py_func, sig)
        scalar = ir.Function(mod, ir.FunctionType(ty, [ty] * arity), symbol)
        scalar.linkage = "internal"
        scalar.attributes.add("noinline")
        scalar.attributes.add("nounwind")
        for attr in ("willreturn", "memory(none)"):  # llvmlite does not know these
            set.add(scalar.attributes, attr)
        set.add(scalar.attributes, '"vector-function-abi-variant"="' + ",".join(
            f"_ZGV_LLVM_N{n}{'v' * arity}_{symbol}({symbol}_v{n})" for n in _VECTOR_WIDTHS) + '"')
        b = ir.IRBuilder(scalar.append_basic_block("entry"))
        fn = context.declare_function(mod, cres.fndesc)
        _, value = context.call_conv.call_function(b, fn, sig.return_type, sig.args,
                                                   scalar.args)
        b.ret(value)
        variants = [_lanes_function(mod, scalar, ir.VectorType(ty, n), all_fast)
                    for n in _VECTOR_WIDTHS]
        # nothing calls the variants until the vectoriser does: keep them
        ptr = ir.PointerType(ir.IntType(8))
        used = ir.GlobalVariable(mod, ir.ArrayType(ptr, len(variants)), "llvm.compiler.used")
        used.linkage = "appending"
        used.section = "llvm.metadata"
        used.initializer = ir.Constant(ir.ArrayType(ptr, len(variants)),
                                       [v.bitcast(ptr) for v in variants])
        return builder.call(scalar, args)

    def typed(*args):
        return (nb(*args), codegen) if all(a == nb for a in args) else None

    if arity == 1:
        return intrinsic(lambda typingctx, x: typed(x))
    if arity == 2:
        return intrinsic(lambda typingctx, x, fast: typed(x, fast))
    return intrinsic(lambda typingctx, x, y, flag, fast: typed(x, y, flag, fast))


_MODERATE64 = 1073741824.0  # 2**30: the three-part reduction below errs less than 2**-125
_MODERATE32 = np.float32(65536.0)  # 2**16: float32 Cody-Waite below errs less than 2**-56


@_inline
def _sin64_lane(x, fast):
    return fast if abs(x) < _MODERATE64 else _sin64_any(x)


@_inline
def _cos64_lane(x, fast):
    return fast if abs(x) < _MODERATE64 else _cos64_any(x)


# float64 sin and cos pass their result through the call, which returns it when no lane needs
# the table: the loop then keeps no mask and no copy of the result across the call (the loop
# ran 0.2 ns an element faster)
_sin64_rare = _rare_path("sin64", _sin64_lane, np.float64, 2, _all_below(_MODERATE64))
_cos64_rare = _rare_path("cos64", _cos64_lane, np.float64, 2, _all_below(_MODERATE64))
_sin32_rare = _rare_path("sin32", _sin32_any, np.float32, 1,
                          _all_below(float(_MODERATE32)))
_cos32_rare = _rare_path("cos32", _cos32_any, np.float32, 1,
                          _all_below(float(_MODERATE32)))

_PIO2_3 = -1.4973849048591698e-33  # pi/2 - _PIO2_1 - _PIO2_2


@_inline
def _rem_pio2_moderate(x):
    """(hi, lo, q) as _rem_pio2, for |x| < 2**30: n * pi/2 in three parts; fma(-n, P1, x) is
    exact (the result is small and on the grid of both terms), n * P2 splits exactly."""
    n = _rint(x * 0.6366197723675814)
    r1 = _fma(-n, _PIO2_1, x)
    p = n * _PIO2_2
    hi, lo = _two_sum(r1, -p)
    lo = _fma(-n, _PIO2_3, lo - _fma(n, _PIO2_2, -p))
    y = hi + lo
    return y, lo - (y - hi), _bits(n + _MAGIC) & 3


# float64 sin and cos below 2**30 reduce by pi rather than pi/2, so that one odd polynomial
# serves every lane (the form of SLEEF's xsin_u1 and xcos_u1): sin(x) = (-1)**n sin(r) with
# r = |x| - n pi, and cos(x) = (-1)**m sin(r') with r' = (m + 1/2) pi - |x|, both within
# [-pi/2, pi/2] and carried as two doubles; the sign of x and the parity come back as bits at the
# end (which also keeps -0.0). The pi/2 scheme, fdlibm's two polynomials in every lane and a
# select by quadrant, took twice the time (3.7 ns an element against 1.9 in a kernel of
# np.sin alone, this call included). Within 0.69 ulp of the exact result (mpmath, 1e5 points up
# to 1e4 and up to 2**30; the pi/2 scheme: 0.75), within 0.72 next to multiples of pi/2 (42000
# points), where the pi/2 scheme rounded correctly and this one meets sin's polynomial at pi/2.

_PI_1, _PI_2, _PI_3 = 2.0 * _PIO2_1, 2.0 * _PIO2_2, 2.0 * _PIO2_3  # pi in three parts
_INV_PI = 0.3183098861837907
# SLEEF's minimax coefficients: sin(r) = r + K1 r**3 + r**5 P(r*r) for |r| <= pi/2
_K1 = -0.166666666666666657414808
_K = (0.00833333333333318056201922, -0.000198412698412046454654947,
      2.75573192104428224777379e-06, -2.5052106814843123359368e-08,
      1.60589370117277896211623e-10, -7.64292594113954471900203e-13,
      2.72052416138529567917983e-15)


@_inline
def _sin_odd(hi, lo):
    """sin(hi + lo) for |hi + lo| <= pi/2 (a little beyond too), lo the tail of hi: hi (1 + K1 s)
    with s = hi*hi and 1 + K1 s carried to 2**-100, plus hi s**2 P(s), plus lo cos(hi) as
    lo (1 - 0.405 s) (within 0.06 |lo|), summed in the last fma (Horner: fewer operations than
    Estrin's order, which only shortens the dependency chain, and this loop is bound by
    throughput)."""
    s = hi * hi
    se = _fma(hi, hi, -s)
    m = _fma(_K1, s, 1.0)
    me = _fma(_K1, se, _fma(_K1, s, 1.0 - m))  # 1 - m exact (Sterbenz)
    t = hi * s
    p = _fma(_fma(_fma(_fma(_fma(_fma(_K[6], s, _K[5]), s, _K[4]), s, _K[3]), s, _K[2]), s,
                  _K[1]), s, _K[0])
    tail = _fma(t * se, 2.0 * _K[0], _fma(lo * s, -0.405, lo))  # s's rounding in t * s
    return _fma(hi, m, _fma(t * s, p, _fma(hi, me, tail)))


# The reductions: |x| - n * PI_1 is exact through an fma (a multiple of 2**-52 below 2 in
# magnitude), n * PI_2 splits exactly with one, and Fast2Sum subtracts it exactly: the first
# term is a multiple of 2**-52 and |n * PI_2| < 2**-24, so the first term's exponent (in a form
# with an integer significand) is the larger one, which is what Fast2Sum needs, even where the
# first term is the smaller number.

@_inline
def _sin64(x):
    ax = abs(x)
    shifted = _fma(ax, _INV_PI, _MAGIC)
    n = shifted - _MAGIC
    r1 = _fma(-n, _PI_1, ax)
    p = n * _PI_2
    hi = r1 - p
    lo = _fma(-n, _PI_3, ((r1 - hi) - p) - _fma(n, _PI_2, -p))
    y = _sin_odd(hi, lo)
    y = _from_bits(_bits(y) ^ ((_bits(shifted) << 63) ^ (_bits(x) ^ _bits(ax))))
    return _sin64_rare(x, y)  # the table's reduction where |x| >= 2**30, inf and NaN


@_inline
def _cos64(x):
    ax = abs(x)
    shifted = _fma(ax, _INV_PI, -0.5) + _MAGIC
    m = shifted - _MAGIC
    h = m + 0.5
    r1 = _fma(-m, _PI_1, ax)  # exact; h * PI_1 = m * PI_1 + PIO2_1
    t = _PIO2_1 - r1
    e = (_PIO2_1 - t) - r1  # Fast2Sum (where |r1| > PIO2_1, t is exact and e zero)
    p = h * _PI_2
    hi = t + p
    lo = _fma(h, _PI_3, (((t - hi) + p) + e) + _fma(h, _PI_2, -p))
    y = _sin_odd(hi, lo)
    y = _from_bits(_bits(y) ^ (_bits(shifted) << 63))
    return _cos64_rare(x, y)


@_inline
def _rem_pio2_moderate32(x):
    """(hi, lo, q) as _rem_pio2_32, in float32, for |x| < 2**16: the float32 parts of pi/2
    1.5707964 - 4.371139e-08 - 1.7151245e-15, the first product exact as above."""
    shifted = _fma32(x, _f(0.63661975), _F32_MAGIC)
    n = shifted - _F32_MAGIC
    r1 = _fma32(-n, _f(1.5707964), x)
    p = n * _f(-4.371139e-08)
    hi, lo = _two_sum(r1, -p)
    lo = _fma32(-n, _f(-1.7151245e-15), lo - _fma32(n, _f(-4.371139e-08), -p))
    y = hi + lo
    return y, lo - (y - hi), np.int32(_bits32(shifted) & 3)


@_inline
def _sin32(x):
    hi, lo, q = _rem_pio2_moderate32(x)
    y = _by_quadrant(_sin_kernel_f32(hi, lo), _cos_kernel_f32(hi, lo), q)
    y = x if abs(x) < _f(2.0**-12) else y
    return y if abs(x) < _MODERATE32 else _sin32_rare(x)


@_inline
def _cos32(x):
    hi, lo, q = _rem_pio2_moderate32(x)
    y = _by_quadrant(_sin_kernel_f32(hi, lo), _cos_kernel_f32(hi, lo), np.int32(q + np.int32(1)))
    return y if abs(x) < _MODERATE32 else _cos32_rare(x)


# --------------------------------------------------------------------------- tan
# The same reductions, then fdlibm's __kernel_tan (tan(r) or -1/tan(r) for odd n, near pi/4 by
# tan(pi/4 - r) to keep its digits); float32 computes in float64 and rounds once.

_T = (3.33333333333334091986e-01, 1.33333333333201242699e-01, 5.39682539762260521377e-02,
      2.18694882948595424599e-02, 8.86323982359930005737e-03, 3.59207910759131235356e-03,
      1.45620945432529025516e-03, 5.88041240820264096874e-04, 2.46463134818469906812e-04,
      7.81794442939557092300e-05, 7.14072491382608190305e-05, -1.85586374855275456654e-05,
      2.59073051863633712884e-05)
_PIO4, _PIO4_LO = 7.85398163397448278999e-01, 3.06161699786838301793e-17


@_inline
def _tan_kernel(x, y, odd):
    """tan(x + y), or -1/tan(x + y) where odd; |x + y| <= pi/4, y the tail of x."""
    big = abs(x) >= 0.6744
    neg = x < 0.0
    xa, ya = (-x, -y) if neg else (x, y)
    x = (_PIO4 - xa) + (_PIO4_LO - ya) if big else x
    y = 0.0 if big else y
    z = x * x
    w = z * z
    r = _T[1] + w * (_T[3] + w * (_T[5] + w * (_T[7] + w * (_T[9] + w * _T[11]))))
    v = z * (_T[2] + w * (_T[4] + w * (_T[6] + w * (_T[8] + w * (_T[10] + w * _T[12])))))
    s = z * x
    r = y + z * (s * (r + v) + y) + s * _T[0]
    w = x + r
    sign = -1.0 if odd else 1.0
    near = sign - 2.0 * (x + (r - w * w / (w + sign)))  # from tan(pi/4 - x)
    near = -near if neg else near
    w0 = _from_bits(_bits(w) & _LOW_WORD_MASK)  # -1/w to a few bits more than a division
    a = -1.0 / w
    a0 = _from_bits(_bits(a) & _LOW_WORD_MASK)
    inverse = a0 + a * (1.0 + a0 * w0 + a0 * (r - (w0 - x)))
    return near if big else (inverse if odd else w)


@_inline
def _tan64_any(x):
    hi, lo, q = _rem_pio2(x)
    y = _tan_kernel(hi, lo, (q & 1) != 0)
    y = x if abs(x) < 7.450580596923828e-09 else y  # 2**-27: tan(x) rounds to x
    return y if abs(x) < np.inf else x - x


_tan64_rare = _rare_path("tan64", _tan64_any, np.float64, 1, _all_below(_MODERATE64))


@_inline
def _tan64(x):
    hi, lo, q = _rem_pio2_moderate(x)
    y = _tan_kernel(hi, lo, (q & 1) != 0)
    y = x if abs(x) < 7.450580596923828e-09 else y
    return y if abs(x) < _MODERATE64 else _tan64_rare(x)


# --------------------------------------------------------------------------- power (float32)
# In float64, with series only as long as a float32 result needs: 2**(y * log2|x|), log2 of the
# significand m in [sqrt(2)/2, sqrt(2)) by atanh's series in s = (m - 1) / (m + 1) to s**11
# (abs error below 2**-36, and |y * log2|x|| < 300 wherever the result is not 0 or inf), 2**f for
# |f| <= 1/2 by exp's Taylor series to degree 10; then C99's special cases.


@_inline
def _log2_short(a):
    """log2(a) for a >= 0 normal, to about 2**-36 absolute; -inf at 0, inf at inf, nan at nan."""
    b = _bits(a) + (0x3FF0000000000000 - _SQRT_HALF_HIGH)
    k = _from_bits((b >> 52) | _TWO52_BITS) - (4503599627370496.0 + 1023.0)
    m = _from_bits((b & _EXP_FIELD) + _SQRT_HALF_HIGH)
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    p = _fma(z, 1.0 / 11.0, 1.0 / 9.0)
    p = _fma(p, z, 1.0 / 7.0)
    p = _fma(p, z, 1.0 / 5.0)
    p = _fma(p, z, 1.0 / 3.0)
    y = _fma(s * z, p, s) * 2.8853900817779268 + k  # 2 / ln(2)
    y = -np.inf if a == 0.0 else y
    return y if a < np.inf else a


@_inline
def _exp2_short(t):
    """2**t to about 2**-40 relative, 0 below -1100, inf above 1100, nan for nan."""
    tc = min(max(t, -1100.0), 1100.0)
    n = _rint(tc)
    f = (tc - n) * 0.6931471805599453
    p = _fma(f, 1.0 / 3628800.0, 1.0 / 362880.0)
    p = _fma(p, f, 1.0 / 40320.0)
    p = _fma(p, f, 1.0 / 5040.0)
    p = _fma(p, f, 1.0 / 720.0)
    p = _fma(p, f, 1.0 / 120.0)
    p = _fma(p, f, 1.0 / 24.0)
    p = _fma(p, f, 1.0 / 6.0)
    p = _fma(p, f, 0.5)
    p = _fma(p, f, 1.0)
    y = _scale(_fma(p, f, 1.0), n)
    return t if t != t else y


@_inline
def _pow_via64(x, y):
    a = abs(x)
    r = _exp2_short(y * _log2_short(a))
    integral = np.floor(y) == y  # inf counts as even
    odd = integral & (np.floor(0.5 * y) != 0.5 * y)
    r = -r if odd & (_bits(x) < 0) else r  # (-x)**odd, -0.0 and -inf included
    invalid = (x < 0.0) & (x > -np.inf) & ~integral & (y == y)  # glibc's NaN, not y's
    r = _from_bits(_DEFAULT_NAN_BITS) if invalid else r
    return 1.0 if (y == 0.0) | (x == 1.0) | ((a == 1.0) & (abs(y) == np.inf)) else r


@_inline
def _pow32(x, y):
    return np.float32(_pow_via64(np.float64(x), np.float64(y)))


# --------------------------------------------------------------------------- power (float64)
# log as Arm's optimized-routines pow (glibc's since 2.28, so NumPy's) computes it: x = 2**k z,
# z in [0x1.69555p-1, 0x1.69555p0) split into 128 subintervals, each with a c such that 1/c has
# a few bits (z/c - 1 is exact through an fma) and log(c) in two parts; log(x) = k ln2 + log(c) +
# log1p(z/c - 1) as hi + lo to about 2**-70 relative (log1p's Taylor series to r**9, |r| <
# 0.0058). Then exp(y log(x)) from y * hi split exactly plus y * lo, by the table-free
# reduction of sinh and tanh (glibc's table of 2**(i/128) made the loop 1.6x slower: lookups
# that wait on the log's result): within 0.53 ulp of the exact result. Lanes outside the fast
# path (x subnormal, inf or nan; |y| below 2**-65 or from 2**63; |y log(x)| from 512, where
# results overflow, underflow or may be subnormal) take libm's pow, one lane at a time, through
# the rare-lane call of sin and cos.

_POW_N = 128
_POW_OFF = 0x3FE6955500000000  # the bits of 0x1.69555p-1


def _pow_log_table():
    """Per subinterval: 1/c, log(c) rounded to 2**-43 (k ln2_hi + log(c) is then exact) and the
    rest of log(c); and ln2 split the same way. From 40-digit decimals."""
    with decimal.localcontext(decimal.Context(prec=40)) as ctx:
        dec = decimal.Decimal
        ln2 = ctx.ln(dec(2))
        # 1/c = m/256: ln(m) for m in [181, 364) by steps ln(m + 1) = ln(m) + 2 atanh(1/(2m + 1))
        ln_m = {181: ctx.ln(dec(181))}
        for m in range(181, 363):
            u = dec(1) / (2 * m + 1)
            term, total, j = u, u, 1
            while term > dec("1e-42"):
                term, j = term * u * u, j + 2
                total += term / j
            ln_m[m + 1] = ln_m[m] + 2 * total
        starts = np.array([_POW_OFF + (i << 45) for i in range(_POW_N + 1)]).view(np.float64)
        invc, logc, logctail = [], [], []
        for i in range(_POW_N):
            center = (starts[i] + starts[i + 1]) / 2
            m = 2 * round(_POW_N / center) if center < 1 else round(2 * _POW_N / center)
            log_c = 8 * ln2 - ln_m[m]
            head = float((log_c * 2**43).to_integral_value()) / 2**43
            invc.append(m / 256)
            logc.append(head)
            logctail.append(float(log_c - dec(head)))
        ln2_hi = float((ln2 * 2**42).to_integral_value()) / 2**42  # k ln2_hi exact, |k| < 2**11
        ln2_lo = float(ln2 - dec(ln2_hi))
    return np.array(invc), np.array(logc), np.array(logctail), ln2_hi, ln2_lo


_POW_INVC, _POW_LOGC, _POW_LOGCTAIL, _POW_LN2_HI, _POW_LN2_LO = _pow_log_table()


@_inline
def _pow_log(ix):
    """log(x) as hi + lo for the bits ix of a positive normal x."""
    tmp = ix - _POW_OFF
    i = (tmp >> 45) & (_POW_N - 1)
    k = tmp >> 52
    z = _from_bits(ix - (k << 52))
    kd = _from_bits(k + _MAGIC_BITS) - _MAGIC
    r = _fma(z, _POW_INVC[i], -1.0)  # exact
    t1 = kd * _POW_LN2_HI + _POW_LOGC[i]  # exact
    t2 = t1 + r
    lo1 = kd * _POW_LN2_LO + _POW_LOGCTAIL[i]
    lo2 = t1 - t2 + r
    ar = -0.5 * r
    ar2 = r * ar
    ar3 = r * ar2
    hi = t2 + ar2
    lo3 = _fma(ar, r, -ar2)
    lo4 = t2 - hi + ar2
    # log1p(r) - r + r*r/2 = ar3 * (...): Taylor's coefficients scaled by powers of -r*r/2, in
    # Estrin's order
    c45 = _fma(ar2, 16.0 / 9.0, r - 8.0 / 7.0)
    c03 = _fma(ar2, _fma(r, -2.0 / 3.0, 0.8), _fma(r, 0.5, -2.0 / 3.0))
    p = ar3 * _fma(ar2 * ar2, c45, c03)
    lo = (lo1 + lo2) + (lo3 + lo4) + p
    y = hi + lo
    return y, hi - y + lo


@_inline
def _pow_exp(x, xtail):
    """exp(x + xtail) for |x| < 512 and |xtail| < 2**-41."""
    r, lost, n = _reduce_ln2(x)
    s, lo = _expm1_dd(r, lost + xtail)
    h, e = _fast_two_sum(1.0, s)
    return (h + (e + lo)) * _pow2(n)


@_inline
def _pow64_any(x, y, flag, fast):
    """libm's pow where flag is set, else the fast path's result."""
    return fast if flag == 0.0 else x ** y


_pow64_rare = _rare_path("pow64", _pow64_any, np.float64, 4, _all_flags_clear)


@_inline
def _pow64(x, y):
    a = abs(x)
    hi, lo = _pow_log(_bits(a))
    ehi = y * hi
    elo = y * lo + _fma(y, hi, -ehi)
    r = _pow_exp(ehi, elo)
    zero = a == 0.0  # common (powers of a ReLU's output): not a rare lane
    r = (0.0 if y > 0.0 else np.inf) if zero else r
    integral = np.floor(y) == y
    odd = integral & (np.floor(0.5 * y) != 0.5 * y)
    r = -r if (_bits(x) < 0) & odd else r  # (-x)**odd, -0.0 included
    r = r if (x >= 0.0) | integral else _from_bits(_DEFAULT_NAN_BITS)
    fast = ((((a >= 2.2250738585072014e-308) & (abs(ehi) < 512.0)) | zero) & (a < np.inf)
            & (abs(y) >= 2.0**-65) & (abs(y) < 2.0**63))
    return _pow64_rare(x, y, 0.0 if fast else 1.0, r)


def vpower(x, y):
    raise NotImplementedError("vpower runs only inside compiled kernels")


@overload(vpower, inline="always")
def _vpower_impl(x, y):
    # a float64 literal exponent in a float32 loop is rounded first
    if isinstance(x, types.Float) and isinstance(y, types.Float) and types.float32 in (x, y):
        return lambda x, y: _pow32(np.float32(x), np.float32(y))
    if isinstance(x, (types.Float, types.Integer)) and isinstance(y, (types.Float, types.Integer)):
        return lambda x, y: _pow64(np.float64(x), np.float64(y))
    return None


# --------------------------------------------------------------------------- public names

def _generic(name, f64, f32=None):
    """A function `name` for kernels: the float64 implementation, and for float32 `f32` or the
    float64 one rounded once. Other argument types are not vector math (the op table names
    these only for float loops)."""

    def stub(x):
        raise NotImplementedError(f"{name} runs only inside compiled kernels")

    stub.__name__ = stub.__qualname__ = name

    @overload(stub, inline="always")
    def impl(x):
        if x == types.float64:
            return lambda x: f64(x)
        if x == types.float32:
            if f32 is not None:
                return lambda x: f32(x)
            return lambda x: np.float32(f64(np.float64(x)))
        return None

    return stub


vexp = _generic("vexp", _exp64, _exp32)
vexpm1 = _generic("vexpm1", _expm1_64)
vlog = _generic("vlog", _log64, _log32)
vlog1p = _generic("vlog1p", _log1p64)
vlog2 = _generic("vlog2", _log2_64)
vlog10 = _generic("vlog10", _log10_64)
vsinh = _generic("vsinh", _sinh64)
vcosh = _generic("vcosh", _cosh64)
vtanh = _generic("vtanh", _tanh64, _tanh32)
varctan = _generic("varctan", _arctan64, _arctan32)
vsin = _generic("vsin", _sin64, _sin32)
vcos = _generic("vcos", _cos64, _cos32)
vtan = _generic("vtan", _tan64)

# name in kernel source -> the NumPy ufunc it computes (what a backend without vector math uses)
LIBM = {"vexp": np.exp, "vexpm1": np.expm1, "vlog": np.log, "vlog1p": np.log1p,
        "vlog2": np.log2, "vlog10": np.log10, "vsinh": np.sinh, "vcosh": np.cosh,
        "vtanh": np.tanh, "varctan": np.arctan, "vsin": np.sin, "vcos": np.cos, "vtan": np.tan,
        "vpower": np.power}
FUNCTIONS = {name: globals()[name] for name in LIBM}
