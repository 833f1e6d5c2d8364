"""The loop-level description of a fused kernel, between fusion and the backends.

Fusion decides which nodes form a kernel; this module says what the kernel's loops do, in
terms every backend renders the same way:
  domain     the shape iterated over and, for reduction kernels, the reduced axes (a row is
             one index of the kept axes; its elements are the indices of the reduced axes);
  operands   the inputs (each a scalar, a C- or F-contiguous or a strided array, read
             broadcast) and the outputs (C- or F-contiguous arrays, or strided: the slice of a
             larger array that a slice assignment writes; an output may be written over an
             input, in place), in the order the kernel takes them;
  statements the kernel's nodes in order, each with its role (computed per element, per row, or
             a reduction) and the pass over the row that computes it;
  reductions how each reduction starts, accumulates and combines partial results;
  buffered   element values a later pass over the row needs and that cost too much to compute
             again (fusion.plan_passes): a backend keeps their row in a buffer or recomputes.
The scalar code of a statement comes from the op table (`Op.code`, `ReduceCode`) as Python
source over the names `np` and the `_helpers` of scalar_helpers: each backend compiles it in
a namespace of its own, so the CPU can bind `np.exp` to vectorisable math and CUDA to libdevice.
"""

import hashlib
import math
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .ops import ELEMENTWISE, OPS, cast, compute_dtype

# How an operand arrives: a number, or an array that is C-contiguous, F-contiguous (ndim >= 2,
# not also C-contiguous: the transpose of a C-contiguous one) or has any strides.
SCALAR, CONTIGUOUS, FORTRAN, STRIDED = "S", "C", "F", "A"
ELEMENT, ROW, REDUCE = "element", "row", "reduce"


def array_layout(a):
    """CONTIGUOUS, FORTRAN or STRIDED: the layout class of a NumPy array."""
    flags = a.flags
    return CONTIGUOUS if flags.c_contiguous else FORTRAN if flags.f_contiguous else STRIDED


def reports_errors(nodes):
    """True if the scalar code of a node reports errors (a negative integer power) through
    `_err`: then the kernel takes that array as its last argument (scalar_helpers.KERNEL_ERRORS)."""
    return any(OPS[n.op].kind == ELEMENTWISE and re.search(r"\b_err\b", OPS[n.op].code(
        [f"a{i}" for i in range(len(n.args))], n, OPS[n.op].loop(n))) for n in nodes)


def literal(value, dtype):
    """Code for a scalar constant of the given dtype."""
    dtype = np.dtype(dtype)
    value = np.asarray(value).item()
    if dtype.kind == "b":
        return repr(bool(value))
    if dtype.kind == "f":
        value = float(np.float16(value) if dtype == np.float16 else value)
        if math.isnan(value):
            text = "np.nan"
        elif math.isinf(value):
            text = "np.inf" if value > 0 else "-np.inf"
        else:
            text = repr(value)
    else:
        text = repr(int(value))
    return f"np.{compute_dtype(dtype).name}({text})"


def result_cast(expr, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return f"bool({expr})"
    if dtype == np.float16:  # computed in float32, rounded as NumPy rounds each float16 op
        return f"_round_f16(np.float32({expr}))"
    return f"np.{compute_dtype(dtype).name}({expr})"


def node_expr(node, read):
    """Scalar code computing an elementwise node; `read(arg)` is the code of an argument."""
    op = OPS[node.op]
    loop = op.loop(node)
    exprs = [cast(read(a), a.dtype, dt) if not a.is_scalar_const()
             else literal(a.attrs["value"], dt) for a, dt in zip(node.args, loop)]
    return result_cast(op.code(exprs, node, loop), node.dtype)


def acc_type(r):
    """The dtype a reduction accumulates in (float64 for float32 sums)."""
    return np.dtype(OPS[r.op].code.acc(compute_dtype(r.args[0].dtype), r.dtype))


def source_name(source):
    return "k_" + hashlib.sha1(source.encode()).hexdigest()[:10]


def index_into(arg_shape, cons_shape, cons_names):
    """Index of an argument broadcast to a consumer whose dimensions are indexed by cons_names."""
    offset = len(cons_shape) - len(arg_shape)
    idx = ["0" if n == 1 and cons_shape[j + offset] != 1 else cons_names[j + offset]
           for j, n in enumerate(arg_shape)]
    return ", ".join(idx) or "()"


@dataclass(frozen=True)
class Operand:
    name: str  # the kernel's parameter
    node: object
    layout: str  # SCALAR, CONTIGUOUS, FORTRAN or STRIDED
    over: int = None  # an output's: the index of the input it is written over, in place


@dataclass(frozen=True)
class Statement:
    name: str  # the local holding its value
    node: object
    role: str  # ELEMENT, ROW or REDUCE
    at: int  # element: the pass computing it; row: computed before that pass; reduce: its pass


@dataclass(frozen=True)
class Reduction:
    """How a reduction statement accumulates: start value, one step, and the dtype it keeps.
    `arg` reductions (argmax/argmin) keep the best value and its index; `update` is then the
    condition under which a new value replaces the best one (the first extreme wins)."""

    init: str
    acc: np.dtype
    arg: bool
    op: str

    def update(self, acc, x):
        return OPS[self.op].code.update(acc, x, self.acc)


@dataclass(frozen=True)
class KernelDesc:
    kind: str  # "elementwise", "reduction" or "rowwise"
    shape: tuple
    axes: tuple  # reduced axes; () for elementwise kernels
    passes: int  # passes over each row (1 for a plain reduction, 0 for elementwise)
    inputs: tuple
    outputs: tuple
    statements: tuple
    reports_errors: bool
    buffered: tuple = ()

    @property
    def kept(self):
        return tuple(d for d in range(len(self.shape)) if d not in self.axes)

    @cached_property
    def by_node(self):
        """Each statement by the node it computes."""
        return {s.node: s for s in self.statements}

    def statement(self, node):
        return self.by_node[node]

    def reduction(self, st):
        r = st.node
        acc = acc_type(r)
        return Reduction(OPS[r.op].code.init(acc), acc, OPS[r.op].code.arg, r.op)

    def expr(self, st, read):
        """The scalar code of a non-reduction statement; read(node) names a value it uses."""
        return node_expr(st.node, read)

    def row_names(self, shape, names):
        """Index names of a row value's dimensions (keepdims form, or with the reduced axes
        dropped) in the domain whose dimensions are indexed by `names`."""
        rank = len(self.shape)
        row_shape = tuple(1 if d in self.axes else n for d, n in enumerate(self.shape))
        if len(shape) <= rank and (1,) * (rank - len(shape)) + tuple(shape) == row_shape:
            off = rank - len(shape)
            return ["0" if d + off in self.axes else names[d + off] for d in range(len(shape))]
        return [names[d] for d in self.kept]

    def row_index(self, node, names):
        """Index of a row value stored in its own array."""
        return ", ".join(self.row_names(node.shape, names)) or "()"


def describe(kernel, layouts, out_layouts=None, over=None):
    """The loop-level description of a fusion Kernel whose inputs arrive with these layouts;
    `out_layouts` says how each output is stored (CONTIGUOUS unless given), `over` maps an
    output's index to the index of the input it is written over."""
    over = over or {}
    ins = tuple(Operand(f"x{i}", n, lay) for i, (n, lay) in enumerate(zip(kernel.inputs, layouts)))
    outs = tuple(Operand(f"out{i}", n, lay, over.get(i))
                 for i, (n, lay) in enumerate(zip(kernel.outputs, out_layouts
                                                  or [CONTIGUOUS] * len(kernel.outputs))))
    if kernel.kind == "elementwise":
        statements = tuple(Statement(f"t{i}", n, ELEMENT, 0) for i, n in enumerate(kernel.nodes))
        axes, passes, buffered = (), 0, ()
    else:
        meta = kernel.meta
        roles, at, reduce_pass = meta["roles"], meta["at"], meta["reduce_pass"]
        statements = tuple(
            Statement(f"t{i}", n, roles[n], reduce_pass[n] if roles[n] == REDUCE else at[n])
            for i, n in enumerate(kernel.nodes))
        axes, passes = tuple(sorted(meta["axes"])), meta["count"]
        buffered = tuple(meta["buffered"])
    return KernelDesc(kernel.kind, tuple(kernel.shape), axes, passes, ins, outs, statements,
                      reports_errors(kernel.nodes), buffered)
