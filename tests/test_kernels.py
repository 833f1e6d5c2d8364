"""The loop-level kernel description (tracejit/kernels.py) and the backend interface: what a
backend is told about each kernel, checked on the kernels fusion makes (no compilation)."""

import numpy as np
import pytest

import tracejit as tj
from tracejit.backends.base import BACKENDS, load_backend
from tracejit.kernels import CONTIGUOUS, ELEMENT, REDUCE, ROW, SCALAR, STRIDED, describe
from tracejit.ops import OPS
from tracejit.passes.fusion import Kernel, op_cost, schedule
from tracejit.passes.simplify import simplify


def _kernels(fn, *args):
    traced = tj.trace(fn)
    leaves, treedef, static = traced._flatten(args, {})
    graph = simplify(traced._trace(leaves, treedef, static))
    return [s for s in schedule(graph) if isinstance(s, Kernel)]


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_elementwise_description():
    (kernel,) = _kernels(lambda a, b: np.exp(-a * a) * b + 1.5, np.ones((3, 4)), np.ones(4))
    desc = describe(kernel, [CONTIGUOUS, STRIDED])
    assert desc.kind == "elementwise" and desc.shape == (3, 4) and desc.axes == ()
    assert [(o.name, o.layout) for o in desc.inputs] == [("x0", CONTIGUOUS), ("x1", STRIDED)]
    assert [o.name for o in desc.outputs] == ["out0"]
    assert {st.role for st in desc.statements} == {ELEMENT}
    assert [st.node.op for st in desc.statements] == ["negative", "multiply", "exp",
                                                      "multiply", "add"]
    exp = next(st for st in desc.statements if st.node.op == "exp")
    # the op table's scalar code, over names the backend chooses
    code = OPS["exp"].code(["v"], exp.node, OPS["exp"].loop(exp.node))
    assert desc.expr(exp, lambda node: "v") == f"np.float64({code})"
    assert not desc.reports_errors


def test_rowwise_description_softmax():
    (kernel,) = _kernels(_softmax, np.ones((4, 8), np.float32))
    desc = describe(kernel, [CONTIGUOUS])
    assert desc.kind == "rowwise" and desc.axes == (1,) and desc.kept == (0,)
    reductions = [st for st in desc.statements if st.role == REDUCE]
    assert [(st.node.op, st.at) for st in reductions] == [("max", 0), ("sum", 1)]
    assert desc.passes == 3  # max, then sum of exp, then the stored quotient
    (out,) = desc.outputs
    assert desc.statement(out.node).role == ELEMENT and desc.statement(out.node).at == 2
    sums = desc.reduction(reductions[1])
    assert sums.acc == np.float64 and sums.init == "np.float64(0)" and not sums.arg
    assert sums.update("a", "x") == "(a + x)"


def test_reduction_description_keeps_row_values_and_arg_reductions():
    (kernel,) = _kernels(lambda a: (a.argmax(axis=0), a.mean(axis=0) * 2), np.ones((5, 3)))
    desc = describe(kernel, [CONTIGUOUS])
    assert desc.kind == "reduction" and desc.axes == (0,) and desc.kept == (1,)
    roles = {st.node.op: st.role for st in desc.statements}
    assert roles["argmax"] == REDUCE and roles["sum"] == REDUCE
    assert ROW in roles.values()  # the mean's divide and the doubling, once per column
    argmax = next(st for st in desc.statements if st.node.op == "argmax")
    assert desc.reduction(argmax).arg
    for o in desc.outputs:
        assert desc.row_index(o.node, ["i0", "i1"]) == "i1"


def test_scalar_and_error_reporting_operands():
    (kernel,) = _kernels(lambda a, k: a ** k, np.arange(4), np.array([1, 2, 3, 4]))
    desc = describe(kernel, [CONTIGUOUS, CONTIGUOUS])
    assert desc.reports_errors  # a negative integer power raises after the kernel
    (kernel,) = _kernels(lambda a, s: a * s, np.ones(3), 2.0)
    assert describe(kernel, [CONTIGUOUS, SCALAR]).inputs[1].layout == SCALAR


def test_op_costs_live_in_the_op_table():
    assert OPS["add"].cost == 1 < OPS["divide"].cost == 4 < OPS["exp"].cost < OPS["tan"].cost
    (kernel,) = _kernels(lambda a, b: a / b, np.ones(3), np.ones(3))
    assert op_cost(kernel.nodes[0]) == 4


def test_backends_are_loaded_by_name():
    assert "cpu" in BACKENDS and "cuda" in BACKENDS
    assert hasattr(load_backend("cpu"), "compile_kernel")
    with pytest.raises(tj.UnsupportedError, match="'tpu' is not available; use one of 'cpu'"):
        load_backend("tpu")
