"""The notebooks in notebooks/ run clean, at tiny sizes (TRACEJIT_NOTEBOOK_SMALL=1), and are
saved without outputs. They run one after another in one Jupyter kernel (reset between
notebooks), so Python, Numba and the kernels they share are loaded and compiled once."""

import importlib.util
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# a cell tagged so shows a fallback on purpose; anywhere else one is a failure
EXPECTED_FALLBACK = "expect-fallback"


def test_there_are_notebooks():
    names = [p.stem for p in NOTEBOOKS]
    assert names[:3] == ["01_quickstart", "02_fusion_and_memory", "03_training"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, \
                f"{path.name}: clear the outputs before saving"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Every notebook executed in order in one kernel: path -> the notebook with its outputs."""
    saved = {k: os.environ.get(k) for k in ("TRACEJIT_NOTEBOOK_SMALL", "MPLBACKEND",
                                            "PYTHONPATH", "NUMBA_ENABLE_CUDASIM")}
    os.environ["TRACEJIT_NOTEBOOK_SMALL"] = "1"
    if os.environ.get("TRACEJIT_CUDA_DEVICE") != "1":  # as tests/test_cuda.py: the simulator
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # plots as outputs
    # the kernel imports the tracejit of this tree, as the tests do
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), saved["PYTHONPATH"]) if p)
    try:
        return _run_all(NOTEBOOKS)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_all(paths):
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(paths[0].parent))
    done = {}
    try:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            needs = nb.metadata.get("tracejit", {}).get("requires")
            if needs and _missing(needs):
                done[path] = f"{needs} is not installed"
                continue
            nb.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))  # a fresh namespace
            client = nbclient.NotebookClient(nb, km=km, timeout=600,
                                             resources={"metadata": {"path": str(path.parent)}})
            try:
                client.execute(reset_kc=False, cleanup_kc=False)
            except nbclient.exceptions.CellExecutionError as e:
                done[path] = e
                continue
            done[path] = nb
    finally:
        km.shutdown_kernel(now=True)
    return done


def _missing(module):
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:
        return True


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_clean(executed, path):
    nb = executed[path]
    if isinstance(nb, str):
        pytest.skip(nb)
    if isinstance(nb, Exception):
        pytest.fail(f"{path.name} failed:\n{nb}")
    images = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            assert out.output_type != "error", f"{path.name}: {out.get('ename')}"
            text = out.get("text", "")
            if EXPECTED_FALLBACK not in cell.metadata.get("tags", []):
                assert "FallbackWarning" not in text, f"{path.name}: unexpected fallback\n{text}"
            images += "image/png" in out.get("data", {}) or \
                "data:image/png" in out.get("data", {}).get("text/html", "")
    assert images >= 1, f"{path.name} drew no picture"
