"""The CUDA backend: kernel descriptions (kernels.py) rendered as numba.cuda kernels.

Elementwise kernels are grid-stride loops over the flat index of their domain, each operand
read through its own (broadcast) index. Reduction and rowwise kernels loop over rows (an index
of the kept axes): where the reduced axes hold the contiguous last axis, one block takes a row,
its threads stride over the row's elements and combine partial results in shared memory (a
tree, then every thread reads the total); where the last axis is kept (column reductions) each
thread owns a row and walks it alone, so neighbouring threads read neighbouring columns. A
value needed in a later pass over a row is recomputed, never kept in a row buffer: arithmetic
is cheaper than memory on a GPU. Matmul is a tiled shared-memory kernel (`matmul`).

The scalar code comes from the op table; this module supplies the namespace it compiles in:
`np` is a module of CUDA math (libdevice through `math`) and NumPy's scalar types, and the
scalar helpers are recompiled as device functions over that namespace.

Memory: called with NumPy arrays, the executor's plan runs as usual and each launch copies its
inputs to the device and its outputs back. Called with device arrays (`call_on_device`), the
plan runs on the device (`device_runner`): arguments are read in place, intermediates live in
a device arena laid out by the memory plan and kept between calls, results stay on the device.
"""

import contextlib
import math
import threading
import types as pytypes

import numba
import numpy as np
from numba import cuda, types
from numba.cuda import libdevice

from ..kernels import (
    CONTIGUOUS,
    ELEMENT,
    REDUCE,
    ROW,
    SCALAR,
    describe,
    index_into,
    result_cast,
    source_name,
)
from ..ops import cast, compute_dtype
from . import scalar_helpers, vecmath
from .base import CompiledKernel, is_device_array

SIMULATED = bool(numba.config.ENABLE_CUDASIM)
# Threads per block (a power of two, for the shared-memory tree); the simulator runs each
# thread as a Python thread, so it gets few.
BLOCK = 32 if SIMULATED else 256
# Most blocks of a grid-stride launch: enough to fill a GPU (132 SMs on an H100/H200).
MAX_BLOCKS = 4 if SIMULATED else 2048
TILE = 8 if SIMULATED else 16  # matmul tile edge


# ---------------------------------------------------------------------------------------------
# the namespace the op table's scalar code compiles in

@cuda.jit(device=True)
def _floor(x):
    return libdevice.floor(x)


@cuda.jit(device=True)
def _ceil(x):
    return libdevice.ceil(x)


@cuda.jit(device=True)
def _trunc(x):
    return libdevice.trunc(x)


@cuda.jit(device=True)
def _rint(x):
    return libdevice.rint(x)


@cuda.jit(device=True)
def _cbrt(x):
    return libdevice.cbrt(x)


@cuda.jit(device=True)
def _exp2(x):
    return libdevice.exp2(x)


@cuda.jit(device=True)
def _signbit(x):
    return math.copysign(1.0, x) < 0


def _numpy_namespace():
    """A module standing in for `np` in kernel code: NumPy's scalar types for casts and
    literals, CUDA math for the functions."""
    ns = pytypes.ModuleType("tracejit_cuda_np")
    for name in ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "float16", "float32", "float64"):
        setattr(ns, name, getattr(np, name))
    ns.nan, ns.inf = math.nan, math.inf
    functions = dict(
        exp=math.exp, expm1=math.expm1, log=math.log, log2=math.log2, log10=math.log10,
        log1p=math.log1p, sin=math.sin, cos=math.cos, tan=math.tan, arcsin=math.asin,
        arccos=math.acos, arctan=math.atan, sinh=math.sinh, cosh=math.cosh, tanh=math.tanh,
        arcsinh=math.asinh, arccosh=math.acosh, arctanh=math.atanh, sqrt=math.sqrt,
        arctan2=math.atan2, hypot=math.hypot, isnan=math.isnan, isinf=math.isinf,
        isfinite=math.isfinite, fmod=math.fmod, copysign=math.copysign, floor=_floor,
        ceil=_ceil, trunc=_trunc, rint=_rint, cbrt=_cbrt, exp2=_exp2, signbit=_signbit,
        power=math.pow)
    for name, f in functions.items():
        # the simulator runs kernels as Python, where math raises on a domain error and
        # libdevice is a stub: NumPy's functions give what the GPU gives (NaN, inf)
        setattr(ns, name, getattr(np, name) if SIMULATED else f)
    return ns


def _round_f16(x):
    return np.float32(np.float16(x))


def _expf(x):
    return math.exp(x)


def _namespace():
    """Globals of generated kernels: `np`, `cuda`, numba types for shared arrays, and every
    scalar helper recompiled as a device function whose globals are this namespace."""
    ns = {"np": _numpy_namespace(), "cuda": cuda, "_round_f16": _round_f16, "_expf": _expf}
    for name, value in vars(scalar_helpers).items():
        if name.startswith("__") or isinstance(value, pytypes.ModuleType):
            continue
        ns.setdefault(name, value)  # constants (_LN2, NEGATIVE_POWER) and helpers
    for name, ufunc in vecmath.LIBM.items():  # vector math names: CUDA's own math
        ns[name] = getattr(ns["np"], ufunc.__name__)
    for name in ("_round_f16", "_expf"):
        ns[name] = cuda.jit(device=True)(ns[name])
    for name, value in vars(scalar_helpers).items():
        py = getattr(value, "py_func", None)
        if name.startswith("_") and py is not None and name not in ("_round_f16", "_expf"):
            fn = pytypes.FunctionType(py.__code__, ns, name, py.__defaults__, py.__closure__)
            ns[name] = cuda.jit(device=True)(fn)
    return ns


_ns = None


def namespace():
    global _ns
    if _ns is None:
        _ns = _namespace()
    return _ns


def _dtype_name(dtype):
    return f"_t_{compute_dtype(dtype).name}"


# ---------------------------------------------------------------------------------------------
# rendering

def _flat(desc):
    """Every array operand is contiguous over the whole domain: index all by the flat index."""
    return all(o.layout == SCALAR or o.node.shape == () or
               (o.layout == CONTIGUOUS and o.node.shape == desc.shape) for o in desc.inputs)


def _unflatten(var, dims, sizes, indent):
    """Lines splitting the flat index `var` into the indices of `dims` (C order)."""
    lines, rest = [], var
    for k, d in enumerate(reversed(dims)):
        if k == len(dims) - 1:
            lines.append(f"{indent}i{d} = {rest}")
        else:
            lines.append(f"{indent}i{d} = {rest} % {sizes[d]}")
            lines.append(f"{indent}q{d} = {rest} // {sizes[d]}")
            rest = f"q{d}"
    return lines


def split(desc):
    """A full reduction runs in two kernels: blocks reduce parts of the domain into partial
    results, then one thread combines them in block order and finishes (the epilogue)."""
    return desc.kind == "reduction" and desc.axes and not desc.kept and desc.passes == 1


def _partials(desc):
    """Per reduction of a split kernel: its array of partial results (and of their indices)."""
    names = []
    for st in desc.statements:
        if st.role == REDUCE:
            names.append((f"{st.name}_p", desc.reduction(st).acc))
            if desc.reduction(st).arg:
                names.append((f"{st.name}_pi", np.dtype(np.int64)))
    return names


def _params(desc):
    names = [o.name for o in desc.inputs] + [o.name for o in desc.outputs]
    names += [f"s{d}" for d in range(len(desc.shape))]
    if split(desc):
        names += [name for name, _ in _partials(desc)] + ["nparts"]
    return names + (["_err"] if desc.reports_errors else [])


def _head(desc, name="kernel"):
    lines = [f"def {name}({', '.join(_params(desc))}):"]
    # 0-d arrays arrive as one-element arrays: read their value once
    lines += [f"    {o.name}_v = {o.name}[0]" for o in desc.inputs
              if o.layout != SCALAR and o.node.shape == ()]
    return lines


def elementwise_source(desc):
    flat = _flat(desc)
    rank = len(desc.shape)
    sizes = [f"s{d}" for d in range(rank)]
    names = [f"i{d}" for d in range(rank)]
    lines = _head(desc)
    lines += [f"    n = {' * '.join(sizes) or '1'}", "    i = cuda.grid(1)",
              "    while i < n:"]
    if not flat:
        lines += _unflatten("i", list(range(rank)), sizes, "        ")
    read = {}
    for o in desc.inputs:
        if o.layout == SCALAR:
            read[o.node] = o.name
        elif o.node.shape == ():
            read[o.node] = f"{o.name}_v"
        else:
            idx = "i" if flat else index_into(o.node.shape, desc.shape, names)
            lines.append(f"        {o.name}_e = {o.name}[{idx}]")
            read[o.node] = f"{o.name}_e"
    for st in desc.statements:
        lines.append(f"        {st.name} = {desc.expr(st, read.__getitem__)}")
        read[st.node] = st.name
    store = "i" if flat or not rank else ", ".join(names)
    lines += [f"        {o.name}[{store}] = {read[o.node]}" for o in desc.outputs]
    lines.append("        i += cuda.gridsize(1)")
    return "\n".join(lines) + "\n"


def cooperative(desc):
    """One block per row (the reduced axes hold the last axis), else one thread per row."""
    return len(desc.shape) - 1 in desc.axes


def reduction_source(desc):
    """A reduction or rowwise kernel: rows are a grid-stride loop (over blocks, or threads);
    each pass over a row is a loop over its elements, then (blocks) a shared-memory combine."""
    coop, parts = cooperative(desc), split(desc)
    rank, axes, kept = len(desc.shape), desc.axes, desc.kept
    sizes = [f"s{d}" for d in range(rank)]
    names = [f"i{d}" for d in range(rank)]
    st_of = desc.by_node
    outs = {o.node: o.name for o in desc.outputs}
    ins = {o.node: o for o in desc.inputs}

    def read_input(a, cons):
        o = ins[a]
        if o.layout == SCALAR:
            return o.name
        if a.shape == ():
            return f"{o.name}_v"
        if st_of[cons].role == ROW:
            return f"{o.name}[{index_into(a.shape, cons.shape, desc.row_names(cons.shape, names))}]"
        return f"{o.name}_e"

    def read(cons):
        return lambda a: st_of[a].name if a in st_of else read_input(a, cons)

    lines = _head(desc)
    reductions = [st for st in desc.statements if st.role == REDUCE]
    if coop:
        for st in reductions:
            red = desc.reduction(st)
            lines.append(f"    {st.name}_sh = cuda.shared.array({BLOCK}, {_dtype_name(red.acc)})")
            if red.arg:
                lines.append(f"    {st.name}_shi = cuda.shared.array({BLOCK}, _t_int64)")
        lines += ["    tid = cuda.threadIdx.x", f"    row = {'0' if parts else 'cuda.blockIdx.x'}"]
    else:
        lines.append("    row = cuda.grid(1)")
    lines += [f"    nrows = {' * '.join(sizes[d] for d in kept) or '1'}",
              f"    rowsize = {' * '.join(sizes[d] for d in axes) or '1'}",
              "    while row < nrows:"]
    body = _unflatten("row", list(kept), sizes, "")

    def row_statements(p):
        return [f"{st.name} = {desc.expr(st, read(st.node))}" for st in desc.statements
                if st.role == ROW and st.at == p]

    body += row_statements(0)
    for p in range(desc.passes):
        accs = [st for st in reductions if st.at == p]
        roots = [st for st in desc.statements
                 if st.role == ELEMENT and st.at == p and st.node in outs]
        needed = _elements_needed([st.node for st in roots] +
                                  [st.node.args[0] for st in accs], st_of)
        elements = [st for st in desc.statements if st.node in needed]
        loads = []
        for st in elements + accs:
            for a in st.node.args:
                if a in ins and ins[a].layout != SCALAR and a.shape != () and a not in loads:
                    loads.append(a)
        for st in accs:
            red = desc.reduction(st)
            body.append(f"{st.name}_a = {red.init}")
            if red.arg:
                body.append(f"{st.name}_i = rowsize")  # no element seen yet
        body.append(f"r = cuda.blockIdx.x * {BLOCK} + tid" if parts else
                    "r = tid" if coop else "r = 0")
        body.append("while r < rowsize:")
        inner = _unflatten("r", list(axes), sizes, "")
        inner += [f"{ins[a].name}_e = {ins[a].name}[{index_into(a.shape, desc.shape, names)}]"
                  for a in loads]
        for st in elements:
            inner.append(f"{st.name} = {desc.expr(st, read(st.node))}")
            if st.node in outs and st.at == p:
                inner.append(f"{outs[st.node]}[{', '.join(names) or '0'}] = {st.name}")
        for st in accs:
            red, a = desc.reduction(st), f"{st.name}_a"
            x = st.node.args[0]
            value = cast(read(st.node)(x), x.dtype, red.acc)
            if red.arg:
                inner += [f"{st.name}_x = {value}",
                          f"if {st.name}_i == rowsize or {red.update(a, st.name + '_x')}:",
                          f"    {a} = {st.name}_x", f"    {st.name}_i = r"]
            else:
                inner.append(f"{a} = {red.update(a, value)}")
        inner.append(f"r += {f'cuda.gridDim.x * {BLOCK}' if parts else BLOCK if coop else 1}")
        body += ["    " + x for x in inner]
        if coop and accs:
            body += _combine(desc, accs)
        if parts:  # the finish kernel takes it from here
            body.append("if tid == 0:")
            for st in accs:
                body.append(f"    {st.name}_p[cuda.blockIdx.x] = {st.name}_a")
                if desc.reduction(st).arg:
                    body.append(f"    {st.name}_pi[cuda.blockIdx.x] = {st.name}_i")
            body.append("return")
            lines += ["        " + x for x in body]
            return "\n".join(lines) + "\n\n\n" + _finish_source(desc, read)
        for st in accs:
            red = desc.reduction(st)
            body.append(f"{st.name} = {st.name}_i" if red.arg else
                        f"{st.name} = {result_cast(st.name + '_a', st.node.dtype)}")
        body += row_statements(p + 1)
    stores = [f"{o.name}[{desc.row_index(o.node, names) if o.node.shape else '0'}] = "
              f"{st_of[o.node].name}" for o in desc.outputs if st_of[o.node].role != ELEMENT]
    if coop and stores:
        body += ["if tid == 0:"] + ["    " + x for x in stores]
    else:
        body += stores
    body.append(f"row += {'cuda.gridDim.x' if coop else 'cuda.gridsize(1)'}")
    lines += ["        " + x for x in body]
    return "\n".join(lines) + "\n"


def _finish_source(desc, read):
    """The second kernel of a split reduction: one thread combines the partial results in
    block order (an arg reduction keeps the lowest index among equal values), then computes the
    row statements and stores the row outputs."""
    lines = _head(desc, "finish") + ["    if cuda.grid(1) == 0:"]
    rank = len(desc.shape)
    body = [f"rowsize = {' * '.join(f's{d}' for d in range(rank))}"]
    body += [f"{st.name} = {desc.expr(st, read(st.node))}" for st in desc.statements
             if st.role == ROW and st.at == 0]
    for st in desc.statements:
        if st.role != REDUCE:
            continue
        red, a = desc.reduction(st), f"{st.name}_a"
        body.append(f"{a} = {red.init}")
        if red.arg:
            body += [f"{st.name}_i = rowsize", "for b in range(nparts):",
                     f"    x = {st.name}_p[b]", f"    xi = {st.name}_pi[b]",
                     f"    if xi < rowsize and ({st.name}_i == rowsize or {red.update(a, 'x')} "
                     f"or (not ({red.update('x', a)}) and xi < {st.name}_i)):",
                     f"        {a} = x", f"        {st.name}_i = xi",
                     f"{st.name} = {st.name}_i"]
        else:
            body += ["for b in range(nparts):",
                     f"    {a} = {red.update(a, f'{st.name}_p[b]')}",
                     f"{st.name} = {result_cast(a, st.node.dtype)}"]
    body += [f"{st.name} = {desc.expr(st, read(st.node))}" for st in desc.statements
             if st.role == ROW and st.at == 1]
    st_of = desc.by_node
    body += [f"{o.name}[{desc.row_index(o.node, []) if o.node.shape else '0'}] = "
             f"{st_of[o.node].name}" for o in desc.outputs if st_of[o.node].role != ELEMENT]
    return "\n".join(lines + ["        " + x for x in body]) + "\n"


def _elements_needed(roots, st_of):
    """The element statements computing `roots`, all recomputed in the pass that needs them."""
    needed, stack = set(), list(roots)
    while stack:
        node = stack.pop()
        st = st_of.get(node)
        if st is not None and st.role == ELEMENT and node not in needed:
            needed.add(node)
            stack += node.args
    return needed


def _combine(desc, accs):
    """Every thread's partial results combined through shared memory; all threads read the
    total. An arg reduction keeps the lower index among equal values (the first extreme)."""
    lines = []
    for st in accs:
        lines.append(f"{st.name}_sh[tid] = {st.name}_a")
        if desc.reduction(st).arg:
            lines.append(f"{st.name}_shi[tid] = {st.name}_i")
    lines += ["cuda.syncthreads()", f"w = {BLOCK // 2}", "while w > 0:", "    if tid < w:"]
    for st in accs:
        red, sh = desc.reduction(st), f"{st.name}_sh"
        if red.arg:
            a, b, ai, bi = f"{sh}[tid]", f"{sh}[tid + w]", f"{sh}i[tid]", f"{sh}i[tid + w]"
            lines += [f"        if {bi} < rowsize and ({ai} == rowsize or {red.update(a, b)} "
                      f"or (not ({red.update(b, a)}) and {bi} < {ai})):",
                      f"            {a} = {b}", f"            {ai} = {bi}"]
        else:
            lines.append(f"        {sh}[tid] = {red.update(sh + '[tid]', sh + '[tid + w]')}")
    lines += ["    cuda.syncthreads()", "    w //= 2"]
    for st in accs:
        lines.append(f"{st.name}_a = {st.name}_sh[0]")
        if desc.reduction(st).arg:
            lines.append(f"{st.name}_i = {st.name}_shi[0]")
    lines.append("cuda.syncthreads()")  # before the shared arrays are written again
    return lines


def kernel_source(desc):
    if desc.kind == "elementwise":
        return elementwise_source(desc)
    return reduction_source(desc)


# ---------------------------------------------------------------------------------------------
# compiling and launching

_lock = threading.RLock()
_dispatchers = {}  # source -> numba.cuda dispatchers (kernel, finish or None)


def _python_functions(source):
    """The functions a kernel source defines: (kernel, finish), finish None unless split."""
    ns = dict(namespace())
    ns.update({_dtype_name(t): numba.from_dtype(np.dtype(t)) for t in
               ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                "uint64", "float32", "float64")})
    exec(compile(source, f"<tracejit-cuda-kernel {source_name(source)}>", "exec"), ns)
    return ns["kernel"], ns.get("finish")


def signature(desc):
    """The Numba argument types of a kernel (0-d arrays as one-element arrays), for PTX."""
    def array(node, layout):
        dt = numba.from_dtype(compute_dtype(node.dtype))
        if layout == SCALAR:
            if node.weak:
                return {"b": types.boolean, "i": types.int64, "f": types.float64}[node.dtype.kind]
            return dt
        flat = layout == CONTIGUOUS and (_flat(desc) and desc.kind == "elementwise"
                                         or node.shape == ())
        return types.Array(dt, 1 if flat else node.ndim, "C" if layout == CONTIGUOUS else "A")
    sig = [array(o.node, o.layout) for o in desc.inputs + desc.outputs]
    sig += [types.int64] * len(desc.shape)
    if split(desc):
        sig += [types.Array(numba.from_dtype(dt), 1, "C") for _, dt in _partials(desc)]
        sig.append(types.int64)
    return tuple(sig + ([types.int64[::1]] if desc.reports_errors else []))


@contextlib.contextmanager
def _device_functions_for(cc):
    """numba.cuda compiles a device function a kernel calls for the current device's compute
    capability, even inside compile_ptx; without a GPU there is none, so name `cc` instead."""
    from numba.cuda import dispatcher
    current = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = current


def compile_ptx(kernel, layouts, cc=(9, 0)):
    """PTX of the kernel for compute capability `cc` (needs the real numba.cuda, no GPU)."""
    desc = describe(kernel, layouts)
    with _lock, _device_functions_for(cc):
        return "\n".join(cuda.compile_ptx(fn, signature(desc), cc=cc)[0]
                         for fn in _python_functions(kernel_source(desc)) if fn is not None)


def _on_device(a):
    """A numba device array of `a`: itself, a view of another library's device array (no
    copy), or a copy of a NumPy array."""
    if hasattr(a, "copy_to_host"):  # numba's (or the simulator's)
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return cuda.as_cuda_array(a)
    return cuda.to_device(np.ascontiguousarray(a))


def _launcher(dispatchers, desc):
    n_in, n_out, rank = len(desc.inputs), len(desc.outputs), len(desc.shape)
    flat = desc.kind == "elementwise" and _flat(desc)
    coop = desc.kind != "elementwise" and cooperative(desc)

    def arg(a, layout):
        """The device array a kernel parameter gets: device arrays as they are, NumPy arrays
        copied in; flat kernels and 0-d values take 1-d arrays."""
        if layout == SCALAR:
            return a
        if np.ndim(a) == 0 or (flat and layout == CONTIGUOUS):
            a = np.reshape(a, -1) if isinstance(a, np.ndarray) else a.reshape(-1)
        return _on_device(a)

    def launch(*args):
        ins, outs = args[:n_in], args[n_in:n_in + n_out]
        sizes = tuple(int(s) for s in outs[0].shape) if desc.kind == "elementwise" \
            else args[n_in + n_out:n_in + n_out + rank]
        err = args[-1] if desc.reports_errors else None
        dev_in = [arg(a, o.layout) for a, o in zip(ins, desc.inputs)]
        dev_out = [arg(o, CONTIGUOUS) if hasattr(o, "__cuda_array_interface__") else
                   cuda.device_array(max(1, o.size) if flat or o.ndim == 0 else o.shape, o.dtype)
                   for o in outs]
        extra = [_on_device(err)] if err is not None else []
        kernel, finish = dispatchers
        rows = math.prod(sizes[d] for d in desc.kept) if desc.kind != "elementwise" else 0
        if desc.kind == "elementwise" or finish is not None:
            grid = min(MAX_BLOCKS, -(-math.prod(sizes) // BLOCK))
        elif coop:
            grid = min(MAX_BLOCKS * 8, rows)
        else:
            grid = min(MAX_BLOCKS, -(-rows // BLOCK))
        if finish is not None:  # partial results per block, then their combination
            parts = [cuda.device_array(max(grid, 1), dt) for _, dt in _partials(desc)]
            kernel[max(grid, 1), BLOCK](*dev_in, *dev_out, *sizes, *parts, grid, *extra)
            finish[1, 1](*dev_in, *dev_out, *sizes, *parts, grid, *extra)
        elif grid > 0:
            kernel[grid, BLOCK](*dev_in, *dev_out, *sizes, *extra)
        for host, dev in zip(outs, dev_out):
            if host.size and not hasattr(host, "__cuda_array_interface__"):
                host[...] = dev.copy_to_host().reshape(host.shape)
        if err is not None and not hasattr(err, "__cuda_array_interface__"):
            err[...] = extra[0].copy_to_host()

    return launch


def compile_kernel(kernel, layouts, parallel=None, over=None, out_layouts=None,
                   checks_inputs=False):
    """A launcher of the kernel for these input layouts; `parallel`, `over` (CPU loop
    choices) and `checks_inputs` (for the CPU's fast path) do not apply, and outputs are
    computed in contiguous device arrays whatever `out_layouts` says (a NumPy output is
    filled from one, strided or not)."""
    desc = describe(kernel, layouts)
    source = kernel_source(desc)
    with _lock:
        dispatchers = _dispatchers.get(source)
        compiled_now = dispatchers is None
        if compiled_now:
            dispatchers = _dispatchers[source] = tuple(
                fn and cuda.jit(fn) for fn in _python_functions(source))
    return CompiledKernel(kernel, source, _launcher(dispatchers, desc), compiled_now, layouts)


# ---------------------------------------------------------------------------------------------
# matmul

@cuda.jit
def _matmul_tiled(a, b, out):
    """out = a @ b for 2-d arrays: each block computes a TILE x TILE tile of out from tiles of
    a and b staged in shared memory."""
    sa = cuda.shared.array((TILE, TILE), numba.float64)
    sb = cuda.shared.array((TILE, TILE), numba.float64)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row, col = cuda.blockIdx.y * TILE + ty, cuda.blockIdx.x * TILE + tx
    m, k = a.shape
    n = b.shape[1]
    acc = 0.0
    for t in range((k + TILE - 1) // TILE):
        kk = t * TILE
        sa[ty, tx] = a[row, kk + tx] if row < m and kk + tx < k else 0.0
        sb[ty, tx] = b[kk + ty, col] if kk + ty < k and col < n else 0.0
        cuda.syncthreads()
        for j in range(TILE):
            acc += sa[ty, j] * sb[j, tx]
        cuda.syncthreads()
    if row < m and col < n:
        out[row, col] = acc


def matmul(a, b, out=None):
    """a @ b on the device for two 2-d float arrays (float64 accumulation), else NumPy's."""
    if np.ndim(a) != 2 or np.ndim(b) != 2 or np.result_type(a, b).kind != "f" \
            or np.result_type(a, b) == np.float16:
        return np.matmul(a, b, out=out)
    host = out is None or not hasattr(out, "__cuda_array_interface__")
    dev = cuda.device_array((a.shape[0], b.shape[1]), np.result_type(a, b))
    grid = (-(-b.shape[1] // TILE), -(-a.shape[0] // TILE))
    if grid[0] and grid[1] and a.shape[1]:
        _matmul_tiled[grid, (TILE, TILE)](_on_device(a), _on_device(b), dev)
    elif not a.shape[1]:
        dev = cuda.to_device(np.zeros(dev.shape, dev.dtype))
    if not host:
        out.copy_to_device(dev)
        return out
    result = dev.copy_to_host()
    if out is None:
        return result
    out[...] = result
    return out


HOST_OPS = {"matmul": (matmul, matmul)}


def matmul_ptx(dtype, cc=(9, 0)):
    """PTX of the tiled matmul for 2-d arrays of `dtype`."""
    arr = types.Array(numba.from_dtype(np.dtype(dtype)), 2, "A")
    ptx, _ = cuda.compile_ptx(_matmul_tiled.py_func, (arr, arr, arr), cc=cc)
    return ptx


# ---------------------------------------------------------------------------------------------
# plans on device arrays

def device_runner(exe):
    """A function running a compiled Executable's steps on device arrays: `run(*leaves)` takes
    the arguments' leaves (arrays with `__cuda_array_interface__`: numba, CuPy or PyTorch device
    arrays, used without a copy) and returns the graph's outputs as numba device arrays. Only
    plans of kernels and matmuls run this way (UnsupportedError otherwise): views, copies and
    gathers are host steps of NumPy. Intermediates live in a device arena laid out by the
    executable's memory plan (buffers shared between values whose lives do not overlap), kept
    between calls; results are new device arrays at each call."""
    from ..errors import UnsupportedError
    from ..passes.fusion import Kernel

    kernels = iter(exe.kernels)
    launches = []
    for step in exe.steps:
        if isinstance(step, Kernel):
            ck = next(kernels)
            if any(n.dtype == np.float16 for n in [*step.inputs, *step.outputs]):
                raise UnsupportedError("float16 arrays are stored as float32 by the executor")
            sizes = () if step.kind == "elementwise" else tuple(step.shape)
            launches.append((ck.entry, step.inputs, step.outputs, sizes, ck.reports_errors))
        elif step.node.op == "matmul" and step.node.ndim == 2:
            launches.append((None, step.node.args, [step.node], (), False))
        else:
            raise UnsupportedError(f"{step.node.op} runs on the host; device_runner runs plans "
                                   "of kernels and matmuls")
    plan, results = exe.memory, set(exe.graph.outputs)
    arena = {}  # the plan's buffer index -> device bytes, made by the first call and kept

    def stored(node):
        """Where a step writes `node`: a fresh array for a result (the caller keeps it), else
        a view of its buffer in the device arena, shared as the memory plan says."""
        dt = compute_dtype(node.dtype)
        b = plan.assignment.get(node)
        if node in results or b is None or plan.storage[b].returned is not None:
            return cuda.device_array(node.shape, dt)
        if b not in arena:
            arena[b] = cuda.device_array(max(1, plan.storage[b].nbytes), np.uint8)
        view = arena[b][:max(1, node.size) * dt.itemsize].view(dt)
        return view.reshape(node.shape) if node.shape else view[:1]

    def run(*leaves):
        env = {n: _on_device(leaves[n.attrs["index"]]) for n in exe.graph.inputs}

        def value(n):
            if n not in env and n.op == "const":
                v = n.attrs["value"]
                env[n] = v if n.weak else cuda.to_device(np.asarray(v))
            return env[n]

        for entry, ins, outs, sizes, errors in launches:
            if entry is None:  # a 2-d matmul
                a, b = (value(x) for x in ins)
                out = stored(outs[0])
                grid = (-(-out.shape[1] // TILE), -(-out.shape[0] // TILE))
                _matmul_tiled[grid, (TILE, TILE)](a, b, out)
                env[outs[0]] = out
                continue
            err = [cuda.to_device(np.zeros(1, np.int64))] if errors else []
            made = [stored(o) for o in outs]
            entry(*[value(x) for x in ins], *made, *sizes, *err)
            env.update(zip(outs, made))
            if errors and err[0].copy_to_host()[0]:
                from .scalar_helpers import KERNEL_ERRORS
                exc_type, message = KERNEL_ERRORS[int(err[0].copy_to_host()[0])]
                raise exc_type(message)
        return tuple(value(o) for o in exe.graph.outputs)

    return run


def _like(result, leaf):
    """A numba device array as the same kind of array as `leaf` (CuPy, PyTorch), no copy."""
    module = type(leaf).__module__.split(".")[0]
    if module == "cupy":
        import cupy
        return cupy.asarray(result)
    if module == "torch":
        import torch
        return torch.as_tensor(result, device=leaf.device)
    return result


def call_on_device(traced, leaves, treedef):
    """traced(*args) for arguments holding device arrays: the plan for their shapes and dtypes
    (cached like any signature) runs on the device through device_runner; results are device
    arrays of the kind of the first device argument."""
    from .. import pytree
    from ..errors import UnsupportedError

    placeholders = [np.broadcast_to(np.zeros((), np.dtype(leaf.dtype)), leaf.shape)
                    if is_device_array(leaf) else leaf for leaf in leaves]
    static = traced._static(placeholders, treedef)
    exe, live = traced._entry(traced._key(placeholders, treedef, static), placeholders,
                              treedef, static)
    if not hasattr(exe, "graph"):  # a fallback: NumPy cannot run on device arrays
        raise UnsupportedError(f"{traced.__name__} cannot run on device arrays: "
                               f"{getattr(exe, 'error', 'it could not be traced')}")
    if exe.graph.meta.get("writes"):
        raise UnsupportedError(f"{traced.__name__} writes into its arguments, which device "
                               "arrays do not support yet")
    run = exe.__dict__.get("_device_run")
    if run is None:
        run = exe._device_run = device_runner(exe)
    outputs = run(*leaves, *(live or ()))
    first = next(leaf for leaf in leaves if is_device_array(leaf))
    return pytree.unflatten(exe.graph.out_tree, [_like(o, first) for o in outputs])
