"""Scalar functions with NumPy's exact semantics, for templates whose Python operator differs
(integer division by zero gives 0, float floor division and remainder follow npy_divmod)."""

import functools

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, ir_utils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload
from numba.np.arrayobj import make_array, populate_array

_jit = njit(error_model="numpy", cache=False)


@_jit
def _ifloordiv(a, b):
    if b == 0:
        return a - a
    if b < 0 and b == -1:  # NumPy negates, wrapping: MIN // -1 is MIN (Numba's // gives 0)
        return (a - a) - a  # not -a: negating an unsigned value would type as signed
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


# Errors a kernel reports: a helper stores the code in the kernel's `_err` argument (an int64
# array of one element) and the run function raises the exception after the kernel returns.
NEGATIVE_POWER = 1
KERNEL_ERRORS = {NEGATIVE_POWER: (ValueError, "Integers to negative integer powers are not "
                                              "allowed.")}


@_jit
def _ipow(a, b):  # b >= 0: _ipow_checked sees to negative exponents
    result = a - a + 1
    base = a
    while b:
        if b & 1:
            result *= base
        base *= base
        b >>= 1
    return result


@_jit
def _ipow_checked(a, b, err):
    if b < 0:  # NumPy raises ValueError
        err[0] = NEGATIVE_POWER
        return a - a
    return _ipow(a, b)


# NumPy's npy_logaddexp and npy_logaddexp2: equal arguments first, so that two equal
# infinities give that infinity instead of inf - inf; a NaN falls through to x - y
_LN2, _LOG2E = np.log(2.0), 1.0 / np.log(2.0)


@_jit
def _logaddexp(x, y):
    if x == y:
        return x + _LN2
    d = x - y
    if d > 0:
        return x + np.log1p(np.exp(-d))
    if d <= 0:
        return y + np.log1p(np.exp(d))
    return d


@_jit
def _logaddexp2(x, y):
    if x == y:
        return x + 1.0
    d = x - y
    if d > 0:
        return x + _LOG2E * np.log1p(np.exp2(-d))
    if d <= 0:
        return y + _LOG2E * np.log1p(np.exp2(d))
    return d


@_jit
def _irecip(a, at_zero):
    if a == 0:
        return at_zero + (a - a)
    if a == 1 or a == -1:
        return a
    return a - a


@intrinsic
def _f32_from_bits(typingctx, bits):
    """Reinterpret an int32 as the float32 with those bits (inlined: no call)."""

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _round_f16(typingctx, x):
    """float32 rounded to the nearest float16 and back (one instruction with F16C): what NumPy
    does after each float16 op, which computes in float32."""

    def codegen(context, builder, sig, args):
        return builder.fpext(builder.fptrunc(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(types.float32), codegen


@intrinsic
def _bits_from_f32(typingctx, x):
    """Reinterpret a float32 as the int32 with its bits (inlined: no call)."""

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _fma32(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma: one instruction where the CPU has FMA)."""

    def codegen(context, builder, sig, args):
        f32 = ir.FloatType()
        fma = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32] * 3))
        return builder.call(fma, args)

    return types.float32(types.float32, types.float32, types.float32), codegen


_ROUND_MAGIC = np.float32(12582912.0)  # 1.5 * 2**23: adding it rounds |t| < 2**22 to an integer
_ROUND_MAGIC_BITS = np.int32(0x4B400000)


@njit(error_model="numpy", cache=False, inline="always")
def _expf(x):
    """float32 exp without a libm call, so loops around it vectorise (about 2x faster than
    NumPy's SIMD exp per element). Cephes' expf: exp(x) = 2**n * exp(r) with |r| <= ln2/2 and a
    degree-6 polynomial, evaluated with FMA; n is rounded with the 1.5 * 2**23 trick, which
    vectorises where floor-and-fix-up does not. Within 3 ulp of the correctly rounded result,
    subnormal results included (the 2**n scale is applied in two halves). NaN, overflow to inf
    and underflow to 0 as NumPy."""
    xc = min(max(x, np.float32(-104.0)), np.float32(89.0))
    m = _fma32(xc, np.float32(1.44269504088896341), _ROUND_MAGIC)
    ni = _bits_from_f32(m) - _ROUND_MAGIC_BITS
    n = m - _ROUND_MAGIC
    r = _fma32(n, np.float32(-0.693359375), xc)
    r = _fma32(n, np.float32(2.12194440e-4), r)
    p = np.float32(1.9875691500e-4)
    p = _fma32(p, r, np.float32(1.3981999507e-3))
    p = _fma32(p, r, np.float32(8.3334519073e-3))
    p = _fma32(p, r, np.float32(4.1665795894e-2))
    p = _fma32(p, r, np.float32(1.6666665459e-1))
    p = _fma32(p, r, np.float32(5.0000001201e-1))
    y = _fma32(p, r * r, r) + np.float32(1.0)
    h = ni >> 1
    y = y * _f32_from_bits((h + 127) << 23) * _f32_from_bits((ni - h + 127) << 23)
    y = np.float32(np.inf) if x > np.float32(88.72283935546875) else y
    return x if x != x else y


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
    return a**b


@intrinsic
def _stream(typingctx, arr, index, value):
    """arr[index] = value as a non-temporal store: it bypasses the caches, so writing a big
    output does not first read every line of it from memory. Followed by _store_fence."""

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        store = builder.store(args[2], builder.gep(data, [args[1]]))
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
        return context.get_dummy_value()

    if not isinstance(arr, types.Array) or arr.dtype != value or value == types.boolean:
        return None
    return types.void(arr, types.intp, value), codegen


@intrinsic
def _store_fence(typingctx):
    """Orders the non-temporal stores before it with everything after (they are weakly
    ordered); needed before another thread may read what they wrote."""

    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _laid_out(typingctx, arr):
    """True if a "C" ("F") array is C-contiguous (F-contiguous) as NumPy's flags define it: an
    axis of length 1 may have any stride, an empty array is both; any strides are an "A"
    array's. Straight-line code from the array's shape and strides, which compiles in no time
    beside a Numba function's typing."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        if aryty.layout not in "CF":
            return cgutils.true_bit
        ary = make_array(aryty)(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, ary.shape, aryty.ndim)
        strides = cgutils.unpack_tuple(builder, ary.strides, aryty.ndim)
        intp = context.get_value_type(types.intp)
        step = ir.Constant(intp, context.get_abi_sizeof(context.get_data_type(aryty.dtype)))
        two = ir.Constant(intp, 2)
        ok = cgutils.true_bit
        order = range(aryty.ndim) if aryty.layout == "F" else reversed(range(aryty.ndim))
        for d in order:
            good = builder.or_(builder.icmp_signed("<", shape[d], two),
                               builder.icmp_signed("==", strides[d], step))
            ok = builder.and_(ok, good)
            step = builder.mul(step, shape[d])
        return builder.or_(ok, builder.icmp_signed("==", ary.nitems, ir.Constant(intp, 0)))

    return types.boolean(arr), codegen


def _flat(a):
    """An array as a 1-d view, as a.reshape(a.size) (kernels over contiguous operands; an
    F-contiguous one is viewed in its memory order)."""
    return a.reshape(a.size)


# the view aliases its array: parfors must not take writes to it for dead code
ir_utils.alias_func_extensions[("_flat", __name__)] = \
    lambda lhs, args, alias_map, arg_aliases: ir_utils._add_alias(
        lhs, args[0].name, alias_map, arg_aliases)


@overload(_flat)
def _flat_impl(a):
    if isinstance(a, types.Array) and a.layout in "CF" and a.ndim > 0:  # memory in order
        return lambda a: _flat_c(a)
    return lambda a: a.reshape(a.size)


@intrinsic
def _flat_c(typingctx, arr):
    """A C-contiguous array's 1-d view, built in place. Numba's reshape goes through a C helper,
    after which LLVM cannot tell the view's data from a constant table, and a loop that also reads
    a table (vecmath's sin and cos) does not vectorise (measured: float64 sin 30 ns an element
    instead of 8.5)."""
    flat = arr.copy(ndim=1, layout="C")

    def codegen(context, builder, sig, args):
        src = make_array(sig.args[0])(context, builder, args[0])
        dst = make_array(flat)(context, builder)
        size = functools.reduce(builder.mul, cgutils.unpack_tuple(builder, src.shape))
        populate_array(dst, data=src.data, shape=[size], strides=[src.itemsize],
                       itemsize=src.itemsize, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, flat, dst._getvalue())

    return flat(arr), codegen
