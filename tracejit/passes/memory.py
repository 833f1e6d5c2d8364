"""Memory planning: liveness over a fixed schedule, buffers shared between values whose live
ranges do not overlap, and kernels that write their output over an input that dies there.

A *stored* value is one the plan gives memory to: a kernel output, or the result of a host op
that can write into a given array (its op's `into`: matmul, and the writes of mutation.py). A
view shares the memory of the value it views, so reading a view keeps its base alive; other host
ops allocate their own results. Graph outputs live to the end of the call, and a buffer that
ends up holding one is *returned*: allocated fresh on every call (exactly the output's size) and
handed to the caller, with earlier intermediates placed inside it before the output is written.
Every other buffer belongs to the arena the executor keeps between calls.

Values are stored in C order, except elementwise results that NumPy would give in F order
(`fortran_values`): those are stored F-contiguous, so their kernel reads and writes memory in
one order and the caller gets the layout NumPy gives.
"""

from dataclasses import dataclass, field

import numpy as np

from ..graph import type_str, value_names
from ..kernels import CONTIGUOUS, FORTRAN, array_layout
from ..ops import ELEMENTWISE, MATMUL, OPS, VIEW, compute_dtype

_END = float("inf")  # the last use of a value the caller receives


def stored_itemsize(node):
    return compute_dtype(node.dtype).itemsize


def stored_nbytes(node):
    return node.size * stored_itemsize(node)


def writes_out(node):
    """True if this host node runs as `OPS[op].into(*args, out=buffer, **attrs)` into a planned
    buffer (a matmul given options allocates its own result)."""
    op = OPS[node.op]
    return op.into is not None and node.shape != () and not (op.kind == MATMUL and node.attrs)


def hands_back(node):
    """True if the executor gives the caller this value's memory (or a view of it) as a result:
    float16 results are converted to a new array, every other array result is returned as is."""
    return node.dtype != np.float16


@dataclass(eq=False)
class Buffer:
    """One block of memory and the values stored in it, in the order they are written."""

    index: int
    nbytes: int
    values: list = field(default_factory=list)
    returned: object = None  # the graph output this buffer is handed back as, if any

    @property
    def kind(self):
        return "output" if self.returned is not None else "arena"


@dataclass(eq=False)
class MemoryPlan:
    """Where every stored value lives. `assignment[node]` is a buffer index; `in_place` lists
    (output, input) pairs where a kernel writes its output over an input that dies there."""

    storage: list
    assignment: dict
    in_place: list
    live: dict  # stored node -> (first write, last read) step indices; inf = returned
    naive_bytes: int  # eager NumPy: one new array per op that is not a view
    host_bytes: int  # results of host ops the plan does not place (they allocate their own)
    names: dict  # node -> its name in the IR text
    # kernel output -> the slice assignment (`setitem`) it is stored into: the output lives in
    # the region of that assignment's buffer that its index selects
    regions: dict = field(default_factory=dict)
    fortran: frozenset = frozenset()  # stored values kept in F order (fortran_values)

    @property
    def buffers(self):
        return len(self.storage)

    @property
    def arena_bytes(self):
        return sum(b.nbytes for b in self.storage if b.returned is None)

    @property
    def output_bytes(self):
        return sum(b.nbytes for b in self.storage if b.returned is not None)

    @property
    def planned_bytes(self):
        """Bytes one call uses: arena, returned buffers and what host ops allocate."""
        return self.arena_bytes + self.output_bytes + self.host_bytes

    def __str__(self):
        saved = self.naive_bytes - self.planned_bytes
        lines = [f"-- memory: {self.buffers} buffer(s), planned {_fmt(self.planned_bytes)} "
                 f"(arena {_fmt(self.arena_bytes)}, outputs {_fmt(self.output_bytes)}"
                 + (f", host {_fmt(self.host_bytes)}" if self.host_bytes else "")
                 + f") vs naive {_fmt(self.naive_bytes)} ({_fmt(saved)} saved)"]
        over = dict(self.in_place)
        for buf in self.storage:
            items = []
            for v in buf.values:
                first, last = self.live[v]
                text = f"{self.names[v]}: {type_str(v)} steps {first}-" \
                    + ("end" if last == _END else str(last))
                if v in over:
                    text += f" over {self.names[over[v]]}"
                if v in self.fortran:
                    text += " (F order)"
                items.append(text)
            line = f"   buffer {buf.index} ({buf.kind}, {_fmt(buf.nbytes)}): "
            for i, item in enumerate(items):  # wrap between values, never inside one
                if i and len(line) + len(item) > 100:
                    lines.append(line.rstrip())
                    line = "      "
                line += item + (", " if i + 1 < len(items) else "")
            lines.append(line)
        return "\n".join(lines)

    __repr__ = __str__


def _fmt(n):
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024 or unit == "MiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _stored(step):
    """The values this step writes into planned buffers."""
    if hasattr(step, "node"):  # a host step
        return [step.node] if writes_out(step.node) else []
    return list(step.outputs)


def _roots(node, stored):
    """The stored values whose memory `node` uses (itself, or the bases of a view)."""
    if node in stored:
        return {node}
    if node.op in ("input", "const") or OPS[node.op].kind != VIEW:
        return set()
    return set().union(*(_roots(a, stored) for a in node.args)) if node.args else set()


def liveness(graph, steps):
    """stored node -> (step that writes it, last step that reads its memory); a value the
    caller receives (directly or through a view) lives to the end (inf)."""
    stored = {v: k for k, step in enumerate(steps) for v in _stored(step)}
    last = dict(stored)
    for k, step in enumerate(steps):
        for a in step.inputs:
            for r in _roots(a, stored):
                last[r] = max(last[r], k)
    for o in graph.outputs:
        for r in _roots(o, stored):  # float16 results are read by a conversion after the steps
            last[r] = _END if hands_back(o) else max(last[r], len(steps))
    return {v: (stored[v], last[v]) for v in stored}


def orders_differ(shape):
    """True if C and F order lay out this shape differently: it runs along two or more axes."""
    return sum(n > 1 for n in shape) >= 2


def reverses_axes(node):
    """True for a full transpose (`x.T`): it turns C order into F order and back."""
    return node.op == "transpose" and node.attrs["axes"] == tuple(range(node.ndim))[::-1]


def fortran_values(graph, steps, leaf_layouts):
    """The values an elementwise kernel stores in F order: those NumPy gives in F order, as a
    ufunc orders its result (order='K'), where the rule is simple. An elementwise result that
    runs along two or more axes is F when at least one operand has its full shape and every
    operand that runs along two or more axes is F-ordered: an F-contiguous argument or
    constant, the full transpose of a C-ordered value, or such a result. Broadcast rows and
    columns and scalars do not count; a C-ordered, strided or other view among them makes the
    result C (NumPy may then pick yet another order: F-ordered 3-d plus C-ordered 2-d gives
    neither). A copy (`astype` to the same dtype: `x.copy()`, `np.ascontiguousarray`, also
    `np.copy`, which NumPy would keep F) is C, as `ndarray.copy()` gives. Results of other
    steps (reductions and row-wise kernels, matmul, slice assignments) stay C."""
    made_by = {v: s for s in steps for v in _stored(s)}
    order = {n: {CONTIGUOUS: "C", FORTRAN: "F"}.get(lay)
             for n, lay in zip(graph.inputs, leaf_layouts)}
    for n in graph.nodes:
        if n in order:
            continue
        if n.op == "const":
            value = n.attrs["value"]
            lay = array_layout(value) if isinstance(value, np.ndarray) else CONTIGUOUS
            order[n] = {CONTIGUOUS: "C", FORTRAN: "F"}.get(lay)
        elif OPS[n.op].kind == ELEMENTWISE and getattr(made_by.get(n), "kind", ELEMENTWISE) \
                == ELEMENTWISE:  # computed in an elementwise kernel, stored or fused
            runs = [a for a in n.args if orders_differ(a.shape)]
            copy = n.op == "astype" and n.dtype == n.args[0].dtype
            order[n] = "F" if orders_differ(n.shape) and any(a.shape == n.shape for a in runs) \
                and all(order.get(a) == "F" for a in runs) and not copy else "C"
        elif reverses_axes(n):
            order[n] = {"C": "F", "F": "C"}.get(order.get(n.args[0]))
        else:
            order[n] = "C" if OPS[n.op].kind != VIEW else None
    return frozenset(v for v in made_by if order[v] == "F")


def plan_memory(graph, steps, fortran=frozenset()):
    """Plan the memory of one call of `steps` (the schedule of `graph`, in order); the values
    in `fortran` (fortran_values) are stored in F order.

    Guarantees: two stored values share a buffer only if their live ranges do not overlap, or
    if an elementwise kernel, or a host write (`setitem`, `index_put`: the op's `updates`),
    writes one over the other where the input dies (same shape, same stored itemsize, same
    order, the input is a stored value read by no other value at that step or later); graph
    inputs and constants
    are never written. A kernel output that only a slice assignment reads is stored straight
    into that slice of the assignment's buffer (`regions`), which is then taken at the kernel's
    step: over the base when nothing reads the base from that kernel on, else a buffer of its
    own that gets the rest of the base copied in. A buffer holds at most one value the caller
    receives, and only values written before it; returned buffers are exactly that value's
    size. The plan changes where values live, never what is computed.
    """
    live = liveness(graph, steps)
    storage, assignment, in_place = [], {}, []
    free = []  # arena buffers whose last value is dead
    dies_at = {}
    for v, (_, last) in live.items():
        dies_at.setdefault(last, []).append(v)
    returned = {r for o in graph.outputs if hands_back(o) for r in _roots(o, live)}
    # a value written back into an argument takes no earlier intermediates: its buffer can then
    # be the caller's array itself (executor)
    written_back = set(graph.outputs[len(graph.outputs) - len(graph.meta.get("writes", ())):])
    regions, taken, taken_over = _region_candidates(graph, steps, live), set(), set()
    fortran = frozenset(fortran)

    def place(node, buf):
        buf.values.append(node)
        assignment[node] = buf.index
        if node in returned:
            buf.returned, buf.nbytes = node, stored_nbytes(node)
        else:
            buf.nbytes = max(buf.nbytes, stored_nbytes(node))

    def allocate(node):
        n = stored_nbytes(node)
        if node in written_back:
            buf = None
        elif node in returned:  # the largest free buffer that fits inside the result
            fits = [b for b in free if b.nbytes <= n]
            buf = max(fits, key=lambda b: b.nbytes, default=None)
        else:  # best fit; else grow the largest smaller buffer
            bigger = [b for b in free if b.nbytes >= n]
            buf = min(bigger, key=lambda b: b.nbytes, default=None) or \
                max(free, key=lambda b: b.nbytes, default=None)
        if buf is None:
            buf = Buffer(len(storage), 0)
            storage.append(buf)
        else:
            free.remove(buf)
        place(node, buf)

    for k, step in enumerate(steps):
        reused = set()
        for node in _stored(step):
            if node in taken:  # a slice assignment whose buffer its value's kernel took
                continue
            if node in regions:
                write = regions[node]
                base = write.args[0]
                # the base's buffer is the write's only if this kernel does not store the base
                # too (it would store base elements over the slice it writes) and nothing reads it
                unread = base in live and base not in taken_over and base not in fortran \
                    and live[base][0] != k and live[base][1] == \
                    live[write][0] and not any(base in _roots(a, live) for s in
                                               steps[k:live[write][0]] for a in s.inputs)
                if unread and (write not in returned or storage[assignment[base]].nbytes
                               <= stored_nbytes(write)):
                    taken_over.add(base)  # its buffer is the write's: not freed when it dies
                    in_place.append((write, base))
                    place(write, storage[assignment[base]])
                elif outside(write) is not None:
                    allocate(write)
                else:
                    del regions[node]
                    allocate(node)
                    continue
                taken.add(write)
                assignment[node] = assignment[write]
                continue
            over = _dying_input(step, k, node, live, returned, reused, storage, assignment,
                                fortran)
            if over is not None:
                reused.add(over)
                in_place.append((node, over))
                place(node, storage[assignment[over]])
                continue
            allocate(node)
        for v in dies_at.get(k, ()):
            if v not in reused and v not in regions and v not in taken_over:
                free.append(storage[assignment[v]])

    naive = sum(n.size * n.dtype.itemsize for n in graph.nodes
                if n.op not in ("input", "const") and OPS[n.op].kind != VIEW and not n.weak)
    host = sum(stored_nbytes(s.node) for s in steps if hasattr(s, "node")
               and OPS[s.node.op].kind != VIEW and not writes_out(s.node))
    return MemoryPlan(storage, assignment, in_place, live, naive, host, value_names(graph),
                      regions, fortran)


def _dying_input(step, k, node, live, returned, reused, storage, assignment, fortran):
    """An input the step may overwrite with `node`, dead after it: for an elementwise kernel
    one read element by element at the index it is written; for a host write, the base it
    updates."""
    if hasattr(step, "node"):
        updates = OPS[node.op].updates
        candidates = [node.args[updates]] if updates is not None else []
    elif step.kind == ELEMENTWISE and node.shape == step.shape:
        candidates = step.inputs
    else:
        return None
    for x in candidates:
        if (x in live and x not in reused and live[x][1] == k and x.shape == node.shape
                and stored_itemsize(x) == stored_itemsize(node)
                and (x in fortran) == (node in fortran)
                and not any(a is not x and x in _roots(a, live) for a in step.inputs)
                and (node not in returned or storage[assignment[x]].nbytes <= stored_nbytes(node))):
            return x
    return None


def _region_candidates(graph, steps, live):
    """Kernel outputs that only a slice assignment reads, as its value: output -> setitem."""
    readers = {}
    for k, step in enumerate(steps):
        for a in step.inputs:
            for r in _roots(a, live):
                readers.setdefault(r, set()).add(k)
    outputs = {r for o in graph.outputs for r in _roots(o, live)}
    found = {}
    for k, step in enumerate(steps):
        node = getattr(step, "node", None)
        if node is None or node.op != "setitem" or not writes_out(node):
            continue
        value = node.args[1]
        made = live.get(value, (None,))[0]
        if made is None or hasattr(steps[made], "node") or steps[made].kind != ELEMENTWISE \
                or value.shape != steps[made].shape or value in outputs \
                or readers.get(value) != {k} or stored_itemsize(value) != stored_itemsize(node) \
                or value.dtype == np.float16 or value in found:
            continue
        found[value] = node
    return found


def outside(write):
    """Keys that select everything a slice assignment leaves unwritten, as boxes (NumPy
    keys); None when its index has a step other than 1 or -1 (then the value's kernel does not
    store into the slice)."""
    ranges, dims = [], iter(write.shape)
    for e in write.attrs["index"]:
        if e is None:
            continue
        size = next(dims)
        if isinstance(e, int):
            ranges.append((size, e, e + 1))
            continue
        start, stop, step = e
        if step == 1:
            ranges.append((size, start, max(start, stop)))
        elif step == -1:
            lo = 0 if stop is None else stop + 1
            ranges.append((size, lo, max(lo, start + 1)))
        else:
            return None
    ranges += [(size, 0, size) for size in dims]
    keys = []
    for d, (size, lo, hi) in enumerate(ranges):
        inside = tuple(slice(a, b) for _, a, b in ranges[:d])
        for part in (slice(0, lo), slice(hi, size)):
            if part.start < part.stop:
                keys.append(inside + (part,))
    return tuple(keys)
