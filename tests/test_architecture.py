"""The folder tree is the architecture: layers import downward only, and no module-level cycles.

Layers, lowest first (``docs/architecture.md`` draws them):

0. ``core`` and the generic ``registry``: the simulated user's world model, no Gymnasium, no LLM;
1. ``llm``: backends, the batched client, prompts;
2. ``user``: voices, recognisers, the SAGE judge, the injection screen;
3. ``envs``: the environments (``envs/`` at the repository's top, installed as ``dialogue_gym.envs``);
4. ``agents``: reference policies, options, goals, planners (they read observations, never rewards);
5. ``rewards``: the reward wrappers (a look-ahead reward rolls out a reference policy, so rewards
   sit above agents in the import order although rewards flow to agents at run time);
6. ``evaluation``: episodes, metrics, episode logs;
7. ``study``: the reward study and its report;
8. ``integrations``: adapters to other engines;
9. the package's top: ``registration``, ``cli``, ``__init__``, ``_compat``.

Every import counts, including those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import dialogue_gym

PKG = Path(dialogue_gym.__file__).parent
ENVS = PKG.parent / "envs"

LAYERS = {
    "core": 0,
    "registry": 0,
    "ports": 0,
    "plugins": 0,
    "llm": 1,
    "user": 2,
    "envs": 3,
    "agents": 4,
    "rewards": 5,
    "evaluation": 6,
    "study": 7,
    "integrations": 8,
}
TOP = 9


def _modules() -> dict[str, Path]:
    found = {}
    for root, prefix in ((PKG, "dialogue_gym"), (ENVS, "dialogue_gym.envs")):
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


MODULES = _modules()


def layer(module: str) -> int:
    """The layer of a ``dialogue_gym`` module, by its first sub-package."""
    head = module.split(".")[1] if module.count(".") else ""
    return LAYERS.get(head, TOP)


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at module level)`` for each import of a dialogue_gym module."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            # ``from pkg import sub`` imports pkg.sub when sub is a module
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        for name in names:
            if name.startswith("dialogue_gym.") or name == "dialogue_gym":
                out.append((name, node.lineno, id(node) in top_level))
    return out


def test_the_tree_has_every_layer() -> None:
    heads = {m.split(".")[1] for m in MODULES if m.count(".")}
    assert set(LAYERS) - {"registry"} <= heads


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_downward(module: str) -> None:
    mine = layer(module)
    upward = [
        f"line {line}: {name} (layer {layer(name)})"
        for name, line, _ in _imports(module, MODULES[module])
        if name != "dialogue_gym" and layer(name) > mine
    ]
    assert not upward, f"{module} (layer {mine}) imports upward: {upward}"


def test_no_module_level_import_cycles() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for name, _, top in _imports(module, path):
            if top and name in MODULES and name != module:
                graph[module].add(name)
    seen: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                # a package importing its own submodules (re-exports) is not a cycle
                if not all(
                    b.startswith(a + ".") or a.startswith(b + ".")
                    for a, b in zip(cycle, cycle[1:], strict=False)
                ):
                    raise AssertionError("import cycle: " + " -> ".join(cycle))
            elif nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for module in sorted(MODULES):
        if module not in seen:
            visit(module)


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from dialogue_gym.study.run import main\n")
    found = _imports("dialogue_gym.core.bad", source)
    assert [(name, layer(name)) for name, _, _ in found] == [("dialogue_gym.study.run", 7)]
    assert layer("dialogue_gym.core.bad") < layer(found[0][0])


def test_the_architecture_page_shows_the_tested_recipes() -> None:
    """The recipes on docs/architecture.md are the ones tests/test_recipes.py and
    tests/test_voice.py run, word for word."""
    from test_recipes import RECIPE_BACKEND, RECIPE_ENV, RECIPE_REWARD
    from test_voice import RECIPE_VOICE

    page = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text()
    for recipe in (RECIPE_REWARD, RECIPE_ENV, RECIPE_BACKEND, RECIPE_VOICE):
        assert f"```python\n{recipe.strip()}\n```" in page
