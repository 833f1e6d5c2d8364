"""`python -m tracejit`: help, --version, demo, explain, bench's plot, progress on long steps."""

import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import tracejit as tj
from tracejit import cli, examples


def _line_of(fn, text):
    """The file:line in tracejit/examples.py of the source line of `fn` holding `text`."""
    import inspect

    lines, first = inspect.getsourcelines(fn)
    return f"examples.py:{first + next(i for i, s in enumerate(lines) if text in s)}"


def test_no_arguments_prints_help(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m tracejit")
    for command in ("demo", "bench", "explain"):
        assert command in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"tracejit {tj.__version__}"


def test_demo_as_a_module_names_the_demos_own_lines():
    """Run as `python -m`: every graph line names examples.py, none `<frozen runpy>`."""
    env = {**os.environ, "PYTHONWARNINGS": "error::tracejit.FallbackWarning"}
    done = subprocess.run([sys.executable, "-m", "tracejit", "demo", "--size", "1000"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    graph = done.stdout.split("graph chain(", 1)[1].split("}", 1)[0]
    ops = [line for line in graph.splitlines() if " = " in line]
    assert len(ops) == 13
    assert all(line.endswith(_line_of(examples.chain, "return")) for line in ops), graph
    assert "runpy" not in done.stdout
    assert "tracejit fused" in done.stdout and "x numpy" in done.stdout


def test_explain_prints_graph_kernels_and_memory_plan(capsys):
    assert cli.main(["explain", "tracejit.examples:chain", "--args", "f64[16] f64[16] f64[16]"]) \
        == 0
    out = capsys.readouterr().out
    assert out.startswith("graph chain(a: f64[16], b: f64[16], c: f64[16]) {")
    assert _line_of(examples.chain, "return") in out
    assert "1 kernel(s):" in out and "def kernel(" in out
    assert "-- memory:" in out


def test_explain_a_function_from_the_current_directory(capsys, tmp_path, monkeypatch):
    (tmp_path / "mymodel.py").write_text("import numpy as np\n\n\n"
                                         "def step(x, k):\n"
                                         "    return np.sqrt(np.abs(x)) * k\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert cli.main(["explain", "mymodel:step", "--no-fuse", "--args", "f32[8,4] 0.5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("graph step(x: f32[8,4], k: float) {")
    assert "mymodel.py:5" in out
    assert "3 kernel(s):" in out  # --no-fuse: one kernel per op


@pytest.mark.parametrize("argv, message", [
    (["explain", "tracejit.examples"], "expected MODULE:FUNCTION"),
    (["explain", "tracejit.examples:nothing_here"], "has no 'nothing_here'"),
    (["explain", "no_such_module_xyz:f"], "cannot import 'no_such_module_xyz'"),
    (["explain", "tracejit.examples:chain", "--args", "q8[3]"], "unknown dtype 'q8'"),
    (["explain", "tracejit.examples:chain", "--args", "f32(3)"], "cannot read 'f32(3)'"),
])
def test_bad_command_lines_exit_2_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_explain_reports_the_functions_own_error_without_a_traceback(capsys):
    with pytest.raises(SystemExit) as e:  # (4,) and (3,) do not broadcast: NumPy's ValueError
        cli.main(["explain", "tracejit.examples:chain", "--args", "f64[4] f64[3] f64[4]"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "ShapeError" in err and "examples.py" in err


def test_arg_specs():
    rng = np.random.default_rng(0)
    x = cli.parse_arg_spec("f32[4, 3]", rng)
    assert x.dtype == np.float32 and x.shape == (4, 3)
    assert cli.parse_arg_spec("f64[]", rng).shape == ()
    i = cli.parse_arg_spec("i64[5]", rng)
    assert i.dtype == np.int64 and i.shape == (5,) and ((0 <= i) & (i < 10)).all()
    assert cli.parse_arg_spec("bool[2,2]", rng).dtype == np.bool_
    assert cli.parse_arg_spec("3", rng) == 3 and type(cli.parse_arg_spec("3", rng)) is int
    assert cli.parse_arg_spec("0.5", rng) == 0.5


def test_progress_speaks_only_for_long_steps():
    quiet, loud = io.StringIO(), io.StringIO()
    with cli.progress("fast", after=0.5, stream=quiet):
        pass
    with cli.progress("compiling f", after=0.05, stream=loud):
        time.sleep(0.3)
    assert quiet.getvalue() == ""
    text = loud.getvalue()
    assert text.startswith("compiling f ...") and text.rstrip().endswith(" s")


def test_bench_without_the_source_tree_says_where_benchmarks_live(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "bench_dir", lambda: tmp_path)
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "--quick"])
    assert e.value.code == 2
    assert "ship with the source tree" in capsys.readouterr().err


def test_bench_plot_is_a_png_with_every_workload(tmp_path):
    """The plot of the bench scripts' results (their main() return values, merged)."""
    from tracejit.render import bench_figure

    row = lambda name, numpy, fused, unfused: {  # noqa: E731
        "workload": name, "notes": {},
        "seconds": {"numpy": numpy, "tracejit fused": fused, "tracejit unfused": unfused}}
    results = {"elementwise": [row("chain", 4e-2, 1e-2, 2e-2), row("memory-bound", 1e-2, 5e-3,
                                                                  None)],
               "reductions": [row("softmax", 8e-3, 2e-3, 4e-3)],
               "overhead": [{"workload": "overhead (n=100)", "notes": {},
                             "seconds": {"numpy": 1e-6, "tracejit fused": 3e-6}}]}
    fig = bench_figure(results, title="test")
    speedups, overhead = fig.axes
    assert [t.get_text() for t in speedups.get_yticklabels()] == ["chain", "memory-bound",
                                                                  "softmax"]
    assert "speedup over NumPy eager" in speedups.get_xlabel()
    assert "µs" in overhead.get_xlabel()
    bars = {round(p.get_width(), 6) for p in speedups.patches}
    assert {4.0, 2.0} <= bars  # chain: fused 4x, unfused 2x NumPy
    path = tmp_path / "bench.png"
    fig.savefig(path)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_explain_a_function_decorated_in_its_module(capsys, tmp_path, monkeypatch):
    (tmp_path / "traced_model.py").write_text("import numpy as np\nimport tracejit as tj\n\n\n"
                                              "@tj.trace(static_argnames='n')\n"
                                              "def power(x, n):\n"
                                              "    return np.sqrt(np.abs(x)) ** n\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert cli.main(["explain", "traced_model:power", "--no-fuse", "--args", "f64[6] 3"]) == 0
    out = capsys.readouterr().out
    assert "traced_model.py:7" in out and "3 kernel(s):" in out  # one per op: --no-fuse
