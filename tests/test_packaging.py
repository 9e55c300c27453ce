"""Packaging, docs and entry points: what a user gets from a wheel, the docs site and the CLI."""

from __future__ import annotations

import configparser
import doctest
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from repo_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGE = "dialogue_gym"
#: Data files that must travel with the package (everything else in the package dirs is code).
DATA_SUFFIXES = {".yaml", ".yml", ".txt", ".json", ".typed"}


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; on failure, fail the test with its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _package_dirs() -> dict[str, Path]:
    """Each package named in setup.cfg -> its source folder (honouring ``package_dir``)."""
    cfg = _setup_cfg()
    mapping = {}
    for line in cfg["options"].get("package_dir", "").strip().splitlines():
        name, _, folder = line.partition("=")
        mapping[name.strip()] = ROOT / folder.strip()
    packages = cfg["options"]["packages"].split()
    return {name: mapping.get(name, ROOT.joinpath(*name.split("."))) for name in packages}


def _data_files(folder: Path) -> set[str]:
    """Data files under ``folder`` (relative posix paths), not descending into subpackages."""
    found = set()
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in DATA_SUFFIXES and "__pycache__" not in path.parts:
            found.add(path.relative_to(folder).as_posix())
    return found


def test_setup_cfg_lists_every_subpackage() -> None:
    """``packages`` is an explicit list: a new subpackage must be added or the wheel lacks it."""
    listed = set(_package_dirs())
    on_disk = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / PACKAGE).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    missing = sorted(on_disk - listed)
    assert not missing, f"add to [options] packages in setup.cfg: {missing}"
    for name, folder in _package_dirs().items():
        assert (folder / "__init__.py").is_file(), f"{name} ({folder}) has no __init__.py"


def _build_wheel(tmp_path: Path) -> Path:
    """Build a wheel from a copy of the sources (keeps build/ and *.egg-info out of the repo)."""
    src = tmp_path / "src"
    src.mkdir()
    for path in ROOT.iterdir():
        if path.is_file():
            shutil.copy2(path, src / path.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in {p.relative_to(ROOT).parts[0] for p in _package_dirs().values()}:
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(dist), str(src)],
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("dialogue_gym-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_in_fresh_venv_finds_its_data(tmp_path: Path) -> None:
    """A wheel installed in a fresh venv carries envs/ (as dialogue_gym.envs) and all data."""
    wheel = _build_wheel(tmp_path)

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    for name, folder in _package_dirs().items():
        prefix = name.replace(".", "/")
        for rel in _data_files(folder):
            sub = rel.split("/")[0]
            if (folder / sub / "__init__.py").is_file():
                continue  # belongs to a subpackage, checked there
            assert f"{prefix}/{rel}" in names, (
                f"{folder.relative_to(ROOT)}/{rel} is not in the wheel: "
                f"add a pattern for it to [options.package_data] {name} in setup.cfg"
            )
    for split in ("train", "test"):
        assert any(
            n.startswith(f"dialogue_gym/envs/scenarios/{split}/") and n.endswith(".yaml")
            for n in names
        ), f"no {split} scenario cards under dialogue_gym/envs/scenarios/ in the wheel"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)])
    _run([str(py), "-m", "pip", "install", "-q", "gymnasium", "numpy", "pyyaml"])

    probe = """
import json
import dialogue_gym
from dialogue_gym.envs import data_dir as envs_dir
from dialogue_gym.core.scenario import load_scenarios
print(json.dumps({
    "package": dialogue_gym.__file__,
    "envs": str(envs_dir()),
    "train": len(load_scenarios("train")),
    "test": len(load_scenarios("test")),
}))
"""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    proc = _run([str(py), "-I", "-c", probe], cwd=outside, env=env)
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    venv_root = venv.resolve()
    assert Path(found["package"]).resolve().is_relative_to(venv_root), found
    assert Path(found["envs"]).resolve().is_relative_to(venv_root), found
    assert found["train"] > 0, found
    assert found["test"] > 0, found


def _load_hook():
    module = load_script(ROOT / "docs/hooks/env_cards.py", "env_cards")
    return module


def test_env_card_hook_doctests() -> None:
    results = doctest.testmod(_load_hook())
    assert results.attempted > 0
    assert results.failed == 0


def test_env_card_hook_reads_both_section_styles() -> None:
    hook = _load_hook()
    doc = """Talk.

    ## Observation Space
    A `Dict`.

    ```python
    # not a heading
    ```

    Episode End:
        The user leaves.

    Args:
        voice (str): who speaks.
    """
    summary, sections = hook.split_sections(doc)
    assert summary == "Talk."
    assert [title for title, _ in sections] == ["Observation Space", "Episode End", "Arguments"]
    assert "# not a heading" in sections[0][1]
    assert sections[1][1] == "The user leaves."
    assert sections[2][1] == "- `voice` (str): who speaks."


@pytest.mark.slow
def test_docs_build_strict(tmp_path: Path) -> None:
    """The site builds with --strict, and the env card is generated from the env's docstring."""
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    _run(
        # No -q: mkdocs then stops counting warnings, and --strict passes whatever happens.
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(site)],
        cwd=ROOT,
        env=env,
    )
    card = (site / "envs" / "EmpathyDialogue-v0" / "index.html").read_text(encoding="utf-8")
    assert "env-card:" not in card, "the env-card marker was not replaced"
    for section in ("Observation Space", "Action Space", "Rewards", "Episode End"):
        assert re.search(rf"<h2[^>]*>{section}", card), f"no '{section}' section on the card"
    assert "dialogue_gym.envs.empathy:EmpathyDialogueEnv" in card


def _python_blocks(markdown: str) -> list[str]:
    """The ```python fenced blocks of a markdown file (```py blocks are shown, not run)."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


@pytest.mark.slow
@pytest.mark.parametrize("page", ["README.md"])  # docs/: tests/test_docs.py
def test_docs_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The python examples of the README run, in order, as written."""
    import gymnasium as gym

    import dialogue_gym  # noqa: F401

    assert "EmpathyDialogue-v0" in gym.registry
    blocks = _python_blocks((ROOT / page).read_text(encoding="utf-8"))
    assert blocks, f"no python examples in {page}"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs_example__"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{page}[python block {i}]", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"{page}, python block {i} failed: {exc!r}\n{block}")


def test_console_script_help() -> None:
    script = BIN / "dialogue-gym"
    assert script.exists(), f"{script} missing: install the package (pip install -e .)"
    proc = _run([str(script), "--help"], cwd=ROOT)
    assert "usage" in proc.stdout.lower()
