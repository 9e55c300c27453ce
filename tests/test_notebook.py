"""The tutorial notebook (``docs/tutorial.ipynb``) runs from top to bottom, and what it shows holds.

The notebook is committed *with* the outputs of an executed run: the docs site renders those
(figures, tables, the transcripts, the rendered frame) without running anything at build time.
This test executes it afresh in a kernel (nbclient) so it never rots, checks the claims its
prose makes on the fresh numbers, and checks that the committed outputs are a complete run
that still agrees with the code (re-run it with ``python tests/test_notebook.py --write``).

Needs nbclient, nbformat and ipykernel (and the notebook's own imports: matplotlib, pandas).
About three minutes on two CPU cores, so it is in the ``slow`` tier.

Example:
    Re-execute the notebook and store its outputs (after changing the package or the notebook)::

        .venv/bin/python tests/test_notebook.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "tutorial.ipynb"

#: A cell the test appends (in the same kernel) to read back what the notebook computed.
_PROBE = """
import json as _json
print("PROBE" + _json.dumps({
    "flat": {r: measure(results[r]) for r in REWARDS},
    "hierarchical": {r: measure(h_results[r]) for r in REWARDS},
    "frame": list(np.vstack(frames).shape),
}))
"""

#: How far the committed outputs may be from a fresh run (another CPU can round PPO's floats
#: differently) before they count as stale.
_TOLERANCE = {"success": 0.15, "final emotion": 5.0}


def execute(notebook: Any, timeout: int = 900) -> Any:
    """Run every cell of ``notebook`` (an nbformat node) in a fresh kernel, in place.

    The working directory is ``docs/``, as for a reader who opens the notebook there; timings
    are not recorded, so a re-run's outputs differ from the last only where results do.
    """
    from nbclient import NotebookClient

    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    return notebook


def _probe(notebook: Any) -> dict[str, Any]:
    """What the probe cell printed."""
    text = "".join(out.get("text", "") for out in notebook.cells[-1].outputs)
    return json.loads(text.split("PROBE", 1)[1])


def _committed_table(notebook: Any, marker: str) -> str:
    """The plain-text output of the committed code cell whose source contains ``marker``."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and marker in cell.source:
            for out in cell.outputs:
                data = out.get("data", {})
                if "text/plain" in data:
                    return data["text/plain"]
    raise AssertionError(f"no committed output for the cell with {marker!r}")


def _committed_numbers(table: str, row: str) -> dict[str, float]:
    """The success and final emotion of one row of a committed pandas table (its text form)."""
    header, *rows = table.splitlines()
    line = next(r for r in rows if r.startswith(row))
    values = [float(v) for v in line[len(row) :].split()]
    return {"success": values[0], "final emotion": values[1]}


@pytest.mark.slow
def test_tutorial_notebook_runs_and_shows_the_soothing_trap() -> None:
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    pytest.importorskip("pandas")
    committed = nbformat.read(NOTEBOOK, as_version=4)
    fresh = nbformat.read(NOTEBOOK, as_version=4)
    for cell in fresh.cells:  # run from a clean slate, as a reader would
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    fresh.cells.append(nbformat.v4.new_code_cell(_PROBE))
    execute(fresh)  # raises CellExecutionError, naming the cell, if any cell fails
    got = _probe(fresh)

    # What the prose says: the success bonus learns the task, final emotion soothes instead.
    sparse, soothing = got["flat"]["sparse"], got["flat"]["final_emotion"]
    assert sparse["success"] >= 0.5, sparse
    assert soothing["success"] == 0.0 and soothing["soothing index"] >= 0.9, soothing
    assert soothing["final emotion"] > 40.0, soothing  # emotion up, need unresolved
    assert sparse["return: final_emotion"] > soothing["return: final_emotion"]
    h_sparse, h_soothing = got["hierarchical"]["sparse"], got["hierarchical"]["final_emotion"]
    assert h_sparse["success"] >= 0.5 and h_soothing["success"] == 0.0, got["hierarchical"]
    assert got["frame"] == [960, 640, 3]  # two frames, one above the other

    # The committed run is whole, error-free and still what the code gives.
    code_cells = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells), "commit an executed run"
    assert not [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    shown = _committed_table(committed, "flat = pd.DataFrame")
    for reward in ("sparse", "final_emotion"):
        then = _committed_numbers(shown, f"PPO on {reward}")
        for key, tolerance in _TOLERANCE.items():
            assert abs(then[key] - got["flat"][reward][key]) <= tolerance, (
                f"docs/tutorial.ipynb shows {key} {then[key]} for PPO on {reward}, a fresh run "
                f"{got['flat'][reward][key]:.2f}: re-run `python tests/test_notebook.py --write`"
            )


def write() -> None:
    """Execute the notebook and store it with its outputs (the committed form)."""
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    execute(notebook)
    nbformat.write(notebook, NOTEBOOK)
    print(f"wrote {NOTEBOOK}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python {Path(__file__).name} --write")
    write()
