"""From a schedule to an Executable: compile each kernel and generate one straight-line Python
function that runs the steps, so a cached call costs a few attribute lookups per kernel.
Intermediates live where the memory plan puts them: in an arena kept between calls (one per
thread) or inside the arrays the call returns."""

import re
import sys
import threading
import time
import warnings
from collections import Counter

import numpy as np

from .backends.base import host_function, load_backend
from .backends.scalar_helpers import KERNEL_ERRORS
from .errors import CompileTimeWarning, format_location, user_stacklevel, with_location
from .kernels import CONTIGUOUS, FORTRAN, SCALAR, STRIDED, array_layout, reports_errors
from .ops import MATMUL, OPS, VIEW, compute_dtype, returns_numpy_scalar, view_base
from .passes.fusion import MAX_KERNEL_OPS, Kernel
from .passes.memory import (
    fortran_values,
    orders_differ,
    outside,
    plan_memory,
    reverses_axes,
    stored_itemsize,
    writes_out,
)
from .pytree import build_node


def _tree_expr(treedef, names, ns):
    it = iter(names)

    def build(td):
        if td.kind == "leaf":
            return next(it)
        items = [build(c) for c in td.children]
        if td.kind == "tuple":
            return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
        if td.kind == "list":
            return f"[{', '.join(items)}]"
        if td.kind == "none":
            return "None"
        if td.kind == "dict":
            return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(td.meta, items)) + "}"
        name = f"_tree{len(ns)}"  # NamedTuple, dataclass, SimpleNamespace
        ns[name] = td
        return f"_build_node({name}, [{', '.join(items)}])"

    return build(treedef)


def _views_constant(node):
    """True if node is a view (or a chain of views) of a graph constant: returning it as is
    would hand the caller memory that every later call shares."""
    node = view_base(node)
    return node.op == "const" and not node.weak


class Arena:
    """The arena buffers of one Executable, allocated once per thread: `views()` returns the
    typed arrays over them, in the order `typed` lists them as (buffer, shape, dtype, layout:
    CONTIGUOUS or FORTRAN)."""

    def __init__(self, sizes, typed):
        self.sizes = sizes
        self.typed = typed
        self._local = threading.local()

    def views(self):
        try:
            return self._local.views
        except AttributeError:
            blocks = [np.empty(n, np.uint8) for n in self.sizes]
            views = self._local.views = tuple(
                np.ndarray(shape, dtype, blocks[b], order="F" if lay == FORTRAN else "C")
                for b, shape, dtype, lay in self.typed)
            return views


# Returned arrays of at least RECYCLE_BYTES are recycled (see Recycler): the first touch of
# fresh memory costs a page fault per page. So are those of at most RECYCLE_SMALL_BYTES, where
# allocating is most of a cached call's own cost (np.empty: 0.3-0.5 us of 1.5-3 us on 100
# float64). Sizes between come from malloc's free lists, at a small share of the kernel's time.
RECYCLE_BYTES = 1 << 20
RECYCLE_SMALL_BYTES = 4096

# Free-threaded CPython splits reference counts between threads: do not rely on them there.
_RECYCLE = getattr(sys, "_is_gil_enabled", lambda: True)()


class Recycler(threading.local):
    """Returned arrays of one Executable, kept per thread (`slots`), so the next call can write
    into an array the caller has let go of instead of a fresh one (measured: 6 ms of a 25 ms
    call returning 80 MB were page faults). `run` takes slot i inline, as
        o = _kept.slots[i]
        if _refs(o) != _ONLY_KEPT: o = _kept.slots[i] = _empty(shape, dtype)
    so an array is reused only when nothing else refers to it (its reference count), and no
    caller can see it change; a view of it or its data refers to it too. Arrays of at most
    RECYCLE_SMALL_BYTES are kept in a plain list, `_small`, that all threads share (reading a
    thread's own slots costs 0.1 us, a twentieth of a cached call on 100 elements): the
    reference count keeps that safe too, as an array another thread is filling is referred to
    by that thread's `o`; threads calling at once then each make one afresh."""

    def __init__(self, count):  # run again in each thread that uses it
        self.slots = [None] * count


def _only_kept():
    """What sys.getrefcount counts, in `run`'s lines above, for an array held by nothing but its
    slot: measured rather than assumed, since interpreters differ in the temporary references
    a call holds."""
    kept, small, refs = Recycler(1), [object()], sys.getrefcount
    kept.slots[0] = object()
    o = kept.slots[0]
    counted = refs(o)
    o = small[0]
    assert refs(o) == counted  # the same for both kinds of slot
    return counted


_ONLY_KEPT = _only_kept()


def _storage(plan, ns):
    """Names of the arrays every stored value is written to, their layouts (CONTIGUOUS, or
    FORTRAN for the plan's F-ordered values), and the lines that make them at the start of
    `run`: arena views, then each returned array and the views inside it."""
    names, lines, typed, arena_of, recycled, small = {}, [], [], {}, [], []
    layouts = {v: FORTRAN if v in plan.fortran else CONTIGUOUS
               for buf in plan.storage for v in buf.values}
    for buf in plan.storage:
        if buf.returned is None:
            arena_of[buf.index] = len(arena_of)
            for v in buf.values:  # one view per (buffer, shape, dtype, order), made per thread
                key = (arena_of[buf.index], v.shape, compute_dtype(v.dtype), layouts[v])
                if key not in typed:
                    typed.append(key)
                names[v] = f"v{typed.index(key)}"
            continue
        r = buf.returned
        out = f"o{buf.index}"
        ns[f"{out}_dt"] = compute_dtype(r.dtype)
        fresh = f"_empty({r.shape!r}, {out}_dt{', order=_F' if r in plan.fortran else ''})"
        if _RECYCLE and not RECYCLE_SMALL_BYTES < buf.nbytes < RECYCLE_BYTES:
            kept = small if buf.nbytes <= RECYCLE_SMALL_BYTES else recycled
            slot = f"{'_small[' if kept is small else '_kept.slots['}{len(kept)}]"
            lines += [f"{out} = {slot}",
                      f"if _refs({out}) != {_ONLY_KEPT}: {out} = {slot} = {fresh}"]
            kept.append(out)
        else:
            lines.append(f"{out} = {fresh}")
        made = {(r.shape, compute_dtype(r.dtype), layouts[r]): out}
        for v in buf.values:
            key = (v.shape, compute_dtype(v.dtype), layouts[v])
            if key not in made:
                made[key] = name = f"{out}_{len(made)}"
                ns[f"{name}_dt"] = key[1]
                order = ", order=_F" if key[2] == FORTRAN else ""
                lines.append(f"{name} = _ndarray({v.shape!r}, {name}_dt, {out}{order})")
            names[v] = made[key]
    arena = Arena([b.nbytes for b in plan.storage if b.returned is None], typed)
    if recycled:
        ns["_kept"] = Recycler(len(recycled))
    if small:
        ns["_small"] = [None] * len(small)
    if recycled or small:
        ns["_refs"] = sys.getrefcount
    if typed:
        ns["_arena"] = arena.views
        lines.insert(0, f"{', '.join(f'v{i}' for i in range(len(typed)))}, = _arena()")
    return names, layouts, lines, arena


# A first call that spends more CPU seconds than this compiling a large graph warns
# (CompileTimeWarning): such graphs mostly come from Python loops unrolled by tracing, and the
# user can usually trace one step instead.
COMPILE_WARN_SECONDS = 2.0
# One line of code that made this many ops is taken for the body of an unrolled loop.
LOOP_OPS = 50


def _warn_if_slow(graph, seconds, kernels):
    ops = [n for n in graph.nodes if n.op not in ("input", "const")]
    (loc, made), = Counter(n.loc for n in ops).most_common(1) or [(None, 0)]
    looped = loc is not None and made >= LOOP_OPS
    if seconds <= COMPILE_WARN_SECONDS or not (looped or len(ops) > MAX_KERNEL_OPS):
        return
    why = f"its graph has {len(ops):,} ops"
    if looped:
        why += f", {made:,} of them made by {format_location(loc)} (a Python loop unrolled by " \
            "tracing?)"
    compiled = sum(k.compiled_now for k in kernels)
    warnings.warn(f"tracejit: the first call of {graph.name} for these argument types spent "
                  f"{seconds:.1f} s of CPU time compiling {compiled} kernels: {why}, run as "
                  f"{len(kernels)} kernels. Move the loop out of the traced function (trace one "
                  "step and call it in a Python loop), or take fewer steps per call.",
                  CompileTimeWarning, stacklevel=user_stacklevel())


def _over(kernel, plan):
    """Output index -> index of the input the kernel writes it over, where their dtypes match
    (the kernel then stores through the input's array)."""
    over = dict(plan.in_place)
    return {j: kernel.inputs.index(over[o]) for j, o in enumerate(kernel.outputs)
            if o in over and compute_dtype(o.dtype) == compute_dtype(over[o].dtype)}


def _kernel_failure(kernel):
    """A function raising the error a kernel reported through its flag, naming the user's
    line of the op that reports it."""
    loc = next(n.loc for n in kernel.nodes if reports_errors([n]))

    def fail(code):
        exc_type, message = KERNEL_ERRORS[int(code)]
        raise with_location(exc_type, message, loc)

    return fail


class Executable:
    """A compiled plan for one signature: `run(*leaves)` returns the function's result."""

    def __init__(self, graph, steps, kernels, run, source, memory=None, arena=None,
                 in_caller=None, namespace=None, body=(), checked=None):
        self.graph = graph
        self.steps = steps
        self.kernels = kernels  # CompiledKernel per Kernel step, in launch order
        self.run = run
        self.source = source
        # run's globals and the lines of its body, for dispatch.py to inline into a fast path
        self.namespace = namespace or {}
        self.body = body
        self.num_leaves = graph.meta["num_leaves"]  # run's parameters: leaves, then captured
        self.fast = None  # dispatch.py's specialised run, once it has one
        self.memory = memory  # the MemoryPlan
        self.arena = arena
        self.in_caller = in_caller or {}  # written-back value -> the argument it is stored in
        # (index in body of the first kernel's call, the leaves whose shape and layout that
        # kernel checks: build's _checked_leaves), or None
        self.checked = checked

    @property
    def kernels_compiled(self):
        return sum(k.compiled_now for k in self.kernels)


def _fill_outside(base, out, keys):
    """Copy into `out` the parts of `base` a slice assignment leaves as they were."""
    for key in keys:
        out[key] = base[key]


def _region_layout(write):
    """CONTIGUOUS if the slice a setitem writes is C-contiguous in its base, else STRIDED."""
    item = stored_itemsize(write)
    strides = tuple(int(np.prod(write.shape[d + 1:], dtype=np.int64)) * item
                    for d in range(len(write.shape)))
    # a view over one byte, never read: only its flags are looked at
    base = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), write.shape, strides)
    return CONTIGUOUS if base[write.attrs["index"].key].flags.c_contiguous else STRIDED


def _host_layout(node, layout):
    """The layout of a host op's result, given `layout` of its operands: matmul returns a fresh
    C-contiguous array, reshape a C-contiguous view of a C-contiguous array (kernels index it
    by shape: twice as fast for a broadcast operand), and the full transpose of a C-contiguous
    value is F-contiguous and the other way round; other views may have any strides."""
    if OPS[node.op].kind == MATMUL:
        return CONTIGUOUS
    base = layout.get(node.args[0]) if node.args else None
    if node.op == "reshape" and base == CONTIGUOUS:
        return CONTIGUOUS
    if reverses_axes(node):
        if base == FORTRAN or (base == CONTIGUOUS and not orders_differ(node.shape)):
            return CONTIGUOUS
        if base == CONTIGUOUS:
            return FORTRAN
    return STRIDED


def _written_in_place(graph, steps, plan, leaf_layouts):
    """Written-back values whose buffer can be the caller's array itself (value -> that
    argument's input node), instead of a new array copied back at the end. The argument is
    C- or F-contiguous, not returned, and every value in the buffer has its shape, dtype and
    order. The buffer's first value is stored by an elementwise kernel that reads the argument,
    if at all, only directly (element by element, then in place), or by a host write
    (`x[...] = v`) updating the argument; nothing reads the argument's old contents after that
    step."""
    writes = graph.meta.get("writes", ())
    if not writes:
        return {}
    returns_input = graph.meta.get("returns_input", {})  # given back as the caller's array
    shown = [o for pos, o in enumerate(graph.outputs[:len(graph.outputs) - len(writes)])
             if pos not in returns_input]
    inputs = {n.attrs["index"]: (n, lay) for n, lay in zip(graph.inputs, leaf_layouts)}
    found = {}
    region_writes = {w: v for v, w in plan.regions.items()}  # setitem -> value its kernel stores
    for leaf, value in zip(writes, graph.outputs[len(graph.outputs) - len(writes):]):
        x, lay = inputs[leaf]
        if value not in plan.assignment or lay not in (CONTIGUOUS, FORTRAN) \
                or x.dtype == np.float16 \
                or value in shown or value in found or any(view_base(o) is x for o in shown):
            continue
        values = plan.storage[plan.assignment[value]].values
        if any(v.shape != x.shape or v.dtype != x.dtype
               or (v in plan.fortran) != (lay == FORTRAN) for v in values):
            continue
        producer = next(k for k, s in enumerate(steps) if values[0] in s.outputs)
        step = steps[producer]
        readers = [k for k, s in enumerate(steps)  # directly or through views
                   if any(view_base(a) is x for a in s.inputs)]
        if values[0] in region_writes:  # first written by the kernel storing its slice
            if all(k < plan.live[region_writes[values[0]]][0] for k in readers):
                found[value] = x
            continue
        if isinstance(step, Kernel):
            if step.kind != "elementwise" or any(view_base(a) is x and a is not x
                                                 for a in step.inputs):
                continue
        elif OPS[step.node.op].updates is None or \
                step.node.args[OPS[step.node.op].updates] is not x or \
                sum(view_base(a) is x for a in step.node.args) != 1:
            continue
        if all(k <= producer for k in readers):
            found[value] = x
    return found


class CompileCancelled(Exception):
    """build() stopped before its next kernel because `cancelled()` said so."""


def build(graph, steps, leaf_layouts, parallel=None, backend="cpu", cancelled=None):
    """leaf_layouts: for each graph input, SCALAR, CONTIGUOUS, FORTRAN or STRIDED.
    `cancelled`: called before each kernel is compiled; True stops the build
    (CompileCancelled). On the CPU, elementwise results take the order NumPy gives them
    (memory.fortran_values)."""
    ns = {"_empty": np.empty, "_ndarray": np.ndarray, "np": np, "_build_node": build_node,
          "_fill_outside": _fill_outside, "_F": "F"}
    fortran = fortran_values(graph, steps, leaf_layouts) if backend == "cpu" else frozenset()
    plan = plan_memory(graph, steps, fortran)
    stored, stored_layout, lines, arena = _storage(plan, ns)
    in_place = _written_in_place(graph, steps, plan, leaf_layouts)
    for value, x in in_place.items():  # the buffer is the caller's array
        buffer = f"o{plan.assignment[value]}"
        lines = [line for line in lines if not line.startswith((f"{buffer} = ",
                                                                 f"if _refs({buffer})"))]
        for v in plan.storage[plan.assignment[value]].values:
            stored[v] = f"x{x.attrs['index']}"
    for i, (v, write) in enumerate(plan.regions.items()):  # its kernel stores v into the slice
        ns[f"w{i}_key"] = write.attrs["index"].key
        lines.append(f"w{i} = {stored[write]}[w{i}_key]")
        stored[v] = f"w{i}"
    region_writes = set(plan.regions.values())
    written_over = {write for write, _ in plan.in_place}
    names, layout, kernels = {}, {}, []
    for node, lay in zip(graph.inputs, leaf_layouts):
        name = f"x{node.attrs['index']}"
        names[node] = name
        layout[node] = lay
        if node.dtype == np.float16 and lay != SCALAR:
            names[node] = f"{name}_f32"
            lines.append(f"{name}_f32 = {name}.astype(np.float32)")
    counter = iter(range(1 << 30))

    def fresh(prefix):
        return f"{prefix}{next(counter)}"

    def value(node):
        if node not in names:  # a constant
            name = fresh("c")
            stored = node.attrs["value"]
            if isinstance(stored, np.generic) and not node.weak:
                stored = np.asarray(stored)  # kernels take 0-d arrays; results unwrap with [()]
            if isinstance(stored, np.ndarray) and stored.dtype == np.float16:
                stored = stored.astype(np.float32)
            ns[name] = stored
            names[node] = name
            layout[node] = SCALAR if node.weak else array_layout(stored)
        return names[node]

    compile_seconds = 0.0
    checked, checked_line = frozenset(), None
    for step in steps:
        if isinstance(step, Kernel):
            args = [value(n) for n in step.inputs]
            lays = [layout[n] for n in step.inputs]
            if cancelled is not None and cancelled():
                raise CompileCancelled(graph.name)
            started = time.thread_time()  # the work, not the wait for a busy machine's cores
            over = _over(step, plan)
            out_lays = [_region_layout(plan.regions[o]) if o in plan.regions
                        else stored_layout[o] for o in step.outputs]
            over.update({step.outputs.index(v): step.inputs.index(x) for v, x in in_place.items()
                         if v in step.outputs and x in step.inputs})
            leaves = _checked_leaves(step, lays, args, [stored[n] for n in step.outputs],
                                     lines) if step is steps[0] else frozenset()
            ck = load_backend(backend).compile_kernel(step, lays, parallel, over, out_lays,
                                                      checks_inputs=bool(leaves))
            compile_seconds += time.thread_time() - started
            kname = fresh("k")
            ns[kname] = ck.entry
            kernels.append(ck)
            for node, lay in zip(step.outputs, out_lays):
                names[node], layout[node] = stored[node], lay
            outs = [stored[n] for n in step.outputs]
            if step.kind != "elementwise":  # reduction kernels take their domain's sizes
                outs += [str(n) for n in step.shape]
            if ck.reports_errors:  # a fresh flag per call: threads may share this function
                ns[f"{kname}_fail"] = _kernel_failure(step)
                outs.append("_e")
            if ck.checks_inputs:
                checked, checked_line = leaves, len(lines)
            lines.append(f"{kname}({', '.join(args + outs)})")
            if ck.reports_errors:
                lines.append(f"if _e[0]: {kname}_fail(_e[0])")
        else:
            node = step.node
            fname = fresh("f")
            if node in region_writes:  # its value's kernel has stored the slice
                if node not in written_over:  # a buffer of its own: copy the rest in
                    ns[f"{fname}_keys"] = outside(node)
                    lines.append(f"_fill_outside({value(node.args[0])}, {stored[node]}, "
                                 f"{fname}_keys)")
                names[node], layout[node] = stored[node], CONTIGUOUS
                continue
            ns[fname] = host_function(load_backend(backend), node, writes_out(node))
            args = [value(a) for a in node.args]
            params = list(args)
            for key, val in node.attrs.items():
                ns[f"{fname}_{key}"] = val
                params.append(f"{key}={fname}_{key}")
            if writes_out(node):  # into its planned buffer, which may be its base's (in place)
                lines.append(f"{fname}({', '.join(params)}, out={stored[node]})")
                names[node], layout[node] = stored[node], stored_layout[node]
                continue
            out = fresh("t")
            call = f"{fname}({', '.join(params)})"
            if node.shape == () and OPS[node.op].kind != VIEW:
                call = f"np.asarray({call})"  # kernels take 0-d arrays, not NumPy scalars
            lines.append(f"{out} = {call}")
            names[node] = out
            layout[node] = _host_layout(node, layout)

    results, seen, seen_memory = [], {}, {}
    memory = graph.meta.get("out_memory", graph.meta["out_alias"])
    writes = graph.meta.get("writes", ())
    shown = len(graph.outputs) - len(writes)  # the rest are written back into arguments
    for pos, (node, alias) in enumerate(zip(graph.outputs, graph.meta["out_alias"])):
        expr = value(node)
        if pos >= shown:
            source = f"{expr}.astype(np.float16)" if node.dtype == np.float16 else expr
            if node not in in_place:
                lines.append(f"np.copyto(x{writes[pos - shown]}, {source})")
            continue
        if node.op == "input":
            expr = f"x{node.attrs['index']}"
        elif node.op == "const" and not node.weak:
            expr = fresh("c")
            ns[expr] = node.attrs["value"]  # as captured: a float16 constant stays float16
            expr = f"{expr}.copy()"
        elif node.dtype == np.float16:
            expr = f"{expr}.astype(np.float16)"  # a copy, from float32 storage
        elif _views_constant(node):
            expr = f"{expr}.copy()"
        if node.weak and node.op not in ("input", "const"):
            expr = f"{expr}.item()"  # Python operators on Python scalars give Python scalars
        elif returns_numpy_scalar(node):
            expr = f"{expr}[()]"
        elif (node in seen and seen[node] != alias) or \
                seen_memory.setdefault(view_base(node), memory[pos]) != memory[pos]:
            expr = f"{expr}.copy(order='K')"  # distinct results stay distinct arrays
        seen.setdefault(node, alias)
        out = f"r{pos}"
        lines.append(f"{out} = {expr}")
        results.append(out)
    for pos, leaf in graph.meta.get("returns_input", {}).items():
        results[pos] = f"x{leaf}"  # the caller's array itself, as NumPy returns it
    lines.append(f"return {_tree_expr(graph.out_tree, results, ns)}")
    if any(k.reports_errors for k in kernels):
        ns["_zeros"] = np.zeros
        lines.insert(0, "_e = _zeros(1, np.int64)")
        if checked_line is not None:
            checked_line += 1
    params = ", ".join(f"x{i}" for i in range(graph.meta["num_leaves"]))
    source = f"def run({params}):\n" + "".join(f"    {line}\n" for line in lines)
    exec(compile(source, f"<tracejit-run {graph.name}>", "exec"), ns)
    _warn_if_slow(graph, compile_seconds, kernels)
    return Executable(graph, steps, kernels, ns["run"], source, plan, arena, in_place, ns, lines,
                      (checked_line, checked) if checked else None)


def _checked_leaves(kernel, layouts, args, outs, before):
    """The arguments (leaf indices) whose shape and layout the first kernel checks itself
    (CompiledKernel.checks_inputs), so that a fast path need not: C- or F-contiguous arrays it
    reads as they are, where nothing before it touches an argument and it writes none (its
    outputs, made to the signature's shapes, then pin the shapes it checks against)."""
    leaf = re.compile(r"\bx\d+")
    if kernel.kind != "elementwise" or any(leaf.search(line) for line in before) \
            or any(leaf.fullmatch(o) for o in outs):
        return frozenset()
    return frozenset(n.attrs["index"] for n, lay, a in zip(kernel.inputs, layouts, args)
                     if n.op == "input" and a == f"x{n.attrs['index']}" and n.shape != ()
                     and lay in (CONTIGUOUS, FORTRAN))


__all__ = ["Executable", "CompileCancelled", "build", "SCALAR", "CONTIGUOUS", "FORTRAN",
           "STRIDED"]
