"""Pictures in Jupyter: a Graph draws its kernels, host steps and buffers; an Explain report
adds the memory timeline; without matplotlib both fall back to their text."""

import sys

import numpy as np
import pytest

import tracejit as tj
from tracejit import examples
from tracejit.render import graph_figure, memory_figure

PNG = b"\x89PNG\r\n\x1a\n"


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


@pytest.fixture(scope="module")
def mlp():
    rng = np.random.default_rng(0)
    params = [(rng.standard_normal((6, 5)), rng.standard_normal(5)),
              (rng.standard_normal((5, 3)), rng.standard_normal(3))]
    x = rng.standard_normal((4, 6))
    f = tj.trace(examples.mlp)
    np.testing.assert_allclose(f(params, x), examples.mlp(params, x), rtol=1e-12)
    return f, (params, x)


def test_graph_png_is_a_picture(mlp):
    f, args = mlp
    png = f.graph(*args)._repr_png_()
    assert png.startswith(PNG) and len(png) > 5000


def test_graph_picture_boxes_kernels_and_host_steps_and_tags_buffers(mlp):
    f, args = mlp
    report = f.explain(*args)
    fig = graph_figure(report.graph, report.executable.steps, report.memory)
    texts = _texts(fig)
    # matmuls run on the host (BLAS); the bias + ReLU epilogues are kernels
    assert sum(t.startswith("host ") for t in texts) == 2
    assert sum(t.startswith("kernel ") and "elementwise" in t for t in texts) == 2
    assert any(t.startswith("a = matmul x params_0_0") for t in texts)
    assert any("returned" in t for t in texts)
    buffers = {" ".join(t.split()[:2]).rstrip(",") for t in texts if t.startswith("buffer ")}
    assert buffers == {f"buffer {b.index}" for b in report.memory.storage}
    # the epilogue writes over the matmul's output: marked on its box
    assert any(" over " in t for t in texts)


def test_big_kernels_are_one_box_listing_their_ops():
    def long_chain(x):
        for _ in range(10):
            x = np.sin(x) * 1.01 + 0.5
        return x

    f = tj.trace(long_chain)
    x = np.linspace(0, 1, 16)
    np.testing.assert_allclose(f(x), long_chain(x), rtol=1e-12)
    texts = _texts(graph_figure(f.graph(x)))
    assert any(t.startswith("30 ops: sin, multiply, add") for t in texts)


def test_memory_timeline_has_a_bar_per_stored_value_and_labelled_axes():
    f = tj.trace(examples.layers, fuse=False)
    x = np.linspace(-1, 1, 64)
    np.testing.assert_allclose(f(x), examples.layers(x), rtol=1e-12)
    report = f.explain(x)
    fig = memory_figure(report.memory, report.executable.steps)
    ax = fig.axes[0]
    assert len(ax.patches) == sum(len(b.values) for b in report.memory.storage)
    assert "step" in ax.get_xlabel() and ax.get_ylabel() == "buffer"
    assert all("B," in t.get_text() for t in ax.get_yticklabels())  # sizes with their unit
    assert "planned" in ax.get_title("left") and "naive" in ax.get_title("left")


def test_explain_html_holds_pictures_and_the_text(mlp):
    f, args = mlp
    html = f.explain(*args)._repr_html_()
    assert html.count('<img src="data:image/png;base64,') == 2
    assert "graph mlp(" in html and "-- memory:" in html


def test_without_matplotlib_jupyter_shows_text(mlp, monkeypatch):
    f, args = mlp
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    assert f.graph(*args)._repr_png_() is None
    html = f.explain(*args)._repr_html_()
    assert "<img" not in html and "graph mlp(" in html
