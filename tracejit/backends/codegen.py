"""The CPU backend's kernel source: fused kernels rendered as Python for numba.njit.

A kernel becomes one Python function over arrays: a flat loop when every operand is a
C-contiguous array of the iteration shape (or a scalar), otherwise an n-d loop nest that reads
each operand through its own strides, with broadcast dimensions indexed at 0. The source depends
on ranks, broadcast patterns and dtypes only, never on sizes, so a new shape reuses the kernel.
"""

import re

import numpy as np

from ..kernels import (  # noqa: F401 (re-exported for the CPU backend)
    CONTIGUOUS,
    SCALAR,
    STRIDED,
    acc_type,
    literal,
    reports_errors,
    result_cast,
    source_name,
)
from ..kernels import index_into as _index_into
from ..kernels import node_expr as _node_expr
from ..ops import OPS, cast, compute_dtype


def _def_line(kernel, names):
    names = [*names, "_err"] if reports_errors(kernel.nodes) else names
    return f"def kernel({', '.join(names)}):"






def scalar_body(kernel, names):
    """Lines computing every kernel node from operand names; returns (lines, node -> name)."""
    lines, env = [], dict(names)
    for i, node in enumerate(kernel.nodes):
        op = OPS[node.op]
        loop = op.loop(node)
        exprs = []
        for arg, dt in zip(node.args, loop):
            if arg in env:
                exprs.append(cast(env[arg], arg.dtype, dt))
            else:  # an inlined scalar constant
                exprs.append(literal(arg.attrs["value"], dt))
        env[node] = f"t{i}"
        lines.append(f"t{i} = {result_cast(op.code(exprs, node, loop), node.dtype)}")
    return lines, env


def elementwise_source(kernel, layouts, parallel, stream_from=None, over=None,
                       out_layouts=None):
    """Source of `def kernel(x0.., out0..)` for an elementwise kernel. layouts[i] tells how
    input i arrives: SCALAR (a number), CONTIGUOUS or STRIDED (an array). With `stream_from`,
    a parallel flat loop over at least that many elements writes its outputs with
    non-temporal stores (`_stream`), fenced at the end of each chunk. `over` maps an output
    to the input it is written over (in place, same dtype): the kernel stores through that
    input's array, so LLVM sees one array and vectorises the loop; its check that two
    distinct arrays do not overlap fails for the same memory and runs the loop scalar
    (measured: a 30-op kernel 3.6x slower, a 60-op one 6.6x). `out_layouts` says how each
    output is stored: CONTIGUOUS, or STRIDED for the slice of a larger array that a slice
    assignment writes (memory.py's regions)."""
    shape = kernel.shape
    rank = len(shape)
    over = over if over and rank else {}  # a 0-d input is read once, as a value
    ins = [f"x{i}" for i in range(len(kernel.inputs))]
    outs = [f"out{i}" for i in range(len(kernel.outputs))]
    flat = all(lay == SCALAR or node.shape == () or (lay == CONTIGUOUS and node.shape == shape)
               for node, lay in zip(kernel.inputs, layouts)) and \
        all(lay == CONTIGUOUS for lay in out_layouts or ())
    head, per_element, names = [], [], {}
    for name, node, lay in zip(ins, kernel.inputs, layouts):
        if lay == SCALAR:
            names[node] = name
        elif node.shape == ():
            head.append(f"{name}_v = {name}[()]")
            names[node] = f"{name}_v"
        else:
            names[node] = f"{name}_e"
            if flat:
                head.append(f"{name}_f = {name}.reshape(n)")
                per_element.append(f"{name}_e = {name}_f[i]")
            else:
                idx = _broadcast_index(node.shape, shape)
                per_element.append(f"{name}_e = {name}[{idx}]")
    body, env = scalar_body(kernel, names)
    loop_range = "prange" if parallel else "range"
    lines = [_def_line(kernel, ins + outs)]
    if flat:
        lines.append(f"    n = {outs[0]}.size")
        lines += [f"    {h}" for h in head]
        lines += [f"    {o}_f = x{over[j]}_f" if j in over else f"    {o}_f = {o}.reshape(n)"
                  for j, o in enumerate(outs)]
        if parallel and stream_from and not over:
            # not in place: a streamed store to a line just read from the cache is slow
            # (measured: 10x), as it evicts the line
            apart = "".join(f" and {o}_f.ctypes.data != {x}_f.ctypes.data" for o in outs
                            for x, node, lay in zip(ins, kernel.inputs, layouts)
                            if lay != SCALAR and node.shape == shape)
            lines += [f"    if n >= {stream_from}{apart}:",
                      f"        for c in prange((n + {CHUNK - 1}) // {CHUNK}):",
                      f"            for i in range(c * {CHUNK}, min(n, c * {CHUNK} + {CHUNK})):"]
            lines += ["                " + x for x in per_element + body]
            lines += [f"                _stream({o}_f, i, {env[node]})"
                      for o, node in zip(outs, kernel.outputs)]
            lines += ["            _store_fence()", "        return"]
        lines.append(f"    for i in {loop_range}(n):")
        indent = "        "
        stores = [f"{o}_f[i] = {env[node]}" for o, node in zip(outs, kernel.outputs)]
    else:
        lines += [f"    {h}" for h in head]
        lines += [f"    {outs[j]} = x{k}" for j, k in over.items()]
        if rank:
            lines.append(f"    {', '.join(f's{d}' for d in range(rank))}, = {outs[0]}.shape")
        indent = "    "
        for d in range(rank):
            lines.append(f"{indent}for i{d} in {loop_range if d == 0 else 'range'}(s{d}):")
            indent += "    "
        index = ", ".join(f"i{d}" for d in range(rank)) or "()"
        stores = [f"{o}[{index}] = {env[node]}" for o, node in zip(outs, kernel.outputs)]
    lines += [indent + s for s in per_element + body + stores]
    return "\n".join(lines) + "\n"


def _broadcast_index(in_shape, out_shape):
    offset = len(out_shape) - len(in_shape)
    idx = []
    for j, size in enumerate(in_shape):
        d = j + offset
        idx.append("0" if size == 1 and out_shape[d] != 1 else f"i{d}")
    return ", ".join(idx)




# ---------------------------------------------------------------------------------------------
# reduction and rowwise kernels

# A full reduction (to one value) runs in parallel as chunks of this many elements, each with
# its own partial result, combined in chunk order at the end.
CHUNK = 1 << 16


# Independent accumulators per chunk: a float sum is a chain of dependent adds, so one
# accumulator runs at the add latency; UNROLL of them keep the pipeline (and memory) busy.
UNROLL = 4


def _unrolled(init, inner, accs, codes, dtypes, var, lo, hi):
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
    for acc, code, dt in zip(accs, codes, dtypes):
        out.append(f"{acc} = {acc}0")
        out += [f"{acc} = {code.update(acc, f'{acc}{k}', dt)}" for k in range(1, UNROLL)]
    return out




def _nan_flagged(node, acc_dtype):
    """Float max/min reductions track NaN in a flag beside the accumulator."""
    return node.op in ("max", "min") and np.dtype(acc_dtype).kind == "f"




def _row_names(shape, dom):
    """Index names of a row value's dimensions (keepdims form, or with the axes dropped)."""
    rank = len(dom.shape)
    if len(shape) <= rank and tuple([1] * (rank - len(shape)) + list(shape)) == dom.row_shape:
        off = rank - len(shape)
        return ["0" if d + off in dom.axes else f"i{d + off}" for d in range(len(shape))]
    return [f"i{d}" for d in dom.kept]


def _row_homes(kernel, dom):
    """Buffered values that live in an output's row instead of a row buffer of their own:
    saves the buffer and a copy (measured: softmax 15% faster). A value's home is its own
    output row, or the row of an output of the same dtype written in the last pass and computed
    from the value, so each element is read before the output overwrites it. Only where a row
    is one contiguous axis (the last)."""
    meta = kernel.meta
    roles, at = meta["roles"], meta["at"]
    if list(dom.axes) != [len(dom.shape) - 1]:
        return {}

    def depends(o, m):  # through same-index (element) values only
        return o is m or any(roles.get(a) == "element" and depends(a, m) for a in o.args)

    homes, taken = {}, set()
    candidates = [o for o in kernel.outputs if roles[o] == "element"]
    for m in meta["buffered"]:
        if m in candidates:
            homes[m] = m
            taken.add(m)
            continue
        for o in candidates:
            if o not in taken and at[o] == meta["count"] - 1 \
                    and compute_dtype(o.dtype) == compute_dtype(m.dtype) and depends(o, m):
                homes[m] = o
                taken.add(o)
                break
    return homes


def _outside_value(a, cons, arg, layout, roles, dom):
    """How consumer `cons` reads kernel argument `arg` (node a): a scalar as it is, a 0-d array
    as the value read_zero_d loaded, from a row value at its row, else the element the loop
    loaded as `arg`_e."""
    if layout == SCALAR:
        return arg
    if a.shape == ():
        return f"{arg}_v"
    if roles[cons] == "row":
        return f"{arg}[{_index_into(a.shape, cons.shape, _row_names(cons.shape, dom))}]"
    return f"{arg}_e"


def read_zero_d(names, nodes, layouts):
    """Lines loading each 0-d array input once, before any loop: inside a prange body Numba's
    parfor lowering passes a 0-d array to the loop as its scalar value, and `x[()]` on that
    fails to type."""
    return [f"    {name}_v = {name}[()]" for name, node, lay in zip(names, nodes, layouts)
            if lay != SCALAR and node.shape == ()]




def reduction_source(kernel, layouts, parallel):
    """Source of `def kernel(x0.., out0.., s0..)` for a reduction or rowwise kernel: s0.. are
    the domain's sizes. A one-pass reduction that keeps the last axis walks columns
    (column_source); a strided operand may be transposed, making a reduced axis the contiguous
    one, so with one the kernel picks row or column loops at run time from its strides."""
    from ..passes.fusion import Domain
    dom = Domain(kernel.shape, kernel.meta["axes"])
    last = len(dom.shape) - 1
    if kernel.meta["count"] > 1 or last not in dom.kept:
        return row_source(kernel, layouts, parallel)
    cols = column_source(kernel, layouts, parallel)
    probe = next((f"x{i}" for i, (n, lay) in enumerate(zip(kernel.inputs, layouts))
                  if lay == STRIDED and n.shape == dom.shape), None)
    if probe is None:
        return cols
    head, *by_cols = cols.splitlines()
    _, *by_rows = row_source(kernel, layouts, parallel).splitlines()
    return "\n".join([head, f"    if abs({probe}.strides[{last}]) <= "
                             f"abs({probe}.strides[{dom.axes[-1]}]):"]
                     + ["    " + x for x in by_cols] + ["    else:"]
                     + ["    " + x for x in by_rows]) + "\n"


def row_source(kernel, layouts, parallel):
    """A reduction or rowwise kernel as row loops: the kept axes are the outer loop (prange
    over rows); each pass over a row is an inner loop over the reduced axes. A full reduction
    in parallel runs in chunks."""
    from ..passes.fusion import Domain
    meta = kernel.meta
    dom = Domain(kernel.shape, meta["axes"])
    roles, at, reduce_pass = meta["roles"], meta["at"], meta["reduce_pass"]
    buffered = set(meta["buffered"])
    rank, R, kept = len(dom.shape), dom.axes, dom.kept
    ins = {n: f"x{i}" for i, n in enumerate(kernel.inputs)}
    lay = dict(zip(kernel.inputs, layouts))
    outs = {n: f"out{i}" for i, n in enumerate(kernel.outputs)}
    dims = [f"s{d}" for d in range(rank)]
    chunked = parallel and not kept
    # a full reduction walks one flat index: over contiguous operands, or any 1-d ones
    flat = not kept and rank > 0 and (rank == 1 or all(
        lay[n] == SCALAR or n.shape == () or (lay[n] == CONTIGUOUS and n.shape == dom.shape)
        for n in kernel.inputs if any(roles[u] != "row" for u in kernel.nodes if n in u.args)))
    reshaped = {n for n in kernel.inputs if lay[n] == CONTIGUOUS and n.shape == dom.shape}
    elem_names = [f"i{d}" for d in range(rank)]
    name = {m: f"t{i}" for i, m in enumerate(kernel.nodes)}
    homes = {} if chunked else _row_homes(kernel, dom)

    def read_outside(a, cons):
        return _outside_value(a, cons, ins[a], lay[a], roles, dom)

    head = [_def_line(kernel, [*ins.values(), *outs.values(), *dims])]
    head += read_zero_d(ins.values(), kernel.inputs, layouts)
    body = []  # lines at row level (indented under the row loop)
    if flat:
        head.append(f"    n = {' * '.join(dims)}")
        head += [f"    {ins[n]}_f = {ins[n]}.reshape(n)" for n in kernel.inputs if n in reshaped]
        head += [f"    {outs[n]}_f = {outs[n]}.reshape(n)" for n in kernel.outputs
                 if roles[n] == "element"]
    if buffered - homes.keys():
        head.append(f"    rowsize = {' * '.join(f's{d}' for d in R)}")
    rflat = " + ".join(  # flat index within the reduced axes, C order
        "*".join([f"i{d}"] + [f"s{e}" for e in R if e > d]) for d in R) or "0"
    if flat:
        rflat = "i"

    def read(a, cons):
        return name[a] if a in roles else read_outside(a, cons)

    def row_nodes(p):
        return [f"{name[m]} = {_node_expr(m, lambda a, m=m: read(a, m))}" for m in kernel.nodes
                if roles[m] == "row" and at[m] == p]

    def segment(p, roots, accs, loaded):
        """(init, inner) of one loop over a row in pass p: computes `roots` (writing them to
        outputs and buffers) and accumulates `accs`; `loaded(m)` says m is read from its buffer."""
        needed = set()

        def need(m):
            if m in needed or roles.get(m) != "element":
                return
            needed.add(m)
            if not loaded(m):
                for a in m.args:
                    need(a)

        for m in roots:
            need(m)
        for r in accs:
            need(r.args[0])
        order = [m for m in kernel.nodes if m in needed]
        outside = []
        for m in order + accs:
            if m in needed and loaded(m):
                continue
            for a in m.args:
                if a not in roles and not a.is_scalar_const() and lay[a] != SCALAR \
                        and a.shape != () and a not in outside:
                    outside.append(a)
        init, inner = [], []
        for a in outside:
            if flat and a in reshaped:
                src = f"{ins[a]}_f[i]"
            else:
                src = f"{ins[a]}[{_index_into(a.shape, dom.shape, ['i'] if flat else elem_names)}]"
            inner.append(f"{ins[a]}_e = {src}")
        for m in order:
            if loaded(m):
                inner.append(f"{name[m]} = {name[m]}_b[{rflat}]")
                continue
            inner.append(f"{name[m]} = {_node_expr(m, lambda a, m=m: read(a, m))}")
            if m in buffered and at[m] == p and homes.get(m) is not m:
                inner.append(f"{name[m]}_b[{rflat}] = {name[m]}")
            if m in outs and at[m] == p:
                idx = "i" if flat else ", ".join(elem_names) or "()"
                inner.append(f"{outs[m]}{'_f' if flat else ''}[{idx}] = {name[m]}")
        for r in accs:
            code = OPS[r.op].code
            x = r.args[0]
            acc_dt = acc_type(r)
            value = cast(read(x, r), x.dtype, acc_dt)
            a = f"{name[r]}_a"
            init.append(f"{a} = {code.init(acc_dt)}")
            if code.arg:
                init.append(f"{name[r]}_i = {'lo' if chunked else '0'}")
                inner.append(f"{name[r]}_x = {value}")
                inner.append(f"if {code.update(a, name[r] + '_x', acc_dt)}:")
                inner.append(f"    {a} = {name[r]}_x")
                inner.append(f"    {name[r]}_i = {rflat}")
            elif _nan_flagged(r, acc_dt):
                # the NaN-propagating select stops LLVM vectorising the loop: keep a plain
                # select (ties take the new value, as NumPy's reduce does) and a NaN flag that
                # nan_fixups applies after the loop
                v = f"{name[r]}_v"
                init.append(f"{name[r]}_n = False")
                inner += [f"{v} = {value}",
                          f"{a} = ({a} if {a} {'>' if r.op == 'max' else '<'} {v} else {v})",
                          f"{name[r]}_n = {name[r]}_n | ({v} != {v})"]
            else:
                inner.append(f"{a} = {code.update(a, value, acc_dt)}")
        return init, inner

    def nan_fixups(accs):
        return [f"if {name[r]}_n: {name[r]}_a = {literal(np.nan, acc_type(r))}"
                for r in accs if _nan_flagged(r, acc_type(r))]

    def pass_lines(p):
        """The accumulated reductions of pass p and the lines of its loops over a row. When the
        pass fills a row buffer and also reduces, the buffer is filled by a loop of its own (no
        loop-carried dependence, so it vectorises) and the reductions read it back."""
        accs = [m for m in kernel.nodes if roles[m] == "reduce" and reduce_pass[m] == p]
        roots = [m for m in kernel.nodes
                 if roles[m] == "element" and at[m] == p and (m in outs or m in buffered)]
        fill = [m for m in roots if m in buffered]
        if fill and accs:
            segments = [(roots, [], lambda m: m in buffered and at[m] < p),
                        ([], accs, lambda m: m in buffered and at[m] <= p)]
        else:
            segments = [(roots, accs, lambda m: m in buffered and at[m] < p)]
        lines = []
        for seg_roots, seg_accs, loaded in segments:
            init, inner = segment(p, seg_roots, seg_accs, loaded)
            lines += loops(init, inner, seg_accs) + nan_fixups(seg_accs)
        return accs, lines

    def loops(init, inner, accs):
        unroll = accs and not any(OPS[r.op].code.arg for r in accs) and (flat or len(R) == 1)
        if unroll and (flat or not chunked):
            var, lo, hi = ("i", "lo", "hi") if chunked else ("i", "0", "n") if flat \
                else (f"i{R[0]}", "0", f"s{R[0]}")
            return _unrolled(init, inner, [f"{name[r]}_a" for r in accs],
                             [OPS[r.op].code for r in accs], [acc_type(r) for r in accs],
                             var, lo, hi)
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
        if OPS[r.op].code.arg:
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
            head.append(f"    {name[r]}_p = np.empty(nchunks, np.{acc_type(r).name})")
            if OPS[r.op].code.arg:
                head.append(f"    {name[r]}_pi = np.empty(nchunks, np.int64)")
        chunk = loop_head + ["    " + x for x in pass0]
        for r in accs:
            chunk.append(f"    {name[r]}_p[c] = {name[r]}_a")
            if OPS[r.op].code.arg:
                chunk.append(f"    {name[r]}_pi[c] = {name[r]}_i")
        body += chunk
        for r in accs:  # combine the partial results in chunk order
            code, acc_dt, a = OPS[r.op].code, acc_type(r), f"{name[r]}_a"
            body.append(f"{a} = {code.init(acc_dt)}")
            if code.arg:
                body.append(f"{name[r]}_i = 0")
            body.append("for c in range(nchunks):")
            if code.arg:
                body += [f"    if {code.update(a, name[r] + '_p[c]', acc_dt)}:",
                         f"        {a} = {name[r]}_p[c]", f"        {name[r]}_i = {name[r]}_pi[c]"]
            else:
                body.append(f"    {a} = {code.update(a, name[r] + '_p[c]', acc_dt)}")
            body.append(finish_reduction(r))
        body += row_nodes(1)
    else:
        row = f"[{', '.join(f'i{d}' for d in kept)}]" if kept else ""
        body += [f"{name[m]}_b = {outs[homes[m]]}{row}"
                 if m in homes else
                 f"{name[m]}_b = np.empty(rowsize, np.{compute_dtype(m.dtype).name})"
                 for m in meta["buffered"]]
        body += row_nodes(0)
        for p in range(meta["count"]):
            accs, lines = pass_lines(p)
            body += lines
            body += [finish_reduction(r) for r in accs]
            body += row_nodes(p + 1)
    for m in kernel.outputs:
        if roles[m] != "element":
            body.append(f"{outs[m]}[{', '.join(_row_names(m.shape, dom)) or '()'}] = {name[m]}")
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


def column_source(kernel, layouts, parallel):
    """Source of a one-pass reduction kernel that keeps the last axis (see COLUMN_BLOCK).
    Tasks are (index of the other kept axes, block of the last axis); within a task the
    reduced axes are the outer loops and the block (j over lo..hi) is the inner loop.
    Epilogue (row) nodes run after the reduction, once per column."""
    from ..passes.fusion import Domain
    meta = kernel.meta
    dom = Domain(kernel.shape, meta["axes"])
    roles = meta["roles"]
    rank, R, kept = len(dom.shape), dom.axes, dom.kept
    last, outer = rank - 1, kept[:-1]
    ins = {n: f"x{i}" for i, n in enumerate(kernel.inputs)}
    lay = dict(zip(kernel.inputs, layouts))
    outs = {n: f"out{i}" for i, n in enumerate(kernel.outputs)}
    dims = [f"s{d}" for d in range(rank)]
    name = {m: f"t{i}" for i, m in enumerate(kernel.nodes)}
    col = f"i{last} - lo"  # a column's place in its block, in the epilogue loop

    def read(a, cons):
        return name[a] if a in roles else _outside_value(a, cons, ins[a], lay[a], roles, dom)

    def block_of(arr, shape):
        """Per row of the block: a 1-d slice of arr (or its one value when arr is broadcast
        along the last axis); returns (row line, element line)."""
        idx = _index_into(shape, dom.shape, [f"i{d}" for d in range(last)] + ["lo:hi"])
        if not idx.endswith("lo:hi"):
            return f"{arr}_e = {arr}[{idx}]", None
        return f"{arr}_r = {arr}[{idx}]", f"{arr}_e = {arr}_r[j]"

    loaded = [a for m in kernel.nodes if roles[m] != "row" for a in m.args
              if a in ins and lay[a] != SCALAR and a.shape != ()]
    per_row, per_element = [], []
    for a in dict.fromkeys(loaded):
        row, element = block_of(ins[a], a.shape)
        per_row.append(row)
        per_element += [element] if element else []
    init, finish = [], []
    for m in kernel.nodes:
        if roles[m] == "element":
            per_element.append(f"{name[m]} = {_node_expr(m, lambda a, m=m: read(a, m))}")
            if m in outs:
                per_row.append(block_of(outs[m], m.shape)[0])
                per_element.append(f"{outs[m]}_r[j] = {name[m]}")
        elif roles[m] == "reduce":
            code, dt, a = OPS[m.op].code, acc_type(m), f"{name[m]}_c"
            value = cast(read(m.args[0], m), m.args[0].dtype, dt)
            init.append(f"{a} = np.full(hi - lo, {code.init(dt)})")
            if code.arg:  # the first extreme wins: replaced only by a strictly better value
                rflat = " + ".join("*".join([f"i{d}"] + [f"s{e}" for e in R if e > d])
                                   for d in R)
                init.append(f"{name[m]}_j = np.zeros(hi - lo, np.int64)")
                per_element += [f"{name[m]}_x = {value}",
                                f"if {code.update(f'{a}[j]', name[m] + '_x', dt)}:",
                                f"    {a}[j] = {name[m]}_x", f"    {name[m]}_j[j] = {rflat}"]
                finish.append(f"{name[m]} = {name[m]}_j[{col}]")
            else:  # max/min: the NaN-propagating select vectorises here (no loop-carried value)
                per_element.append(f"{a}[j] = {code.update(f'{a}[j]', value, dt)}")
                finish.append(f"{name[m]} = {result_cast(f'{a}[{col}]', m.dtype)}")
    finish += [f"{name[m]} = {_node_expr(m, lambda a, m=m: read(a, m))}"
               for m in kernel.nodes if roles[m] == "row"]
    finish += [f"{outs[m]}[{', '.join(_row_names(m.shape, dom)) or '()'}] = {name[m]}"
               for m in kernel.outputs if roles[m] != "element"]

    lines = [_def_line(kernel, [*ins.values(), *outs.values(), *dims])]
    lines += read_zero_d(ins.values(), kernel.inputs, layouts)
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
