"""The CPU backend: kernel descriptions (kernels.py) rendered as Python and compiled with
numba.njit, cached by source and Numba signature."""

import os
import re
import threading
from collections import OrderedDict

# GNU OpenMP threads spin after each parallel loop; on a busy machine that spinning starves the
# next kernel (measured: 16 ms instead of 0.05 ms per 200k-element kernel). Sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import types  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from ..kernels import (  # noqa: E402
    CONTIGUOUS,
    ELEMENT,
    FORTRAN,
    REDUCE,
    ROW,
    SCALAR,
    STRIDED,
    describe,
    index_into,
    literal,
    result_cast,
    source_name,
)
from ..ops import cast, compute_dtype  # noqa: E402
from ..passes.fusion import op_cost  # noqa: E402
from . import disk_cache, scalar_helpers, vecmath  # noqa: E402
from .base import CompiledKernel, compiling  # noqa: E402

# A kernel runs its loop in parallel when elements x per-element cost (fusion.op_cost: an add
# is 1, a vector exp 12, a vector sin 16) reaches PARALLEL_WORK. Waking the worker threads
# costs 40-80 us (passive OpenMP waiting); measured on 2 cores, parallel first wins at 2^19
# elements for a * b + c (cost 2) and at 2^15-2^16 for np.exp(-a * a) * b + c (then cost 24,
# now 16: parallel from 2^16).
PARALLEL_WORK = 1 << 20
# An elementwise kernel of a few cheap ops per element (cost up to MEMORY_BOUND_COST: a * b + c,
# a compare, isnan) is bound by memory; a second thread gains nothing until it moves
# PARALLEL_BYTES (a * b + c in float64 at 2^19 elements, as above). Counting element-ops alone,
# isnan on 2M float32 (10 MB) ran parallel at 0.78x NumPy, 0.93x on one thread.
MEMORY_BOUND_COST = 3
PARALLEL_BYTES = 16 << 20

# Kernels kept compiled across all traced functions; the least recently used is dropped beyond
# this (executables that still use a dropped kernel keep their own reference to it).
MAX_KERNELS = int(os.environ.get("TRACEJIT_MAX_KERNELS", "1024"))


def _last_level_cache_bytes():
    try:
        size = os.sysconf("SC_LEVEL3_CACHE_SIZE")
    except (ValueError, OSError, AttributeError):
        size = 0
    return size if size > 0 else 32 << 20


# A parallel elementwise kernel whose arrays total more than 1.5x the last-level cache writes
# its outputs with non-temporal stores: they skip reading each output line before writing it
# (measured, 10M float64: a * b + c * d - e 16.2 ms instead of 19.6, a * 2 + 1 3.7 instead of
# 5.6). The streaming loop is scalar (LLVM does not vectorise non-temporal stores of unknown
# alignment), so only for cheap elements that move at least 16 bytes: a float32 a * 2 + 1
# (8 bytes) measured 7% slower streamed.
STREAM_BYTES = 3 * _last_level_cache_bytes() // 2
STREAM_MAX_COST = 4
STREAM_MIN_ELEMENT_BYTES = 16


def stream_from(desc):
    """The element count from which this kernel streams its outputs, or None."""
    if desc.kind != "elementwise" or any(o.node.dtype == np.bool_ for o in desc.outputs) \
            or sum(op_cost(s.node) for s in desc.statements) > STREAM_MAX_COST:
        return None
    per_element = sum(compute_dtype(x.node.dtype).itemsize for x in desc.inputs
                      if x.layout != SCALAR and x.node.shape == desc.shape)
    per_element += sum(compute_dtype(o.node.dtype).itemsize for o in desc.outputs)
    if per_element < STREAM_MIN_ELEMENT_BYTES:
        return None
    return -(-STREAM_BYTES // per_element)


_lock = threading.RLock()
_dispatchers = OrderedDict()  # (source, parallel) -> numba dispatcher, least recent first

# Numba's "workqueue" threading layer (used when neither TBB nor OpenMP is available) is not
# thread-safe: two threads launching parallel kernels at once can crash the process. Parallel
# launches are serialised under that layer only; TBB and OpenMP run them concurrently.
_parallel_launch = threading.Lock()
_layer_is_threadsafe = [None]


def _serialise_if_needed(entry):
    def launch(*args):
        if _layer_is_threadsafe[0]:
            return entry(*args)
        with _parallel_launch:
            result = entry(*args)
            if _layer_is_threadsafe[0] is None:  # known once a parallel kernel has run
                _layer_is_threadsafe[0] = numba.threading_layer() != "workqueue"
            return result
    launch.__wrapped__ = entry
    return launch


def _reassociating(build):
    @intrinsic
    def op(typingctx, a, b):
        """A float add or multiply of one type, which LLVM may reassociate (see
        REASSOCIABLE)."""
        if a != b or not isinstance(a, types.Float):
            return None
        return a(a, b), lambda context, builder, sig, args: build(builder)(
            *args, flags=("reassoc",))
    return op


_radd, _rmul = _reassociating(lambda b: b.fadd), _reassociating(lambda b: b.fmul)


def _extreme(cmp):
    @intrinsic
    def select(typingctx, a, b):
        """`a if a <cmp> b else b` for floats of one type, assuming no NaN (the kernel tracks
        NaN in a flag of its own), so that LLVM vectorises a max or min reduction."""
        if a != b or not isinstance(a, types.Float):
            return None

        def codegen(context, builder, sig, args):
            flags = ("nnan", "nsz")
            return builder.select(builder.fcmp_ordered(cmp, *args, flags=flags), *args,
                                  flags=flags)
        return a(a, b), codegen
    return select


_rmax, _rmin = _extreme(">"), _extreme("<")


def _namespace():
    ns = {"np": np, "prange": numba.prange, "_threads": numba.get_num_threads,
          "_radd": _radd, "_rmul": _rmul, "_rmax": _rmax, "_rmin": _rmin}
    ns.update({k: v for k, v in vars(scalar_helpers).items() if k.startswith("_")
               and callable(v)})
    ns.update(vecmath.FUNCTIONS)
    return ns


def numba_type(node, layout):
    dt = numba.from_dtype(compute_dtype(node.dtype))
    if layout == SCALAR:
        if node.weak:
            return {"b": types.boolean, "i": types.int64, "f": types.float64}[node.dtype.kind]
        return dt
    return types.Array(dt, node.ndim, {CONTIGUOUS: "C", FORTRAN: "F"}.get(layout, "A"))


def use_parallel(desc, parallel):
    if not desc.shape:  # one element (a 0-d domain): nothing to split, and no loop to split
        return False
    if parallel is None:
        if _one_column_task(desc):
            return False
        n = int(np.prod(desc.shape, dtype=np.int64))
        cost = sum(op_cost(s.node) for s in desc.statements)
        if desc.kind != "elementwise" or cost > MEMORY_BOUND_COST:
            return n * cost >= PARALLEL_WORK
        moved = sum(x.node.dtype.itemsize for x in desc.inputs + desc.outputs
                    if x.layout != SCALAR and x.node.shape == desc.shape)  # per element
        return n * cost >= PARALLEL_WORK and n * moved >= PARALLEL_BYTES
    return bool(parallel)


def _column_tasks(desc):
    """(column tasks, row chunks) of a reduction kernel that walks columns (column_source), as
    it would run in parallel on this many threads; None for any other kernel. Chunks count
    only where the column tasks are fewer than the threads (column_source then splits the
    first reduced axis)."""
    last = len(desc.shape) - 1
    if desc.kind == "elementwise" or desc.passes > 1 or last not in desc.kept:
        return None
    threads = numba.get_num_threads()
    others = int(np.prod([desc.shape[d] for d in desc.kept[:-1]], dtype=np.int64))
    per_row = max(1, threads // max(1, others))
    width = min(COLUMN_BLOCK, max(MIN_COLUMN_BLOCK, -(-desc.shape[last] // per_row)))
    tasks = -(-desc.shape[last] // width) * others
    if tasks >= threads:
        return tasks, 1
    first = desc.axes[0]
    inner = int(np.prod([desc.shape[d] for d in desc.axes[1:]] + [desc.shape[last]],
                        dtype=np.int64))
    rows = max(MIN_CHUNK_ROWS, CHUNK // max(1, inner))
    return tasks, -(-desc.shape[first] // rows)


def _one_column_task(desc):
    """True for a reduction kernel that walks columns (column_source) in one block whose
    reduced domain is too small to split into row chunks worth the threads: in parallel it
    would start the threads for one task (measured: the MLP gradient's bias sums over
    256 x 1024 float32, 0.124 ms each in parallel, 0.095 ms serial)."""
    if any(x.layout == STRIDED and x.node.shape == desc.shape for x in desc.inputs):
        return False
    tasks = _column_tasks(desc)
    if tasks is None or tasks[0] > 1:
        return False
    n = int(np.prod(desc.shape, dtype=np.int64))
    return tasks[1] <= 1 or n + ROW_WORK * (n // max(1, desc.shape[-1])) < SPLIT_WORK


def compile_kernel(kernel, layouts, parallel=None, over=None, out_layouts=None,
                   checks_inputs=False):
    """Compile (or fetch from the cache) the kernel for these input layouts. `over`: output
    index -> index of the input an elementwise kernel writes it over (in place);
    `out_layouts`: how each output is stored (CONTIGUOUS unless given); `checks_inputs`: an
    elementwise kernel checks its array inputs first (_input_checks)."""
    if kernel.kind != "elementwise":  # row and column loops read F-ordered arrays by strides
        layouts = [STRIDED if lay == FORTRAN else lay for lay in layouts]
    desc = describe(kernel, layouts, out_layouts, over)
    par = use_parallel(desc, parallel)
    sig = tuple(numba_type(x.node, x.layout) for x in desc.inputs + desc.outputs)
    if desc.kind == "elementwise":
        checks_inputs = bool(checks_inputs)
        source = elementwise_source(desc, par, par and stream_from(desc), checks_inputs)
    else:  # reduction kernels also take the sizes of their domain
        checks_inputs = False
        source = reduction_source(desc, par)
        sig += (types.int64,) * len(desc.shape)
    if desc.reports_errors:
        sig += (types.int64[::1],)
    with _lock:
        disp = _dispatchers.get((source, par))
        if disp is None:
            disk_cache.attach_library()
            ns = _namespace()
            exec(compile(source, f"<tracejit-kernel {source_name(source)}>", "exec"), ns)
            disp = numba.njit(parallel=par, error_model="numpy", nogil=True)(ns["kernel"])
            disp = disk_cache.attach(disp, source, par)  # loads what another process compiled
            _dispatchers[(source, par)] = disp
            while len(_dispatchers) > MAX_KERNELS:
                _dispatchers.popitem(last=False)
        else:
            _dispatchers.move_to_end((source, par))
        compiled_now = sig not in disp.overloads
        if compiled_now:
            compiling()
        entry = disp.compile(sig)
        compiled_now = compiled_now and not disk_cache.loaded(disp, sig)
    if par:
        entry = _serialise_if_needed(entry)
    return CompiledKernel(kernel, source, entry, compiled_now, checks_inputs=checks_inputs)


def kernel_cache_size():
    """How many kernel sources are compiled and kept (bounded by MAX_KERNELS)."""
    return len(_dispatchers)


# ---------------------------------------------------------------------------------------------
# rendering: a kernel description as Python source for numba.njit
#
# A kernel becomes one Python function over arrays: a flat loop when every operand is a
# C-contiguous array of the iteration shape (or a scalar), otherwise an n-d loop nest that reads
# each operand through its own strides, with broadcast dimensions indexed at 0. The source depends
# on ranks, broadcast patterns and dtypes only, never on sizes, so a new shape reuses the kernel.

def _def_line(desc, names):
    names = [*names, "_err"] if desc.reports_errors else names
    return f"def kernel({', '.join(names)}):"


def _dims(rank):
    return [f"i{d}" for d in range(rank)]


def elementwise_source(desc, parallel, stream_from=None, checks_inputs=False):
    """Source of `def kernel(x0.., out0..)` for an elementwise kernel. Each input arrives as
    its layout says: SCALAR (a number), CONTIGUOUS, FORTRAN or STRIDED (an array). Where all
    full-size arrays are C-contiguous, or all F-contiguous, and the rest scalars, one flat loop
    runs over memory in order. With `stream_from`,
    a parallel flat loop over at least that many elements writes its outputs with
    non-temporal stores (`_stream`), fenced at the end of each chunk. An output written over
    an input (`Operand.over`, same dtype) is stored through that input's array, so LLVM sees
    one array and vectorises the loop; its check that two distinct arrays do not overlap fails
    for the same memory and runs the loop scalar (measured: a 30-op kernel 3.6x slower, a
    60-op one 6.6x). A STRIDED output is the slice of a larger array that a slice assignment
    writes (memory.py's regions)."""
    shape = desc.shape
    rank = len(shape)
    ins, outs = desc.inputs, desc.outputs
    # a 0-d input is read once, as a value: nothing to write over
    over = {j: o.over for j, o in enumerate(outs) if o.over is not None} if rank else {}
    arrays = [x for x in ins if x.layout != SCALAR and x.node.shape != ()] + list(outs)
    kinds = {x.layout for x in arrays}
    flat = all(x.node.shape == shape for x in arrays) and kinds in ({CONTIGUOUS}, {FORTRAN})
    head, per_element, names = [], [], {}
    for x in ins:
        if x.layout == SCALAR:
            names[x.node] = x.name
        elif x.node.shape == ():
            head.append(f"{x.name}_v = {x.name}[()]")
            names[x.node] = f"{x.name}_v"
        else:
            names[x.node] = f"{x.name}_e"
            if flat:
                head.append(f"{x.name}_f = _flat({x.name})")
                per_element.append(f"{x.name}_e = {x.name}_f[i]")
            else:
                idx = index_into(x.node.shape, shape, _dims(rank))
                per_element.append(f"{x.name}_e = {x.name}[{idx}]")
    body = []
    for st in desc.statements:
        body.append(f"{st.name} = {desc.expr(st, names.__getitem__)}")
        names[st.node] = st.name
    loop_range = "prange" if parallel else "range"
    lines = [_def_line(desc, [x.name for x in ins + outs])]
    if checks_inputs:
        lines += _input_checks(desc)
    if flat:
        lines.append(f"    n = {outs[0].name}.size")
        lines += [f"    {h}" for h in head]
        lines += [f"    {o.name}_f = {ins[over[j]].name}_f" if j in over
                  else f"    {o.name}_f = _flat({o.name})" for j, o in enumerate(outs)]
        if parallel and stream_from and not over:
            # not in place: a streamed store to a line just read from the cache is slow
            # (measured: 10x), as it evicts the line
            apart = "".join(f" and {o.name}_f.ctypes.data != {x.name}_f.ctypes.data"
                            for o in outs for x in ins
                            if x.layout != SCALAR and x.node.shape == shape)
            lines += [f"    if n >= {stream_from}{apart}:",
                      f"        for c in prange((n + {CHUNK - 1}) // {CHUNK}):",
                      f"            for i in range(c * {CHUNK}, min(n, c * {CHUNK} + {CHUNK})):"]
            lines += ["                " + x for x in per_element + body]
            lines += [f"                _stream({o.name}_f, i, {names[o.node]})" for o in outs]
            lines += ["            _store_fence()", "        return 0"]
        lines.append(f"    for i in {loop_range}(n):")
        lines += ["        " + x for x in per_element + body]
        lines += [f"        {o.name}_f[i] = {names[o.node]}" for o in outs]
        return "\n".join(lines) + "\n    return 0\n"

    lines += [f"    {h}" for h in head]
    lines += [f"    {outs[j].name} = {ins[k].name}" for j, k in over.items()]
    if rank:
        lines.append(f"    {', '.join(f's{d}' for d in range(rank))}, = {outs[0].name}.shape")
    index = ", ".join(_dims(rank)) or "()"
    inner = per_element + body + [f"{o.name}[{index}] = {names[o.node]}" for o in outs]

    def nest(order, indent):
        loops = []
        for k, d in enumerate(order):
            loops.append(f"{indent}for i{d} in {loop_range if k == 0 else 'range'}(s{d}):")
            indent += "    "
        return loops + [indent + x for x in inner]

    # Loops in memory order: C order, or reversed where every full-size array is read
    # along its first axis fastest (F order, transposes), or where only some are (F-ordered
    # inputs, a C-ordered output) in tiles of both orders' fast axes (measured on F-ordered
    # 3000x3000 a * b + c, loaded machine: C order 0.14x NumPy's speed, F order 0.43x, tiles
    # 0.47x; the executor now writes such results in F order, as NumPy does)
    full = [x for x in ins + outs if x.layout != SCALAR and x.node.shape == shape]
    votes = [f"(abs({x.name}.strides[0]) < abs({x.name}.strides[{rank - 1}]))"
             for x in full if x.layout == STRIDED]
    fortran = sum(x.layout == FORTRAN for x in full)
    if rank < 2 or not votes and not fortran:
        return "\n".join(lines + nest(range(rank), "    ")) + "\n    return 0\n"
    if fortran == len(full):
        return "\n".join(lines + nest(reversed(range(rank)), "    ")) + "\n    return 0\n"
    lines.append(f"    f_order = {' + '.join(votes + [str(fortran)] * bool(fortran))}")
    lines.append(f"    if f_order == {len(full)}:")
    lines += nest(reversed(range(rank)), "        ")
    if rank == 2 and len(votes) < len(full):
        tiles = [f"for b{d} in {loop_range if d == 0 else 'range'}((s{d} + {TILE - 1}) "
                 f"// {TILE}):" for d in range(2)]
        tiles += [f"for i{d} in range(b{d} * {TILE}, min(s{d}, b{d} * {TILE} + {TILE})):"
                  for d in range(2)]
        lines.append("    elif f_order:")
        lines += ["        " + "    " * k + x for k, x in enumerate(tiles)]
        lines += ["                        " + x for x in inner]
    lines.append("    else:")
    lines += nest(range(rank), "        ")
    return "\n".join(lines) + "\n    return 0\n"


def _input_checks(desc):
    """The first lines of an elementwise kernel that checks its inputs, which returns 0 once it
    has run: it returns 1 at once, having written nothing, unless each array input has the
    shape its broadcast to the first output needs and C- or F-contiguous ones are laid out so.
    The check costs nothing beside the arrays' unpacking, which the call pays anyway, and a fast
    path leaves it to the kernel (dispatch.py); it adds about 15 ms to the compile, so only the
    first kernel of a plan has it."""
    if not desc.outputs:
        return []
    shape, out = desc.shape, desc.outputs[0].name
    tests = []
    for x in desc.inputs:
        if x.layout == SCALAR or x.node.shape == ():
            continue
        offset = len(shape) - len(x.node.shape)
        tests += [f"({x.name}.shape[{d}] != 1)" if n == 1 and shape[d + offset] != 1
                  else f"({x.name}.shape[{d}] != {out}.shape[{d + offset}])"
                  for d, n in enumerate(x.node.shape)]
        if x.layout in (CONTIGUOUS, FORTRAN):
            tests.append(f"(not _laid_out({x.name}))")
    # | rather than `or`: no branch per test (Numba types each branch, at a cost in compile time)
    return [f"    if {' | '.join(tests)}:", "        return 1"] if tests else []


# Tiles of a 2-d elementwise kernel over arrays of both orders: 32x32 float64 is 8 KiB per array.
TILE = 32

# A full reduction (to one value) runs in parallel as chunks of this many elements, each with
# its own partial result, combined in chunk order at the end.
CHUNK = 1 << 16


# Independent accumulators per chunk: a float sum is a chain of dependent adds, so one
# accumulator runs at the add latency; UNROLL of them keep the pipeline (and memory) busy.
UNROLL = 4


# A float sum or product accumulates through an add (multiply) that LLVM may reassociate, so
# it vectorises the loop, keeping several vectors of partial results; a plain add chains each
# step on the last, one add's latency per element. Float max and min select through _rmax and
# _rmin for the same reason. Measured on a loaded machine, interleaved with NumPy: float32
# softmax 4096x1024 2.3x -> 3.2x NumPy's speed, layernorm 8192x1024 3.4x -> 5.7x. NumPy's own
# sum is pairwise: no order of the additions is the exact one.
REASSOCIABLE = {"sum": "_radd", "prod": "_rmul"}


def _reassociable(red):
    return red.op in REASSOCIABLE and red.acc.kind == "f"


def _accumulate(red, acc, x):
    """Code of one accumulation step of reduction `red`."""
    return f"{REASSOCIABLE[red.op]}({acc}, {x})" if _reassociable(red) else red.update(acc, x)


def _unrolled(init, inner, accs, reductions, var, lo, hi):
    """`for var in range(lo, hi)` over `inner`, unrolled UNROLL times with an accumulator per
    copy, then the remainder, then the copies combined in order into `accs`."""
    def renamed(lines, k):
        for acc in accs:
            lines = [re.sub(rf"\b{acc}\b", f"{acc}{k}", x) for x in lines]
        return lines

    out = [x for k in range(UNROLL) for x in renamed(init, k)]
    out += [f"for q in range(({hi} - {lo}) // {UNROLL}):"]
    for k in range(UNROLL):
        out += [f"    {var} = {lo} + q * {UNROLL} + {k}"] + ["    " + x for x in renamed(inner, k)]
    out += [f"for {var} in range({lo} + ({hi} - {lo}) // {UNROLL} * {UNROLL}, {hi}):"]
    out += ["    " + x for x in renamed(inner, 0)]
    for acc, red in zip(accs, reductions):
        out.append(f"{acc} = {acc}0")
        out += [f"{acc} = {red.update(acc, f'{acc}{k}')}" for k in range(1, UNROLL)]
    return out


def _nan_flagged(red):
    """Float max/min reductions track NaN in a flag beside the accumulator."""
    return red.op in ("max", "min") and red.acc.kind == "f"


def _row_homes(desc):
    """Buffered values that live in an output's row instead of a row buffer of their own:
    saves the buffer and a copy (measured: softmax 15% faster). A value's home is its own
    output row, or the row of an output of the same dtype written in the last pass and computed
    from the value, so each element is read before the output overwrites it. Only where a row
    is one contiguous axis (the last)."""
    if list(desc.axes) != [len(desc.shape) - 1]:
        return {}
    st = desc.by_node

    def depends(o, m):  # through same-index (element) values only
        return o is m or any(a in st and st[a].role == ELEMENT and depends(a, m) for a in o.args)

    homes, taken = {}, set()
    candidates = [o.node for o in desc.outputs if st[o.node].role == ELEMENT]
    for m in desc.buffered:
        if m in candidates:
            homes[m] = m
            taken.add(m)
            continue
        for o in candidates:
            if o not in taken and st[o].at == desc.passes - 1 \
                    and compute_dtype(o.dtype) == compute_dtype(m.dtype) and depends(o, m):
                homes[m] = o
                taken.add(o)
                break
    return homes


def _read_zero_d(desc):
    """Lines loading each 0-d array input once, before any loop: inside a prange body Numba's
    parfor lowering passes a 0-d array to the loop as its scalar value, and `x[()]` on that
    fails to type."""
    return [f"    {x.name}_v = {x.name}[()]" for x in desc.inputs
            if x.layout != SCALAR and x.node.shape == ()]


class _Reader:
    """Names of the values a reduction or rowwise kernel's statements read: a statement's
    local, a scalar input as it is, a 0-d input as the value _read_zero_d loaded, a row
    value's input at its row, else the element the loop loaded as `x`_e."""

    def __init__(self, desc):
        self.desc = desc
        self.st = desc.by_node
        self.input = {x.node: x for x in desc.inputs}

    def __call__(self, a, cons):
        if a in self.st:
            return self.st[a].name
        x = self.input[a]
        if x.layout == SCALAR:
            return x.name
        if a.shape == ():
            return f"{x.name}_v"
        if self.st[cons].role == ROW:
            names = self.desc.row_names(cons.shape, _dims(len(self.desc.shape)))
            return f"{x.name}[{index_into(a.shape, cons.shape, names)}]"
        return f"{x.name}_e"

    def expr(self, st):
        return self.desc.expr(st, lambda a: self(a, st.node))


def reduction_source(desc, parallel):
    """Source of `def kernel(x0.., out0.., s0..)` for a reduction or rowwise kernel: s0.. are
    the domain's sizes. A one-pass reduction that keeps the last axis walks columns
    (column_source); a strided operand may be transposed, making a reduced axis the contiguous
    one, so with one the kernel picks row or column loops at run time from its strides."""
    last = len(desc.shape) - 1
    if desc.passes > 1 or last not in desc.kept:
        return row_source(desc, parallel)
    cols = column_source(desc, parallel)
    probe = next((x.name for x in desc.inputs
                  if x.layout == STRIDED and x.node.shape == desc.shape), None)
    if probe is None:
        return cols
    head, *by_cols = cols.splitlines()
    _, *by_rows = row_source(desc, parallel).splitlines()
    return "\n".join([head, f"    if abs({probe}.strides[{last}]) <= "
                             f"abs({probe}.strides[{desc.axes[-1]}]):"]
                     + ["    " + x for x in by_cols] + ["    else:"]
                     + ["    " + x for x in by_rows]) + "\n"


def row_source(desc, parallel):
    """A reduction or rowwise kernel as row loops: the kept axes are the outer loop (prange
    over rows); each pass over a row is an inner loop over the reduced axes. A full reduction
    in parallel runs in chunks."""
    st = desc.by_node
    nodes = [s.node for s in desc.statements]
    buffered = set(desc.buffered)
    rank, R, kept = len(desc.shape), desc.axes, desc.kept
    ins = {x.node: x.name for x in desc.inputs}
    lay = {x.node: x.layout for x in desc.inputs}
    outs = {o.node: o.name for o in desc.outputs}
    dims = [f"s{d}" for d in range(rank)]
    chunked = parallel and not kept
    # a full reduction walks one flat index: over contiguous operands, or any 1-d ones
    flat = not kept and rank > 0 and (rank == 1 or all(
        lay[n] == SCALAR or n.shape == () or (lay[n] == CONTIGUOUS and n.shape == desc.shape)
        for n in ins if any(st[u].role != ROW for u in nodes if n in u.args)))
    reshaped = {n for n in ins if lay[n] == CONTIGUOUS and n.shape == desc.shape}
    elem_names = _dims(rank)
    name = {m: st[m].name for m in nodes}
    homes = {} if chunked else _row_homes(desc)
    read = _Reader(desc)

    head = [_def_line(desc, [*ins.values(), *outs.values(), *dims])]
    head += _read_zero_d(desc)
    body = []  # lines at row level (indented under the row loop)
    if flat:
        head.append(f"    n = {' * '.join(dims)}")
        head += [f"    {ins[n]}_f = _flat({ins[n]})" for n in ins if n in reshaped]
        head += [f"    {outs[n]}_f = _flat({outs[n]})" for n in outs
                 if st[n].role == ELEMENT]
    if buffered - homes.keys():
        head.append(f"    rowsize = {' * '.join(f's{d}' for d in R)}")
    rflat = " + ".join(  # flat index within the reduced axes, C order
        "*".join([f"i{d}"] + [f"s{e}" for e in R if e > d]) for d in R) or "0"
    if flat:
        rflat = "i"

    def row_nodes(p):
        return [f"{s.name} = {read.expr(s)}" for s in desc.statements
                if s.role == ROW and s.at == p]

    def segment(p, roots, accs, loaded):
        """(init, inner) of one loop over a row in pass p: computes `roots` (writing them to
        outputs and buffers) and accumulates `accs`; `loaded(m)` says m is read from its buffer."""
        needed = set()

        def need(m):
            if m in needed or m not in st or st[m].role != ELEMENT:
                return
            needed.add(m)
            if not loaded(m):
                for a in m.args:
                    need(a)

        for m in roots:
            need(m)
        for r in accs:
            need(r.args[0])
        order = [m for m in nodes if m in needed]
        outside = []
        for m in order + accs:
            if m in needed and loaded(m):
                continue
            for a in m.args:
                if a not in st and not a.is_scalar_const() and lay[a] != SCALAR \
                        and a.shape != () and a not in outside:
                    outside.append(a)
        init, inner = [], []
        for a in outside:
            if flat and a in reshaped:
                src = f"{ins[a]}_f[i]"
            else:
                src = f"{ins[a]}[{index_into(a.shape, desc.shape, ['i'] if flat else elem_names)}]"
            inner.append(f"{ins[a]}_e = {src}")
        for m in order:
            if loaded(m):
                inner.append(f"{name[m]} = {name[m]}_b[{rflat}]")
                continue
            inner.append(f"{name[m]} = {read.expr(st[m])}")
            if m in buffered and st[m].at == p and homes.get(m) is not m:
                inner.append(f"{name[m]}_b[{rflat}] = {name[m]}")
            if m in outs and st[m].at == p:
                idx = "i" if flat else ", ".join(elem_names) or "()"
                inner.append(f"{outs[m]}{'_f' if flat else ''}[{idx}] = {name[m]}")
        for r in accs:
            red = desc.reduction(st[r])
            x = r.args[0]
            value = cast(read(x, r), x.dtype, red.acc)
            a = f"{name[r]}_a"
            init.append(f"{a} = {red.init}")
            if red.arg:
                init.append(f"{name[r]}_i = {'lo' if chunked else '0'}")
                inner.append(f"{name[r]}_x = {value}")
                inner.append(f"if {red.update(a, name[r] + '_x')}:")
                inner.append(f"    {a} = {name[r]}_x")
                inner.append(f"    {name[r]}_i = {rflat}")
            elif _nan_flagged(red):
                # the NaN-propagating select stops LLVM vectorising the loop: keep a select
                # that assumes no NaN (ties take the new value, as NumPy's reduce does) and a
                # NaN flag that nan_fixups applies after the loop
                v = f"{name[r]}_v"
                init.append(f"{name[r]}_n = False")
                inner += [f"{v} = {value}",
                          f"{a} = {'_rmax' if r.op == 'max' else '_rmin'}({a}, {v})",
                          f"{name[r]}_n = {name[r]}_n | ({v} != {v})"]
            else:
                inner.append(f"{a} = {_accumulate(red, a, value)}")
        return init, inner

    def nan_fixups(accs):
        return [f"if {name[r]}_n: {name[r]}_a = {literal(np.nan, red.acc)}"
                for r in accs for red in [desc.reduction(st[r])] if _nan_flagged(red)]

    def pass_lines(p):
        """The accumulated reductions of pass p and the lines of its loops over a row. When the
        pass fills a row buffer and also reduces, the buffer is filled by a loop of its own (no
        loop-carried dependence, so it vectorises) and the reductions read it back."""
        accs = [s.node for s in desc.statements if s.role == REDUCE and s.at == p]
        roots = [s.node for s in desc.statements
                 if s.role == ELEMENT and s.at == p and (s.node in outs or s.node in buffered)]
        fill = [m for m in roots if m in buffered]
        if fill and accs:
            segments = [(roots, [], lambda m: m in buffered and st[m].at < p),
                        ([], accs, lambda m: m in buffered and st[m].at <= p)]
        else:
            segments = [(roots, accs, lambda m: m in buffered and st[m].at < p)]
        lines = []
        for seg_roots, seg_accs, loaded in segments:
            init, inner = segment(p, seg_roots, seg_accs, loaded)
            lines += loops(init, inner, seg_accs) + nan_fixups(seg_accs)
        return accs, lines

    def loops(init, inner, accs):
        reds = [desc.reduction(st[r]) for r in accs]
        unroll = accs and not any(red.arg for red in reds) and (flat or len(R) == 1) \
            and not all(_reassociable(red) or _nan_flagged(red) for red in reds)
        if unroll and (flat or not chunked):
            var, lo, hi = ("i", "lo", "hi") if chunked else ("i", "0", "n") if flat \
                else (f"i{R[0]}", "0", f"s{R[0]}")
            return _unrolled(init, inner, [f"{name[r]}_a" for r in accs], reds, var, lo, hi)
        if flat:
            bounds = "lo, hi" if chunked else "n"
            return init + [f"for i in range({bounds}):"] + ["    " + x for x in inner]
        out, indent = list(init), ""
        for d in R:
            if d == 0 and chunked:
                continue
            out.append(f"{indent}for i{d} in range(s{d}):")
            indent += "    "
        return out + [indent + x for x in inner]

    def finish_reduction(r):
        if desc.reduction(st[r]).arg:
            return f"{name[r]} = {name[r]}_i"
        return f"{name[r]} = {result_cast(name[r] + '_a', r.dtype)}"

    if chunked:
        # one pass (fusion guarantees it): chunks of the flat index, or rows of axis 0
        body += row_nodes(0)
        accs, pass0 = pass_lines(0)
        if flat:
            head.append(f"    nchunks = (n + {CHUNK - 1}) // {CHUNK}")
            loop_head = ["for c in prange(nchunks):", "    lo = c * " + str(CHUNK),
                         f"    hi = min(lo + {CHUNK}, n)"]
        else:
            head.append("    nchunks = s0")
            rest = " * ".join(dims[1:]) or "1"
            loop_head = ["for c in prange(nchunks):", "    i0 = c", f"    lo = c * {rest}"]
        for r in accs:
            red = desc.reduction(st[r])
            head.append(f"    {name[r]}_p = np.empty(nchunks, np.{red.acc.name})")
            if red.arg:
                head.append(f"    {name[r]}_pi = np.empty(nchunks, np.int64)")
        chunk = loop_head + ["    " + x for x in pass0]
        for r in accs:
            chunk.append(f"    {name[r]}_p[c] = {name[r]}_a")
            if desc.reduction(st[r]).arg:
                chunk.append(f"    {name[r]}_pi[c] = {name[r]}_i")
        body += chunk
        for r in accs:  # combine the partial results in chunk order
            red, a = desc.reduction(st[r]), f"{name[r]}_a"
            body.append(f"{a} = {red.init}")
            if red.arg:
                body.append(f"{name[r]}_i = 0")
            body.append("for c in range(nchunks):")
            if red.arg:
                body += [f"    if {red.update(a, name[r] + '_p[c]')}:",
                         f"        {a} = {name[r]}_p[c]", f"        {name[r]}_i = {name[r]}_pi[c]"]
            else:
                body.append(f"    {a} = {red.update(a, name[r] + '_p[c]')}")
            body.append(finish_reduction(r))
        body += row_nodes(1)
    else:
        row = f"[{', '.join(f'i{d}' for d in kept)}]" if kept else ""
        body += [f"{name[m]}_b = {outs[homes[m]]}{row}"
                 if m in homes else
                 f"{name[m]}_b = np.empty(rowsize, np.{compute_dtype(m.dtype).name})"
                 for m in desc.buffered]
        body += row_nodes(0)
        for p in range(desc.passes):
            accs, lines = pass_lines(p)
            body += lines
            body += [finish_reduction(r) for r in accs]
            body += row_nodes(p + 1)
    for o in desc.outputs:
        if st[o.node].role != ELEMENT:
            body.append(f"{o.name}[{desc.row_index(o.node, elem_names)}] = {name[o.node]}")
    lines = list(head)
    if kept:
        rng = "prange" if parallel else "range"
        if len(kept) == 1:
            lines.append(f"    for i{kept[0]} in {rng}(s{kept[0]}):")
        else:
            lines.append(f"    for row in {rng}({' * '.join(f's{d}' for d in kept)}):")
            for j, d in enumerate(kept):  # no reassigned names: parfors rejects them
                inner = " * ".join(f"s{e}" for e in kept[j + 1:])
                q = f"(row // ({inner}))" if inner else "row"
                lines.append(f"        i{d} = {q}" + (f" % s{d}" if j else ""))
        lines += ["        " + x for x in body]
    else:
        lines += ["    " + x for x in body]
    return "\n".join(lines) + "\n"


# A reduction that keeps the last axis (x.sum(axis=0), y.sum(axis=1) of a 3-d y) walks memory
# in order: the innermost loop runs over a block of the last axis, and each reduction keeps
# an array of accumulators, one per column of the block. A loop over the reduced axes per
# output instead reads with a stride (measured: 10-30x slower than NumPy). Blocks of columns
# are the parallel tasks, so each accumulator has one owner, and every output is reduced in
# the same order (sequentially along the reduced axes) whatever the block size and threads.
# Operands are read through 1-d slices of the block (measured: 3-5x faster than indexing the
# n-d array in the inner loop, which LLVM does not vectorise as well). Blocks are as wide as
# possible: on one thread, x.sum(axis=0) of (4096, 4096) float64 took 8.5 ms in rows 4096
# wide, 10.9 ms in 2048-wide blocks, 13 ms in 512 and 37 ms in 32 (hardware prefetching runs
# past the end of a block). So a row is split only to give each thread a task, and not below
# MIN_COLUMN_BLOCK; COLUMN_BLOCK bounds the accumulators (512 KiB of float64, in L2).
COLUMN_BLOCK = 1 << 16
MIN_COLUMN_BLOCK = 1024

# A tall, narrow array ((250000, 8).mean(axis=0)) has fewer column blocks than threads. In
# parallel its first reduced axis is then split too, into chunks of about CHUNK elements (at
# least MIN_CHUNK_ROWS rows: the partial results stay a small part of the input); each chunk
# reduces its rows into its own row of partial results, combined in chunk order. The chunks
# depend on the shape only, so results do not depend on the number of threads. One column
# block runs serial below SPLIT_WORK, counting each element and ROW_WORK per row of the block
# (a short row costs its loop's overhead): on 2 cores, (x * x).sum(axis=0) of (65536, 8) took
# 0.28 ms in parallel, 0.40 serial; (32768, 16) 0.18 and 0.14; (512, 1024) float32 0.12, 0.07.
MIN_CHUNK_ROWS = 64
ROW_WORK = 24
SPLIT_WORK = 3 << 19


def column_source(desc, parallel):
    """Source of a one-pass reduction kernel that keeps the last axis (see COLUMN_BLOCK).
    Tasks are (index of the other kept axes, block of the last axis); within a task the
    reduced axes are the outer loops and the block (j over lo..hi) is the inner loop.
    Epilogue (row) nodes run after the reduction, once per column. In parallel with fewer
    tasks than threads, the first reduced axis is split into chunks too (_column_chunks)."""
    rank, R, kept = len(desc.shape), desc.axes, desc.kept
    last, outer = rank - 1, kept[:-1]
    ins = {x.node: x for x in desc.inputs}
    outs = {o.node: o.name for o in desc.outputs}
    dims = [f"s{d}" for d in range(rank)]
    col = f"i{last} - lo"  # a column's place in its block, in the epilogue loop
    read = _Reader(desc)

    def block_of(arr, shape):
        """Per row of the block: a 1-d slice of arr (or its one value when arr is broadcast
        along the last axis); returns (row line, element line)."""
        idx = index_into(shape, desc.shape, _dims(last) + ["lo:hi"])
        if not idx.endswith("lo:hi"):
            return f"{arr}_e = {arr}[{idx}]", None
        return f"{arr}_r = {arr}[{idx}]", f"{arr}_e = {arr}_r[j]"

    loaded = [a for s in desc.statements if s.role != ROW for a in s.node.args
              if a in ins and ins[a].layout != SCALAR and a.shape != ()]
    per_row, per_element = [], []
    for a in dict.fromkeys(loaded):
        row, element = block_of(ins[a].name, a.shape)
        per_row.append(row)
        per_element += [element] if element else []
    init, finish = [], []
    for s in desc.statements:
        m = s.node
        if s.role == ELEMENT:
            per_element.append(f"{s.name} = {read.expr(s)}")
            if m in outs:
                per_row.append(block_of(outs[m], m.shape)[0])
                per_element.append(f"{outs[m]}_r[j] = {s.name}")
        elif s.role == REDUCE:
            red, a = desc.reduction(s), f"{s.name}_c"
            value = cast(read(m.args[0], m), m.args[0].dtype, red.acc)
            init.append(f"{a} = np.full(hi - lo, {red.init})")
            if red.arg:  # the first extreme wins: replaced only by a strictly better value
                rflat = " + ".join("*".join([f"i{d}"] + [f"s{e}" for e in R if e > d])
                                   for d in R)
                init.append(f"{s.name}_j = np.zeros(hi - lo, np.int64)")
                per_element += [f"{s.name}_x = {value}",
                                f"if {red.update(f'{a}[j]', s.name + '_x')}:",
                                f"    {a}[j] = {s.name}_x", f"    {s.name}_j[j] = {rflat}"]
                finish.append(f"{s.name} = {s.name}_j[{col}]")
            else:  # max/min: the NaN-propagating select vectorises here (no loop-carried value)
                per_element.append(f"{a}[j] = {red.update(f'{a}[j]', value)}")
                finish.append(f"{s.name} = {result_cast(f'{a}[{col}]', m.dtype)}")
    finish += [f"{s.name} = {read.expr(s)}" for s in desc.statements if s.role == ROW]
    finish += [f"{o.name}[{desc.row_index(o.node, _dims(rank))}] = {read.st[o.node].name}"
               for o in desc.outputs if read.st[o.node].role != ELEMENT]

    lines = [_def_line(desc, [*(x.name for x in desc.inputs), *outs.values(), *dims])]
    lines += _read_zero_d(desc)
    tasks = _column_tasks(desc) if parallel else None
    if tasks is not None and tasks[0] < numba.get_num_threads():
        return "\n".join(lines + _column_chunks(desc, init, per_row, per_element, finish)) + "\n"
    if parallel:  # blocks per row: enough for a task per thread
        others = " * ".join(f"s{d}" for d in outer)
        lines.append(f"    k = max(1, _threads() // max(1, {others}))" if outer
                     else "    k = _threads()")
    else:
        lines.append("    k = 1")
    lines.append(f"    w = min({COLUMN_BLOCK}, max({MIN_COLUMN_BLOCK}, (s{last} + k - 1) // k))")
    tasks = " * ".join(["nb"] + [f"s{d}" for d in outer])
    lines += [f"    nb = (s{last} + w - 1) // w",
              f"    for task in {'prange' if parallel else 'range'}({tasks}):"]
    for k, d in enumerate(outer):  # no reassigned names: parfors rejects them
        below = " * ".join(["nb"] + [f"s{e}" for e in outer[k + 1:]])
        lines.append(f"        i{d} = (task // ({below}))" + (f" % s{d}" if k else ""))
    lines += ["        lo = task % nb * w", f"        hi = min(lo + w, s{last})"]
    lines += ["        " + x for x in init]
    indent = "        "
    for d in R:
        lines.append(f"{indent}for i{d} in range(s{d}):")
        indent += "    "
    lines += [indent + x for x in per_row]
    lines.append(f"{indent}for j in range(hi - lo):")
    lines += [indent + "    " + x for x in per_element]
    lines.append(f"        for i{last} in range(lo, hi):")
    lines += ["            " + x for x in finish]
    return "\n".join(lines) + "\n"


def _column_chunks(desc, init, per_row, per_element, finish):
    """The loops of column_source split into row chunks (see MIN_CHUNK_ROWS): tasks are
    (chunk, index of the other kept axes, block of the last axis); each writes its block's
    accumulators into its chunk's row of partial results `t_p` (with the indices `t_pj` of
    an arg reduction). Then, per index of the other kept axes, the partial results combine in
    chunk order (an arg reduction takes a later chunk's extreme only if strictly better, so
    the first extreme wins) and the epilogue runs once per column."""
    rank, R, kept = len(desc.shape), desc.axes, desc.kept
    last, outer = rank - 1, kept[:-1]
    first = R[0]
    reds = [s for s in desc.statements if s.role == REDUCE]
    others = " * ".join(f"s{d}" for d in outer) or "1"
    inner = " * ".join(f"s{d}" for d in (*R[1:], last))
    lines = [f"    w = max(1, min({COLUMN_BLOCK}, s{last}))",  # one block per row where it fits
             f"    nb = (s{last} + w - 1) // w",
             f"    rows = max({MIN_CHUNK_ROWS}, {CHUNK} // max(1, {inner}))",
             f"    nc = (s{first} + rows - 1) // rows"]
    for s in reds:
        red = desc.reduction(s)
        lines.append(f"    {s.name}_p = np.empty((nc, {others} * s{last}), np.{red.acc.name})")
        if red.arg:
            lines.append(f"    {s.name}_pj = np.empty((nc, {others} * s{last}), np.int64)")

    def split_outer(var, below_first, indent):
        out = []
        for k, d in enumerate(outer):  # no reassigned names: parfors rejects them
            below = " * ".join(below_first + [f"s{e}" for e in outer[k + 1:]]) or "1"
            out.append(f"{indent}i{d} = ({var} // ({below}))" + (f" % s{d}" if k else ""))
        return out

    lines.append(f"    for task in prange(nc * nb * {others}):")
    lines += [f"        c = task // (nb * {others})", f"        b = task % (nb * {others})"]
    lines += split_outer("b", ["nb"], "        ")
    lines += ["        lo = b % nb * w", f"        hi = min(lo + w, s{last})",
              "        base = b // nb * s" + str(last)]
    lines += ["        " + x for x in init]
    indent = "        "
    for d in R:
        bounds = f"c * rows, min(c * rows + rows, s{d})" if d == first else f"s{d}"
        lines.append(f"{indent}for i{d} in range({bounds}):")
        indent += "    "
    lines += [indent + x for x in per_row]
    lines.append(f"{indent}for j in range(hi - lo):")
    lines += [indent + "    " + x for x in per_element]
    for s in reds:
        lines.append(f"        {s.name}_p[c, base + lo:base + hi] = {s.name}_c")
        if desc.reduction(s).arg:
            lines.append(f"        {s.name}_pj[c, base + lo:base + hi] = {s.name}_j")
    # combine, in chunk order, then the epilogue: small next to the chunks, so serial
    lines.append(f"    for o in range({others}):")
    lines += split_outer("o", [], "        ")
    lines += ["        lo = 0", f"        hi = s{last}", f"        base = o * s{last}"]
    lines += ["        " + x for x in init]
    lines.append("        for c in range(nc):")
    for s in reds:
        red, a = desc.reduction(s), f"{s.name}_c"
        lines.append(f"            {s.name}_q = {s.name}_p[c, base:base + hi]")
        if red.arg:
            lines += [f"            {s.name}_qj = {s.name}_pj[c, base:base + hi]",
                      "            for j in range(hi):",
                      f"                if {red.update(f'{a}[j]', f'{s.name}_q[j]')}:",
                      f"                    {a}[j] = {s.name}_q[j]",
                      f"                    {s.name}_j[j] = {s.name}_qj[j]"]
        else:
            lines += ["            for j in range(hi):",
                      f"                {a}[j] = {red.update(f'{a}[j]', f'{s.name}_q[j]')}"]
    lines.append(f"        for i{last} in range(lo, hi):")
    lines += ["            " + x for x in finish]
    return lines
