"""Every page's code runs: each docs page's python blocks, in order, in one namespace per page.

A page is found by globbing ``docs/``, so a new page is covered without editing this file. Its
```` ```python ```` blocks run top to bottom as one session (a later block sees an earlier one's
names), in a temporary working directory, with every registry put back afterwards (a page that
shows how to register a plugin must not leak it into other tests). ```` ```py ```` and
```` ```pycon ```` blocks are shown, not run (the env cards' doctests run as the env modules'
doctests).

A block opts out, or needs more than the CPU, with an HTML comment right above it (only blank
lines between), invisible on the rendered page:

- ``<!-- skip-test: reason -->``: the block is not run (say why: a host that does not exist
  here, a multi-GB model);
- ``<!-- test: llm -->`` (or ``slow``, ``server``, ``benchmark``, comma-separated): the page's
  test carries those marks, so the fast tier (plain ``pytest``) leaves it out and ``make test``
  runs it.

The env cards (``docs/envs/``) are committed as generated from the env classes' docstrings; a
test holds them equal to what the docstrings give now.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import pkgutil
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from repo_scripts import load_script

import dialogue_gym
from dialogue_gym._compat import MOVED
from dialogue_gym.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: The env cards, generated from the env classes' docstrings (their examples are the env
#: modules' doctests, and run as such).
CARDS = DOCS / "envs"
PAGES = sorted(
    p for p in DOCS.rglob("*.md") if p.parent != CARDS and "hooks" not in p.relative_to(DOCS).parts
)

#: Marks a block's ``<!-- test: ... -->`` comment may give its page.
PAGE_MARKS = frozenset({"slow", "llm", "server", "benchmark"})
_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
_DIRECTIVE = re.compile(r"<!--\s*(?P<kind>skip-test|test)\s*:\s*(?P<value>.*?)\s*-->", re.S)


@dataclass(frozen=True)
class Block:
    """One ```` ```python ```` block of a page."""

    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None  # the reason given by <!-- skip-test: reason -->
    marks: frozenset[str]


def python_blocks(markdown: str) -> list[Block]:
    """The page's python blocks, each with the directives of the comments right above it.

    >>> page = "<!-- test: llm -->\\n\\n```python\\nx = 1\\n```\\n\\n```py\\nshown\\n```\\n"
    >>> [(b.line, b.code, b.skip, sorted(b.marks)) for b in python_blocks(page)]
    [(3, 'x = 1\\n', None, ['llm'])]
    """
    blocks = []
    for fence in _FENCE.finditer(markdown):
        if fence.group("lang") != "python":
            continue
        before = markdown[: fence.start()].rstrip()
        skip, marks = None, set()
        # Comments stacked right above the fence (blank lines allowed) apply to it.
        while before.endswith("-->"):
            start = before.rfind("<!--")
            directive = _DIRECTIVE.fullmatch(before[start:])
            if start < 0 or directive is None:
                break
            if directive.group("kind") == "skip-test":
                skip = directive.group("value") or "no reason given"
            else:
                marks |= {m.strip() for m in directive.group("value").split(",") if m.strip()}
            before = before[:start].rstrip()
        line = markdown.count("\n", 0, fence.start()) + 1
        blocks.append(Block(line, fence.group("body"), skip, frozenset(marks)))
    return blocks


def _page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name


def _page_param(page: Path) -> Any:
    marks = set().union(*(b.marks for b in python_blocks(page.read_text(encoding="utf-8"))))
    unknown = marks - PAGE_MARKS
    if unknown:  # a typo would otherwise run an LLM page in the fast tier
        raise ValueError(
            f"{_page_id(page)}: unknown test mark(s) {sorted(unknown)}; valid: {sorted(PAGE_MARKS)}"
        )
    return pytest.param(
        page, marks=[getattr(pytest.mark, m) for m in sorted(marks)], id=_page_id(page)
    )


def _import_everything() -> None:
    """Import every module of the package, so that no registry is first filled mid-page."""
    for info in pkgutil.walk_packages(
        dialogue_gym.__path__, "dialogue_gym.", onerror=lambda n: None
    ):
        if info.name.rpartition(".")[2].startswith("__"):
            continue
        with contextlib.suppress(Exception):  # an optional dependency that is not installed
            importlib.import_module(info.name)


@contextlib.contextmanager
def registries_restored() -> Iterator[None]:
    """Put every registry back as it was: Gymnasium's env ids, each :class:`Registry`, and
    the package's module-level tables (upper-case dicts and sets such as ``MOVED``)."""
    _import_everything()
    seen: set[int] = set()
    saved: list[tuple[Any, Any]] = [(gym.registry, dict(gym.registry))]
    with contextlib.ExitStack() as stack:
        for name, module in list(sys.modules.items()):
            if not name.startswith("dialogue_gym") or module is None:
                continue
            for attr, value in list(vars(module).items()):
                if id(value) in seen:
                    continue
                if isinstance(value, Registry):
                    stack.enter_context(value.restoring())
                elif attr.isupper() and type(value) in (dict, set):
                    saved.append((value, value.copy()))
                else:
                    continue
                seen.add(id(value))
        try:
            yield
        finally:
            for table, before in saved:
                table.clear()
                table.update(before)


def _runnable(page: Path) -> list[Block]:
    return [b for b in python_blocks(page.read_text(encoding="utf-8")) if b.skip is None]


@pytest.mark.parametrize("page", [_page_param(p) for p in PAGES if _runnable(p)])
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's python blocks run, in order, as written (bar the opted-out ones)."""
    blocks = _runnable(page)
    monkeypatch.chdir(tmp_path)  # examples write logs and files where they stand
    # The page runs as an importable module, as a user's file would: a class it defines can be
    # named by "module:Class" (the recipes register classes this way).
    module = types.ModuleType("__docs_example__")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    with registries_restored():
        for block in blocks:
            where = f"{_page_id(page)}:{block.line}"
            try:
                exec(compile(block.code, where, "exec"), namespace)
            except Exception as exc:
                pytest.fail(f"{where}: the python block failed: {exc!r}\n{block.code}")


def _imported_modules(code: str) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.append(node.module)
            modules += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
    return modules


def _moved(module: str) -> str | None:
    if not module.startswith("dialogue_gym."):
        return None
    path = module.removeprefix("dialogue_gym.")
    for old in MOVED:
        if path == old or path.startswith(old + "."):
            return old
    return None


def test_pages_import_the_current_module_paths() -> None:
    """No example imports a module by its old (deprecated) path, skipped blocks included."""
    stale = []
    for page in PAGES:
        for block in python_blocks(page.read_text(encoding="utf-8")):
            for module in _imported_modules(block.code):
                old = _moved(module)
                if old is not None:
                    stale.append(
                        f"{_page_id(page)}:{block.line}: {module} (dialogue_gym.{old} "
                        f"moved to dialogue_gym.{MOVED[old]})"
                    )
    assert not stale, f"examples import old module paths: {stale}"


def test_moved_paths_are_recognised() -> None:
    assert _moved("dialogue_gym.hierarchy") == "hierarchy"
    assert _moved("dialogue_gym.backends.llama_cpp") == "backends"
    assert _moved("dialogue_gym.agents.options") is None
    assert "dialogue_gym.agents.options.Options" in _imported_modules(
        "from dialogue_gym.agents.options import Options"
    )


#: Fences that look like Python but would not run: write ```python (with a directive if needed).
_NOT_RUN = {"py", "py3", "python3", "pycon", "ipython"}


def test_python_is_fenced_as_python() -> None:
    """A page shows Python in ```python fences only, so each example runs or says why not.

    (The env cards are not among the pages: their ``pycon`` blocks are doctests.)
    """
    wrong = [
        f"{_page_id(page)}:{page.read_text(encoding='utf-8').count(chr(10), 0, m.start()) + 1}"
        for page in PAGES
        for m in _FENCE.finditer(page.read_text(encoding="utf-8"))
        if m.group("lang") in _NOT_RUN
    ]
    assert not wrong, f"fence these as ```python (opt out with <!-- skip-test: why -->): {wrong}"


def test_blocks_are_found_with_their_directives() -> None:
    page = (
        "Text.\n\n<!-- skip-test: needs a GPU host -->\n```python\nboom()\n```\n\n"
        "<!-- test: llm, slow -->\n<!-- an ordinary comment -->\n```python\nx = 1\n```\n\n"
        "<!-- test: server -->\nprose in between\n```python\ny = 2\n```\n"
    )
    blocks = python_blocks(page)
    assert [b.skip for b in blocks] == ["needs a GPU host", None, None]
    # An ordinary comment between the directive and the fence stops the search; prose too.
    assert [b.marks for b in blocks] == [frozenset(), frozenset(), frozenset()]
    blocks = python_blocks("<!-- test: llm, slow -->\n\n```python\nx = 1\n```\n")
    assert blocks[0].marks == {"llm", "slow"}


def test_an_unknown_mark_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("<!-- test: lmm -->\n```python\nx = 1\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown test mark.*lmm.*valid"):
        _page_param(page)


def test_a_registration_on_a_page_does_not_leak() -> None:
    from dialogue_gym.rewards import EmotionDeltaReward, register_reward
    from dialogue_gym.rewards.registry import REWARDS

    before = REWARDS.names()
    with registries_restored():
        register_reward("docs_leak_probe", lambda env: EmotionDeltaReward(env))
        gym.register("DocsLeakProbe-v0", entry_point="dialogue_gym.envs.empathy:EmpathyDialogueEnv")
        assert "docs_leak_probe" in REWARDS.names()
    assert REWARDS.names() == before
    assert "DocsLeakProbe-v0" not in gym.registry


# --------------------------------------------------------------------------------------------
# env cards: committed, and equal to what the docstrings generate
# --------------------------------------------------------------------------------------------


def _env_cards() -> Any:
    module = load_script(DOCS / "hooks" / "env_cards.py", "env_cards")
    return module


def test_env_cards_are_committed_as_generated() -> None:
    cards = _env_cards()
    assert set(cards.generate_pages(DOCS)) >= {f"envs/{i}.md" for i in dialogue_gym.ENV_IDS}
    stale = sorted(cards.stale_pages(DOCS))
    assert not stale, (
        f"env cards out of date with the env docstrings: {stale}; "
        "run `python docs/hooks/env_cards.py --write` and commit the result"
    )


def test_no_citation_of_a_document_outside_the_repository() -> None:
    """Docstrings and pages cite pages of docs/, not the design notes they were written from."""
    cited = re.compile("DESIGN" + r"(?:\s*§|'s\b)")
    found = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
        for folder in ("dialogue_gym", "envs", "docs", "tests", "benchmarks", "tools")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in {".py", ".md", ".txt", ".yaml", ".yml"}
        for text in [path.read_text(encoding="utf-8", errors="replace")]
        for m in cited.finditer(text)
    ]
    assert not found, f"citations of DESIGN (not in the repository): {found}"


# --------------------------------------------------------------------------------------------
# test tiers (documented in docs/quickstart.md)
# --------------------------------------------------------------------------------------------


def test_the_tiers_are_wired_as_documented() -> None:
    """Plain `pytest` is the fast tier; `make test` (CI) clears the selection and runs all."""
    # Read from the file: some installed distributions (verl) ship a top-level `tests`
    # package that would shadow this folder in `import tests.conftest`.
    conftest = load_script(ROOT / "tests" / "conftest.py", "_conftest")
    FAST_TIER = conftest.FAST_TIER  # noqa: N806

    addopts = re.search(r"^addopts\s*=\s*\"(.*)\"$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert addopts and f"-m '{FAST_TIER}'" in addopts.group(1)
    assert set(re.findall(r"not (\w+)", FAST_TIER)) == PAGE_MARKS
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^test: .*?\n((?:\t.*\n)+)", make, re.M)
    assert recipe and '/pytest -m ""' in recipe.group(1), "make test must run every tier"
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_test_a_page_names_exists() -> None:
    """docs/reliability.md (and any page) names tests as `tests/test_x.py::test_name`: each
    must be a test function of that file, so a promise never points at a deleted test."""
    named = set()
    for page in DOCS.rglob("*.md"):
        named |= set(re.findall(r"(tests/test_\w+\.py)::(test_\w+)", page.read_text("utf-8")))
    assert len(named) > 30  # the reliability page alone names more
    missing = []
    for file, name in sorted(named):
        source = (ROOT / file).read_text(encoding="utf-8") if (ROOT / file).exists() else ""
        if not re.search(rf"^(?:async )?def {name}\(", source, re.M):
            missing.append(f"{file}::{name}")
    assert not missing, f"pages name tests that do not exist: {missing}"


#: Folders whose every module the architecture page's tree names (the folders it describes
#: file by file; the others it describes as a whole, e.g. "one module per reward wrapper").
MAPPED_FOLDERS = ("study", "integrations", "llm/backends", "evaluation/audit")


@pytest.mark.parametrize("folder", MAPPED_FOLDERS)
def test_the_architecture_map_names_every_module_of_the_folders_it_details(folder: str) -> None:
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    tree = page.split("## Where each concept lives", 1)[1].split("\n## ", 1)[0]
    package = ROOT / "dialogue_gym" / folder
    modules = [p for p in package.iterdir() if p.suffix == ".py" and not p.name.startswith("_")]
    modules += [p for p in package.iterdir() if (p / "__init__.py").is_file()]
    missing = [
        p.name for p in modules if not re.search(rf"(?<![\w.]){re.escape(p.stem)}(\.py|/|\b)", tree)
    ]
    assert not missing, f"docs/architecture.md's tree does not name {folder}/: {missing}"
