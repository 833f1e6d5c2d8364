"""Differential fuzzing: random programs from the op table, compiled vs interpreted vs NumPy.

The default budget keeps CI fast. Run it long with, for example:

    TRACEJIT_FUZZ_EXAMPLES=20000 python -m pytest tests/fuzz -q -s

Each example is one program structure (from a pool of seeds that shares compiled kernels) run on
fresh sizes, values and memory layouts. A failure prints the program's source and arguments.
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
from programs import fuzzable_ops, make_instance, make_program  # noqa: E402

from tracejit.ops import ELEMENTWISE, OPS  # noqa: E402

EXAMPLES = int(os.environ.get("TRACEJIT_FUZZ_EXAMPLES", "120"))
LONG = "TRACEJIT_FUZZ_EXAMPLES" in os.environ
# About ten instances per structure: most examples reuse compiled kernels.
POOL = int(os.environ.get("TRACEJIT_FUZZ_POOL", max(24, min(2500, EXAMPLES // 8))))
# TRACEJIT_FUZZ_KEEP_GOING=1 records every mismatch (printed as found) and fails at the end,
# instead of stopping at the first one: for surveying many bugs in one long run.
KEEP_GOING = os.environ.get("TRACEJIT_FUZZ_KEEP_GOING", "") not in ("", "0")
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
    args = make_instance(prog, np.random.default_rng(instance))
    if LONG and sum(STATS.values()) % 1000 == 999:
        print(f"fuzz progress: {STATS}", file=sys.stderr, flush=True)
    try:
        check(prog, args, STATS)
    except Exception as e:
        report = f"{prog!r}\nargs = {args!r}\n{type(e).__name__}: {e}"
        if not KEEP_GOING:
            raise AssertionError(report) from e
        STATS["mismatches"] = STATS.get("mismatches", 0) + 1
        FAILURES.append(report)
        print(f"fuzz mismatch:\n{report}\n", file=sys.stderr, flush=True)


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


@pytest.mark.parametrize("seed", range(40))
def test_generated_programs_are_valid_numpy(seed):
    """The generator only emits programs NumPy accepts on its probe arguments."""
    prog = make_program(seed)
    assert prog.lines, prog
    compile(prog.source, "<fuzz>", "exec")
