"""Dask arrays in, per-chunk fused kernels out.

A traced function called with `dask.array` arguments is traced once, on placeholders of the
arrays' global shapes (so counts such as `mean`'s divisor are the whole array's), and its graph
is lowered onto Dask node by node (`lower`):

- elementwise work, and reductions over axes no chunk boundary splits (row-wise work), is
  deferred: each value Dask needs becomes one `blockwise` task per chunk that runs the fused
  kernel of the deferred nodes it depends on;
- a reduction over a split axis is a `da.reduction` whose per-chunk step is a fused kernel
  ending in the reduction with `keepdims` (one partial result per chunk), merged by the op
  table's `combine` reduction; argmax and argmin carry each partial's index with its value;
- views and matmul are Dask's own (it slices, transposes and multiplies blocks itself), but a
  kernel reading a view that only inserts length-1 axes (`x[:, None]`) reads `x`'s chunks and
  inserts the axes itself; any other op runs on Dask arrays through its NumPy reference, with
  a `FallbackWarning`.

Traced steps compose (`compose`), as jax.jit of composed functions does: an argument that is
the blockwise result of a traced function on Dask arrays is replaced by that function's graph
on its own arguments, so a producer's chunks are computed inside the consumer's kernel and never
exist. The rule: always compose; the producer's tasks stay in Dask's graph for whoever asks for
the intermediate itself (`dask.compute(y, g(y))` runs them for `y`, and `g` recomputes `y` in
its kernel: the producer's arithmetic twice, and no chunk of `y` held waiting for `g`). To keep
an intermediate instead, persist it (`y = y.persist()`): a persisted array is plain chunks.

A per-chunk step (`ChunkStep`) holds plain data only: the graph of its nodes. Whoever runs it
(a thread, or a worker process under dask.distributed) specialises that graph to each chunk's
shapes and builds it there; kernels are cached by their source, so chunks of another shape and
the same rank compile nothing new.
"""

import hashlib
import sys
import threading
import warnings
import weakref
from collections import OrderedDict

import numpy as np

from . import pytree
from .autodiff import strip_stop_gradients
from .errors import FallbackWarning, TraceError, TracejitError, user_stacklevel
from .executor import CONTIGUOUS, SCALAR, STRIDED, build
from .graph import Graph, Node
from .ops import ELEMENTWISE, MATMUL, OPS, REDUCTION, VIEW
from .passes.fusion import schedule
from .passes.simplify import simplify
from .passes.views import fuse_unit_views, is_unit_view


def is_dask_array(x):
    da = sys.modules.get("dask.array")  # never import Dask for a call that has no Dask array
    return da is not None and isinstance(x, da.Array)


def has_dask_array(leaves):
    return "dask.array" in sys.modules and any(is_dask_array(leaf) for leaf in leaves)


def call_on_dask(traced, leaves, treedef):
    """traced(*args) for arguments holding Dask arrays: lazy Dask results whose chunks run
    fused kernels, or, when the function cannot be traced, the function itself run on the Dask
    arrays (Dask's own NumPy path) with a FallbackWarning."""
    placeholders = [np.broadcast_to(np.zeros((), leaf.dtype), leaf.shape)
                    if is_dask_array(leaf) else leaf for leaf in leaves]
    if traced.backend != "cpu":
        return _whole_fallback(traced, leaves, treedef, "Dask chunks run on the CPU backend only")
    try:
        with traced._lock:  # tracing runs once at a time per function, as for NumPy calls
            graph = traced._trace(placeholders, treedef, traced._static(placeholders, treedef))
        graph = simplify(strip_stop_gradients(graph))
        if traced.fuse:  # the passes TracedFunction._compile runs
            graph = simplify(fuse_unit_views(graph))
        if graph.meta["writes"]:
            raise TraceError("it writes into its arguments, and Dask arrays are immutable")
        graph, values = compose(graph, list(leaves) + list(graph.meta["captured"]))
        outputs, unmapped = lower(simplify(graph), values, traced.fuse, traced.parallel)
    except TraceError as e:
        return _whole_fallback(traced, leaves, treedef, str(e))
    except TracejitError:
        raise  # the user's error (operands that do not broadcast), as for NumPy arrays
    except Exception as e:  # noqa: BLE001 (nothing internal reaches the caller raw)
        return _whole_fallback(traced, leaves, treedef,
                               f"tracejit failed internally ({type(e).__name__}: {e})")
    if unmapped:
        _warn(traced, "these steps run as Dask's own NumPy path: " + "; ".join(unmapped))
    return pytree.unflatten(graph.out_tree, outputs)


def _warn(traced, reason):
    if traced.fallback == "raise":
        raise TraceError(f"{traced.__name__} on Dask arrays: {reason}")
    traced._count("fallbacks")
    if traced.fallback == "warn":
        warnings.warn(f"tracejit: {traced.__name__} on Dask arrays: {reason}", FallbackWarning,
                      stacklevel=user_stacklevel())


def _whole_fallback(traced, leaves, treedef, reason):
    _warn(traced, f"runs as Dask's own NumPy path: {reason}")
    args, kwargs = pytree.unflatten(treedef, leaves)
    return traced.fn(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# traced producers composed with traced consumers

_PRODUCED = {}  # Dask array name -> (weak reference to the array, its segment graph, its inputs)


def _remember(array, graph, values):
    """array (a blockwise result) computes graph on values, chunk by chunk."""
    name = array.name

    def forget(ref):
        if _PRODUCED.get(name, (None,))[0] is ref:
            del _PRODUCED[name]

    _PRODUCED[name] = (weakref.ref(array, forget), graph, values)


def producer_of(value):
    """(segment graph, its input values) if value is a traced blockwise result, still a
    blockwise layer (a persisted array of the same name holds its chunks instead)."""
    from dask.blockwise import Blockwise

    entry = _PRODUCED.get(value.name) if is_dask_array(value) else None
    if entry is None or entry[0]() is None:
        return None
    return entry[1:] if isinstance(value.dask.layers.get(value.name), Blockwise) else None


def compose(graph, values):
    """The graph with each input whose value a traced blockwise layer makes replaced by that
    layer's graph, which reads the layer's own inputs (appended to values). Guarantees: the
    same outputs, computed from the producers' inputs instead of their results."""
    values, new, by_name = list(values), {}, {}
    for n in graph.nodes:
        value = values[n.attrs["index"]] if n.op == "input" else None
        producer = producer_of(value)
        if producer is None:
            continue
        segment, inputs = producer
        (root,) = segment.outputs
        if root.shape == n.shape and root.dtype == n.dtype:
            if value.name not in by_name:  # arguments of one name are one computation
                inner = {node: Node("input", (), {**node.attrs, "index": len(values) + i},
                                    node.shape, node.dtype, node.weak)
                         for i, node in enumerate(segment.inputs)}
                values.extend(inputs)
                by_name[value.name] = _copy(segment.nodes, inner)[root]
            new[n] = by_name[value.name]
    if not new:
        return graph, values
    _copy(graph.nodes, new)
    return graph.replace(outputs=[new[o] for o in graph.outputs],
                         inputs=[i for i in graph.inputs if new[i] is i]), values


def _copy(nodes, new):
    """new, extended by copies of nodes that read the copies (or new's replacements) of their
    arguments; inputs and constants stay themselves."""
    for m in nodes:
        if m not in new:
            new[m] = m if m.op in ("input", "const") else Node(
                m.op, [new[a] for a in m.args], m.attrs, m.shape, m.dtype, m.weak, m.loc)
    return new


# ---------------------------------------------------------------------------------------------
# the graph onto Dask

_VIEWS = {}  # Dask array name -> (weak reference to the array, the array it is a unit view of)


def _remember_view(array, source):
    """array is source with length-1 axes inserted or removed (Dask's own view)."""
    name = array.name

    def forget(ref):
        if _VIEWS.get(name, (None,))[0] is ref:
            del _VIEWS[name]

    _VIEWS[name] = (weakref.ref(array, forget), source)


def _view_source(value):
    entry = _VIEWS.get(value.name) if is_dask_array(value) else None
    return None if entry is None or entry[0]() is None else entry[1]


def _split_axes(value):
    """Axes of a materialised value that chunk boundaries split."""
    chunks = getattr(value, "chunks", ())
    return frozenset(d for d, c in enumerate(chunks) if len(c) > 1)


def _where(node):
    loc = node.loc
    return f" ({loc[0].rsplit('/', 1)[-1]}:{loc[1]})" if loc else ""


def lower(graph, values, fuse=True, parallel=None):
    """The graph's outputs as Dask arrays (or Python scalars), and a description of each step
    that runs as Dask's own NumPy path. `values[i]` is the value of the input with index i."""
    import dask.array as da

    # Dask runs the chunks in parallel: kernels run on one core unless parallel=True
    lowering = _Lowering(fuse, False if parallel is None else parallel, graph.name)
    env, split, unmapped = lowering.env, lowering.split, []
    for n in graph.nodes:
        kind = OPS[n.op].kind
        if n.op == "input":
            value = values[n.attrs["index"]]
            env[n] = value if is_dask_array(value) or n.shape == () else da.asarray(value)
        elif n.op == "const":
            if n.shape != ():
                env[n] = da.asarray(n.attrs["value"])
        elif kind == ELEMENTWISE and n.shape != () and not n.args:  # np.zeros_like and friends
            env[n] = da.full(n.shape, n.attrs["value"], dtype=n.dtype)
        elif kind == ELEMENTWISE:
            split[n] = frozenset().union(*(
                {d + n.ndim - a.ndim for d in lowering.split_of(a)} for a in n.args))
        elif kind == REDUCTION and not set(n.attrs["axis"]) & lowering.split_of(n.args[0]):
            axes, keepdims = n.attrs["axis"], n.attrs["keepdims"]
            split[n] = frozenset(d if keepdims else d - sum(a < d for a in axes)
                                 for d in lowering.split_of(n.args[0]))
        elif kind == REDUCTION and lowering.splittable(n):
            env[n] = lowering.reduce_split(n)
        else:
            if kind not in (VIEW, MATMUL):
                unmapped.append(f"{n.op}{_where(n)}")
            args = [lowering.dask(a) for a in n.args]
            env[n] = OPS[n.op].ref(*args, **n.attrs)
            if is_unit_view(n) and is_dask_array(args[0]) and is_dask_array(env[n]):
                _remember_view(env[n], args[0])
    outputs = [o.attrs["value"] if o.is_scalar_const() else lowering.dask(o)
               for o in graph.outputs]
    return outputs, unmapped


class _Lowering:
    """env: node -> its materialised value (a Dask array, or a scalar argument); nodes not in
    env are deferred into the kernel of the next value Dask needs. split: node -> its axes that
    chunk boundaries split. Dask's layers are named after the traced function ("tracejit-f-...")."""

    def __init__(self, fuse, parallel, name):
        self.options = (fuse, parallel)
        self.prefix = f"tracejit-{name.strip('<>')}"
        self.env, self.split = {}, {}

    def split_of(self, node):
        if node in self.env:
            return _split_axes(self.env[node])
        return self.split.get(node, frozenset())  # scalar constants

    def dask(self, node):
        """The node as a Dask array: a blockwise fused kernel if it was deferred."""
        if node not in self.env:
            self.env[node] = self.blockwise([node])
        return self.env[node]

    def splittable(self, n):
        """A reduction over split axes that merges per-chunk partials: all of them but arg
        reductions over several axes (an index into a flattened array)."""
        return not OPS[n.op].code.arg or len(n.attrs["axis"]) == 1 or n.args[0].ndim == 1

    def reduce_split(self, n):
        import dask.array as da

        (x,), axes, keepdims = n.args, n.attrs["axis"], n.attrs["keepdims"]
        code = OPS[n.op].code
        combine = code.combine or n.op
        if not code.arg:
            partial = _node(n.op, [x], {**n.attrs, "keepdims": True}, n)
            partials = self.blockwise([partial], x, axes)
            merge = getattr(np, combine)
            return da.reduction(partials, chunk=_partial, combine=merge, aggregate=merge,
                                name=f"{self.prefix}-{n.op}", axis=axes, keepdims=keepdims,
                                dtype=n.dtype, concatenate=True,
                                split_every=_split_every(partials, axes),
                                meta=np.empty((0,) * n.ndim, n.dtype))
        (axis,) = axes
        best = _node(combine, [x], {"axis": axes, "keepdims": True}, n)
        where = _node(n.op, [x], {"axis": axes, "keepdims": True}, n)
        pairs = self.blockwise([best, where], x, axes)
        pick = getattr(np, n.op)
        return da.reduction(pairs, chunk=_partial, combine=_ArgMerge(pick),
                            aggregate=_ArgMerge(pick, final=True), name=f"{self.prefix}-{n.op}",
                            axis=axes, split_every=_split_every(pairs, axes),
                            keepdims=keepdims, dtype=n.dtype, concatenate=True,
                            meta=np.empty((0,) * n.ndim, n.dtype))

    def blockwise(self, roots, reduced=None, axes=()):
        """One blockwise task per chunk computing roots (deferred nodes) with a fused kernel.
        With `reduced` (the input of roots that reduce it over `axes` with keepdims), those axes
        keep their chunks' positions with one partial result per chunk; two roots are an arg
        reduction's (value, index), packed into one record array with global indices."""
        import dask.array as da
        from dask.array.core import unify_chunks

        while True:
            members, inputs = self._segment(roots)
            symbols = _Symbols()
            index = {}
            for node in inputs:
                index[node] = symbols.fresh(node.ndim)
            for m in members:
                index[m] = symbols.infer(m, index)
            find = symbols.find
            values = [self.env[node] for node in inputs]
            read, indices, expand = self._read(inputs, values, index, find)
            chunkss, arrays = unify_chunks(*[x for pair in zip(read, indices) for x in pair])
            # a row-wise reduction whose rows the other inputs' chunks would split runs first,
            # on its own inputs' chunks (whole rows); the rest reads its result
            split_rows = [m for m in members if m not in roots and OPS[m.op].kind == REDUCTION
                          and any(len(chunkss.get(find(index[m.args[0]][a]), ())) > 1
                                  for a in m.attrs["axis"])]
            if not split_rows:
                break
            for m in split_rows:
                self.env[m] = self.blockwise([m])
        out = tuple(map(find, index[roots[0] if reduced is None else reduced]))
        new_axes = {s: n for s, n in zip(out, roots[0].shape) if s not in chunkss}
        reduced_symbols = {out[a]: 1 for a in axes}
        scalars = [not is_dask_array(v) and not isinstance(v, np.ndarray) for v in values]
        step = ChunkStep(_template(members, inputs, roots, scalars), *self.options, expand)
        dtype = roots[0].dtype
        if len(roots) == 2:
            step, dtype = _PackArgs(step), _arg_record(dtype)
        # axes an input has and the result lacks (a row-wise reduction's, a broadcast length-1
        # axis's) are whole chunks: Dask then passes each such block in a list of one, which
        # the step unwraps. Concatenating (only needed across several blocks) would keep Dask
        # from fusing this layer with the blockwise layers that read it (a reduction's chunk
        # step, Dask's own elementwise work): an extra task per chunk.
        contracted = {s for idx in indices if idx is not None for s in idx} - set(out)
        concatenate = True if any(len(chunkss[s]) > 1 for s in contracted) else None
        result = da.blockwise(step, out, *[x for pair in zip(arrays, indices) for x in pair],
                              token=self.prefix, dtype=dtype, concatenate=concatenate,
                              new_axes=new_axes or None,
                              adjust_chunks=reduced_symbols or None,
                              meta=np.empty((0,) * len(out), dtype))
        if len(roots) == 2:  # local indices -> global: add where each chunk starts
            (axis,) = axes
            starts = np.cumsum((0,) + chunkss[out[axis]][:-1])
            result = result.map_blocks(_ShiftArgs(axis, tuple(int(s) for s in starts)),
                                       token=f"{self.prefix}-shift", dtype=dtype,
                                       meta=np.empty((0,) * len(out), dtype))
        elif reduced is None:
            _remember(result, step.graph, values)
        return result

    @staticmethod
    def _read(inputs, values, index, find):
        """What the blockwise layer reads for each input, its index symbols, and how the step
        makes the input's block of it (ChunkStep's `expand`). An input that is a view inserting
        length-1 axes into a Dask array (`x[:, None]`, as a mesh is made) reads that array,
        and the step inserts the axes: no task per chunk for the view, no axis of an input
        that the result lacks (a length-1 axis against a longer one has its own symbol), so
        Dask fuses the layer with the tasks making the array's chunks (`fuse_roots`)."""
        read, indices, expand = [], [], []
        for node, value in zip(inputs, values):
            idx = tuple(map(find, index[node])) if is_dask_array(value) else None
            source = _view_source(value)
            keep = [d for d, k in enumerate(node.shape) if k != 1]
            if source is None or len(keep) != source.ndim or 1 in source.shape:
                read.append(value)
                indices.append(idx)
                expand.append(None)
            else:
                read.append(source)
                indices.append(tuple(idx[d] for d in keep))
                expand.append((tuple(keep), node.ndim))
        return read, indices, tuple(expand)

    def _segment(self, roots):
        """The deferred nodes roots depend on (producers first) and the materialised values
        they read (in first-use order)."""
        members, inputs, seen = [], [], set()

        def visit(node):
            if node in seen:
                return
            seen.add(node)
            if node in self.env:
                inputs.append(node)
                return
            for a in node.args:
                visit(a)
            members.append(node)

        for r in roots:
            visit(r)
        return members, inputs


# Partial results merged per task of a split reduction's tree: as many as fit in this many
# bytes (a scalar partial per chunk: up to _MERGE_MAX at once), at least 2 per reduced axis.
# Dask's default (4 over all axes: 2 per axis of a 2-d sum) makes a task of every 2 partials,
# and on a distributed cluster each task costs milliseconds of scheduling, whatever it holds.
_MERGE_BYTES = 32 << 20
_MERGE_MAX = 64


def _split_every(partials, axes):
    """da.reduction's split_every: {axis: partials merged at once along it}, or None."""
    block = partials.dtype.itemsize * np.prod([max(c) for d, c in enumerate(partials.chunks)
                                              if d not in axes])
    if not np.isfinite(block):  # chunks of unknown size: Dask's default
        return None
    fit = max(min(_MERGE_BYTES // max(int(block), 1), _MERGE_MAX), 2)
    split = [a for a in axes if partials.numblocks[a] > 1] or list(axes)
    each = max(int(fit ** (1 / len(split)) + 1e-9), 2)
    return {a: each if a in split else 2 for a in axes}


def _node(op, args, attrs, like):
    """A node like `like` (its weak typing and line), its shape and dtype inferred again."""
    shape, dtype = OPS[op].infer(args, attrs)
    return Node(op, args, attrs, shape, dtype, like.weak and op == like.op, like.loc)


class _Symbols:
    """Blockwise index symbols of each node's axes: axes that line up (same length, aligned
    from the right) share a symbol. A length-1 axis against a longer one gets its own."""

    def __init__(self):
        self.parent, self.count = {}, 0

    def fresh(self, ndim):
        start, self.count = self.count, self.count + ndim
        return tuple(range(start, start + ndim))

    def find(self, s):
        while self.parent.get(s, s) != s:
            s = self.parent[s]
        return s

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[a] = b

    def infer(self, m, index):
        if OPS[m.op].kind == REDUCTION:
            (x,), axes = m.args, m.attrs["axis"]
            if not m.attrs["keepdims"]:
                return tuple(s for d, s in enumerate(index[x]) if d not in axes)
            fresh = iter(self.fresh(len(axes)))
            return tuple(next(fresh) if d in axes else s for d, s in enumerate(index[x]))
        out = self.fresh(m.ndim)
        for a in m.args:
            for d, s in enumerate(index[a]):
                od = d + m.ndim - a.ndim
                if a.shape[d] == m.shape[od]:
                    self.union(s, out[od])
        return out


def _template(members, inputs, roots, scalars):
    """A graph of the segment: materialised values become its inputs, in order (`scalars`:
    which are Python or NumPy scalars, passed to kernels by value)."""
    new = {}
    for i, (node, scalar) in enumerate(zip(inputs, scalars)):
        new[node] = Node("input", (), {"name": f"x{i}", "index": i, "scalar": scalar},
                         node.shape, node.dtype, node.weak)
    for m in members:
        new[m] = m if m.op == "const" else Node(m.op, [new[a] for a in m.args], m.attrs,
                                                m.shape, m.dtype, m.weak, m.loc)
    outputs = [new[r] for r in roots]
    out_tree = pytree.LEAF if len(roots) == 1 else pytree.flatten(tuple(roots))[1]
    k = tuple(range(len(outputs)))
    return Graph("chunk", [new[i] for i in inputs], outputs, out_tree,
                 meta={"out_alias": k, "out_memory": k, "writes": (), "returns_input": {},
                       "num_leaves": len(inputs)})


# ---------------------------------------------------------------------------------------------
# the per-chunk steps: plain data, built where they run

_BUILT = OrderedDict()  # (step token, chunk signature) -> Executable, in this process
_OUT_BYTES = {}  # the same keys -> bytes of the Executable's results
_BUILT_MAX = 256
# An Executable keeps its last results, per thread, to write the next ones into once Dask has
# let go of them (no page faults for fresh memory). Chunks of many shapes would each keep
# theirs after the computation ends (measured: 40 shapes of 16 MiB held 646 MiB), so the
# least recently used plans go once their results pass this many bytes (per thread): enough
# for the 2-4 chunk shapes of a regularly chunked array; a plan built again costs about 2 ms
# (its kernel stays compiled).
_KEPT_MAX_BYTES = 256 << 20
_BUILT_LOCK = threading.Lock()


def _layout(block):
    if isinstance(block, (np.generic, bool, int, float)):
        return SCALAR
    return CONTIGUOUS if block.flags.c_contiguous else STRIDED


def at_shapes(graph, blocks):
    """The graph for inputs of the blocks' shapes: every shape inferred again by the op table."""
    new = {}
    for node, block in zip(graph.inputs, blocks):
        new[node] = Node("input", (), node.attrs, np.shape(block), node.dtype, node.weak)
    for n in graph.nodes:
        if n not in new:
            new[n] = n if n.op == "const" else _node(n.op, [new[a] for a in n.args], n.attrs, n)
    return Graph(graph.name, [new[i] for i in graph.inputs], [new[o] for o in graph.outputs],
                 graph.out_tree, meta=graph.meta)


class ChunkStep:
    """Runs a segment graph on one chunk of each input. Pickles as the graph (plain data);
    the Executable for each chunk signature is built in the process that runs it."""

    def __init__(self, graph, fuse=True, parallel=False, expand=None):
        self.graph, self.options = graph, (fuse, parallel)
        # per input: None, or (axes, ndim): the block Dask passes has the input's axes
        # `axes` only, the others are length-1 axes to insert
        self.expand = expand if expand and any(expand) else None
        self.token = hashlib.sha1(f"{graph}|{graph.out_tree}|{self.options}|{self.expand}"
                                  .encode()).hexdigest()

    def __dask_tokenize__(self):
        # by content: the same function on the same arrays gives the same Dask keys, so Dask
        # computes a shared step once (dask.compute(f(x), f(x)), persisted results)
        return "tracejit.ChunkStep", self.token

    def executable(self, blocks):
        sig = tuple((np.shape(b), getattr(b, "dtype", type(b)), _layout(b)) for b in blocks)
        key = (self.token, sig)
        with _BUILT_LOCK:
            exe = _BUILT.get(key)
            if exe is not None:
                _BUILT.move_to_end(key)
                return exe
            graph = at_shapes(self.graph, blocks)
            fuse, parallel = self.options
            exe = _BUILT[key] = build(graph, schedule(graph, fuse), [s[2] for s in sig],
                                      parallel)
            _OUT_BYTES[key] = sum(int(np.prod(o.shape)) * o.dtype.itemsize
                                  for o in graph.outputs)
            while len(_BUILT) > 1 and (len(_BUILT) > _BUILT_MAX or
                                       sum(_OUT_BYTES.values()) > _KEPT_MAX_BYTES):
                old, _ = _BUILT.popitem(last=False)
                del _OUT_BYTES[old]
            return exe

    def __call__(self, *blocks):
        blocks = [_one_block(b) for b in blocks]
        if self.expand is not None:
            blocks = [b if e is None else _insert_axes(b, *e) for b, e in zip(blocks, self.expand)]
        out = self.executable(blocks).run(*blocks)
        if isinstance(out, tuple):
            return tuple(np.asarray(o) for o in out)
        # a 0-d result stays a NumPy scalar, as Dask's own chunks of NumPy scalars are
        return out if isinstance(out, (np.ndarray, np.generic)) else np.asarray(out)


def _one_block(block):
    """A block Dask passes in (nested) lists of one, along axes it does not concatenate."""
    while isinstance(block, list):
        (block,) = block
    return block


def _insert_axes(block, axes, ndim):
    shape = [1] * ndim
    for d, n in zip(axes, block.shape):
        shape[d] = n
    return block.reshape(shape)


def _arg_record(dtype):
    return np.dtype([("vals", dtype), ("arg", np.int64)])


class _PackArgs:
    """An arg reduction's per-chunk (value, index in the chunk) as one record array."""

    def __init__(self, step):
        self.step = step

    def __dask_tokenize__(self):
        return "tracejit.PackArgs", self.step.token

    def __call__(self, *blocks):
        vals, where = self.step(*blocks)
        out = np.empty(vals.shape, _arg_record(vals.dtype))
        out["vals"], out["arg"] = vals, where
        return out


class _ShiftArgs:
    """Indices in a chunk -> indices in the array: `starts` are where chunks start on `axis`."""

    def __init__(self, axis, starts):
        self.axis, self.starts = axis, starts

    def __dask_tokenize__(self):
        return "tracejit.ShiftArgs", self.axis, self.starts

    def __call__(self, pairs, block_id=None):
        out = pairs.copy()
        out["arg"] += self.starts[block_id[self.axis]]
        return out


def _partial(x, axis=None, keepdims=True, dtype=None):
    """da.reduction's chunk step over partial results: each is already one per chunk. (Dask
    also calls it on an empty array to learn the result type: that one gets `dtype`.)"""
    return np.empty(x.shape, dtype) if x.size == 0 and x.dtype.names else x


class _ArgMerge:
    """Merge arg reductions' (value, index) records along the axis: the index of the first
    best value (`pick`, np.argmax or np.argmin, takes NaN as NumPy does)."""

    def __init__(self, pick, final=False):
        self.pick, self.final = pick, final

    def __dask_tokenize__(self):
        return "tracejit.ArgMerge", self.pick.__name__, self.final

    def __call__(self, pairs, axis, keepdims, **_):
        (ax,) = axis
        best = np.take_along_axis(pairs, self.pick(pairs["vals"], axis=ax, keepdims=True), ax)
        if not keepdims:
            best = np.squeeze(best, ax)
        return best["arg"] if self.final else best
