"""The tutorial notebook (``docs/tutorial.ipynb``) runs from top to bottom, and what it shows holds.

The notebook is committed *with* the outputs of an executed run: the docs site renders those
(figures, tables, the transcripts, the rendered frame) without running anything at build time.
This test executes it afresh in a kernel (nbclient) so it never rots, checks the claims its
prose makes on the fresh numbers, and checks that the committed outputs are a complete run
that still agrees with the code (re-run it with ``python tests/test_notebook.py --write``).

What is compared with the committed outputs is only what is bit-exact by construction: the
hand-written policies' table (seeded template-voice episodes, no torch). Trained PPO is not
bit-identical across machines (another CPU or torch thread count rounds its floats differently,
and one seed's success moved from 0.78 to 0.60 between two machines of the same kind), so the
trained agents' numbers are checked against the notebook's *claims*, on the fresh run and on the
committed one, never against each other.

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
    "hand_written": repr(pd.DataFrame(table).T.round(2)),
}))
"""

#: "The bonus learns": the least success counted as learning. Random play resolves 3% of the test
#: users and comfort alone 0%; one seed of PPO on the bonus resolved 78% on the machine that wrote
#: the notebook and 60% on another, so the bar sits well below both and far above chance.
_LEARNED = 0.3
#: "Soothes, never resolves": at most this success (3 of the 72 test users).
_STRAY = 3 / 72


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
    """Success, final emotion and soothing index of one row of a committed pandas table (its
    text form, whose first block holds those columns in that order)."""
    header, *rows = table.splitlines()
    line = next(r for r in rows if r.startswith(row))
    values = [float(v) for v in line[len(row) :].split()]
    return {"success": values[0], "final emotion": values[1], "soothing index": values[2]}


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

    # What the prose says, on the fresh run: the success bonus learns the task, final emotion
    # soothes instead, for the flat and the hierarchical learner.
    _check_claims(got["flat"], got["hierarchical"], "a fresh run")
    assert got["frame"] == [960, 640, 3]  # two frames, one above the other

    # The committed run is whole and error-free, its hand-written policies' table is what the code
    # gives (bit-exact on any machine), and its trained agents show what the prose says.
    code_cells = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells), "commit an executed run"
    assert not [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    assert _committed_table(committed, "table = {") == got["hand_written"], (
        "docs/tutorial.ipynb's table of hand-written policies differs from a fresh run's: "
        "re-run `python tests/test_notebook.py --write`"
    )
    shown = _committed_table(committed, "pd.concat([flat, hierarchical])")
    flat = {r: _committed_numbers(shown, f"PPO on {r}") for r in ("sparse", "final_emotion")}
    hier = {r: _committed_numbers(shown, f"manager on {r}") for r in ("sparse", "final_emotion")}
    _check_claims(flat, hier, "docs/tutorial.ipynb's committed run")


def _check_claims(
    flat: dict[str, dict[str, float]], hierarchical: dict[str, dict[str, float]], where: str
) -> None:
    """The notebook's claims about trained agents, which hold on any machine."""
    sparse, soothing = flat["sparse"], flat["final_emotion"]
    assert sparse["success"] >= _LEARNED, f"{where}: PPO on sparse did not learn: {sparse}"
    # "Never resolves": comfort alone cannot meet a need, so a soothing policy's success is 0;
    # a policy that strays from pure comfort on another machine may resolve a user or two.
    assert soothing["success"] <= _STRAY, f"{where}: PPO on final_emotion resolves: {soothing}"
    assert soothing["soothing index"] >= 0.9, f"{where}: no soothing: {soothing}"
    assert soothing["final emotion"] > 40.0, f"{where}: emotion not raised: {soothing}"
    if "return: final_emotion" in sparse:  # the committed text table shows two columns only
        assert sparse["return: final_emotion"] > soothing["return: final_emotion"], where
    h_sparse, h_soothing = hierarchical["sparse"], hierarchical["final_emotion"]
    assert h_sparse["success"] >= _LEARNED, f"{where}: the manager on sparse: {h_sparse}"
    assert h_soothing["success"] <= _STRAY, f"{where}: the manager on final_emotion: {h_soothing}"


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
