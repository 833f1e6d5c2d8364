"""Differential fuzzing: random programs from the op table, compiled vs interpreted vs NumPy.

The default budget keeps CI fast. Run it long with, for example:

    TRACEJIT_FUZZ_EXAMPLES=20000 TRACEJIT_FUZZ_KEEP_GOING=1 python -m pytest tests/fuzz -q -s

Each example is one program structure (from a pool of seeds that shares compiled kernels) run on
fresh sizes, values and memory layouts, compiled serial-or-parallel by work and with
`parallel=True` forced (see check.py). A fraction of examples (TRACEJIT_FUZZ_LARGE, 0.1 by
default) are large: over a million elements, above the backend's parallel threshold. A failure
prints the program's source and arguments.
"""

import functools
import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))

from check import check  # noqa: E402
from programs import (  # noqa: E402
    INPLACE_OPS,
    NOT_DRAWN,
    OPERATORS,
    UNARY_OPERATORS,
    example,
    fuzzable_ops,
    make_program,
)

import tracejit as tj  # noqa: E402
from tracejit.ops import ELEMENTWISE, OPS  # noqa: E402

# a program the tracer cannot follow is a failure here, never a silent eager fallback
pytestmark = pytest.mark.filterwarnings("error", category=tj.FallbackWarning)

EXAMPLES = int(os.environ.get("TRACEJIT_FUZZ_EXAMPLES", "120"))
LONG = "TRACEJIT_FUZZ_EXAMPLES" in os.environ
# About ten instances per structure: most examples reuse compiled kernels.
POOL = int(os.environ.get("TRACEJIT_FUZZ_POOL", max(24, min(2500, EXAMPLES // 8))))
# TRACEJIT_FUZZ_KEEP_GOING=1 records every mismatch (printed as found) and fails at the end,
# instead of stopping at the first one: for surveying many bugs in one long run.
KEEP_GOING = os.environ.get("TRACEJIT_FUZZ_KEEP_GOING", "") not in ("", "0")
LARGE_FRACTION = float(os.environ.get("TRACEJIT_FUZZ_LARGE", "0.1"))
STATS = {}
FAILURES = []


@functools.cache
def program(seed):
    return make_program(seed)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG, database=None,
          suppress_health_check=list(HealthCheck), print_blob=True)
@given(seed=st.integers(0, POOL - 1), instance=st.integers(0, 2**32 - 1))
def test_compiled_matches_numpy(seed, instance):
    prog = program(seed)
    large, args = example(prog, instance, LARGE_FRACTION)
    STATS["examples"] = STATS.get("examples", 0) + 1
    if LONG and STATS["examples"] % 500 == 0:
        print(f"fuzz progress: {STATS}", file=sys.stderr, flush=True)
    try:
        check(prog, args, STATS, large=large)
    except Exception as e:
        shown = [np.shape(a) for a in args] if large else args
        report = (f"{prog!r}\n{'large instance, shapes ' * large}args = {shown!r}\n"
                  f"(args: example(make_program({seed}), {instance}, {LARGE_FRACTION}))\n"
                  f"{type(e).__name__}: {e}{_causes(e)}")
        if not KEEP_GOING:
            raise AssertionError(report) from e
        STATS["mismatches"] = STATS.get("mismatches", 0) + 1
        FAILURES.append(report)
        print(f"fuzz mismatch:\n{report}\n", file=sys.stderr, flush=True)


def _causes(error):
    """The chained causes of an error (a Numba TypingError under tracejit's InternalError)."""
    text, seen = "", {id(error)}
    while error.__cause__ is not None and id(error.__cause__) not in seen:
        error = error.__cause__
        seen.add(id(error))
        text += f"\ncaused by {type(error).__name__}: {str(error)[:1500]}"
    return text


def test_report_counts():
    """Runs after the fuzz test: prints what was checked (visible with -s)."""
    print(f"\nfuzz: {EXAMPLES} examples requested, pool of {POOL} structures, {STATS}")
    assert not FAILURES, f"{len(FAILURES)} mismatches; the first:\n{FAILURES[0]}"
    if STATS:
        assert STATS.get("checked", 0) > 0


def test_every_elementwise_op_is_fuzzed():
    """New elementwise ops join the fuzzer without edits; this fails if one cannot be called."""
    missing = {n for n, op in OPS.items() if op.kind == ELEMENTWISE} - set(fuzzable_ops())
    assert not missing, f"the fuzzer does not know how to call {sorted(missing)}"


@functools.cache
def _drawn_with_only(name):
    """What programs drawing from a table of only `name` (and `negative`, which makes the fresh
    intermediates that in-place writes need) use, over a few seeds."""
    ops = {n: fuzzable_ops()[n] for n in (name, "negative")}
    return set().union(*(make_program(seed, ops=ops, max_steps=8).ops for seed in range(12)))


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_in_the_table_can_be_drawn(name):
    """Every op in tracejit's table appears in generated programs (those in NOT_DRAWN, with a
    reason, excepted): an op added to the table without a way for the generator to call it,
    or with a call NumPy rejects on the probe arguments, fails here."""
    if name in NOT_DRAWN:
        pytest.skip(NOT_DRAWN[name])
    assert name in fuzzable_ops(), f"the fuzzer does not know how to call {name!r}"
    assert name in _drawn_with_only(name), f"no generated program uses {name!r}"


@pytest.mark.parametrize("operator", sorted({f"op {o}" for o in OPERATORS.values()}
                                            | {f"unary {o}" for o in UNARY_OPERATORS.values()}
                                            | {f"op {o}" for o in INPLACE_OPS}))
def test_every_python_operator_can_be_drawn(operator):
    """Operators are drawn as the op they trace to: `/` is the op `divide` (not true_divide),
    `a -= b` is subtract."""
    symbol = operator.split()[1]
    name = {**{v: k for k, v in OPERATORS.items()}, **INPLACE_OPS}[symbol] \
        if operator.startswith("op") else {v: k for k, v in UNARY_OPERATORS.items()}[symbol]
    assert name in OPS, f"{operator} is mapped to {name!r}, which is not in the op table"
    assert operator in _drawn_with_only(name), f"no generated program uses {operator}"


def test_exclusions_are_ops():
    assert set(NOT_DRAWN) <= set(OPS), set(NOT_DRAWN) - set(OPS)


@pytest.mark.parametrize("seed", range(40))
def test_generated_programs_are_valid_numpy(seed):
    """The generator only emits programs NumPy accepts on its probe arguments."""
    prog = make_program(seed)
    assert prog.lines, prog
    compile(prog.source, "<fuzz>", "exec")
