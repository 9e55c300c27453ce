"""mkdocs hook: environment cards generated from the registered environments' docstrings.

Farama style (Gymnasium, Minigrid): each environment class opens with a docstring in sections —
Description, Action Space, Observation Space, Rewards, Starting State, Episode End, Arguments,
Registered Configurations — and its docs page is generated from it, so the page cannot drift
from the code.

How it works:

* ``on_config`` imports ``dialogue_gym`` (which registers its environments), collects every
  registered id whose entry point lives in ``dialogue_gym``, and adds a page for each id that the
  ``Environments`` nav section does not list yet;
* ``on_files`` generates ``envs/<id>.md`` for ids without an authored page, so adding an
  environment (one module plus one ``register`` call) adds its page;
* ``on_page_markdown`` replaces each ``<!-- env-card: <id> -->`` marker (with the card after it,
  up to ``<!-- /env-card -->``, if the page holds one) with a fresh card: the class docstring's
  sections, then a table of the spec (id, entry point, max_episode_steps, kwargs).

The cards are also committed, so that they can be read in the repository:
``python docs/hooks/env_cards.py --write`` writes each card into ``docs/envs/<id>.md`` between
its two markers (creating the page of a new id), and ``--check`` lists the pages whose card is
out of date with the docstrings (``tests/test_docs.py`` fails on them). The site is built from
the docstrings either way.

Docstring sections may be written as markdown headings (``## Observation Space``) or as
Google-style lines (``Observation Space:`` with the body indented below). Problems (an unknown id,
a failed import) are logged as warnings, so ``mkdocs build --strict`` fails on them.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.env_cards")

PACKAGE = "dialogue_gym"
NAV_SECTION = "Environments"
PAGE_DIR = "envs"
MARKER = re.compile(r"<!--\s*env-card:\s*(?P<id>[^\s>]+)\s*-->")
END_MARKER = "<!-- /env-card -->"
#: A card's region: its marker, then (on a committed page) the card up to the end marker.
REGION = re.compile(
    MARKER.pattern + r"(?:(?:(?!<!--\s*env-card:).)*?<!--\s*/env-card\s*-->)?", re.DOTALL
)

#: The card's sections, in Farama's order.
SECTIONS: tuple[str, ...] = (
    "Description",
    "Action Space",
    "Observation Space",
    "Rewards",
    "Starting State",
    "Episode End",
    "Arguments",
    "Registered Configurations",
)
#: Google-style section names recognised besides ``SECTIONS`` (alias -> rendered title).
GOOGLE_SECTIONS: dict[str, str] = {
    **{name.lower(): name for name in SECTIONS},
    "args": "Arguments",
    "attributes": "Attributes",
    "example": "Example",
    "examples": "Examples",
    "note": "Note",
    "notes": "Notes",
    "references": "References",
    "see also": "See Also",
    "version history": "Version History",
}
_GOOGLE_HEADING = re.compile(r"^(?P<name>[A-Za-z][A-Za-z ]*[A-Za-z]):\s*$")
_MD_HEADING = re.compile(r"^#{1,2}\s+(?P<name>\S.*?)\s*#*\s*$")

_env_ids: list[str] = []


# --------------------------------------------------------------------------------------------
# docstring -> markdown
# --------------------------------------------------------------------------------------------


def split_sections(doc: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a docstring into its summary and its ``(title, body)`` sections.

    A section starts at a ``# Title``/``## Title`` line, or at a ``Title:`` line with no
    indentation whose title is a known section name (``SECTIONS`` or a Google-style name such as
    ``Args``); a Google-style body is dedented. Fenced code blocks are never split.

    >>> summary, sections = split_sections('''Talk to a user.
    ...
    ... ## Action Space
    ... ``Discrete(8)``.
    ...
    ... Rewards:
    ...     None by default.
    ... ''')
    >>> summary
    'Talk to a user.'
    >>> sections
    [('Action Space', '``Discrete(8)``.'), ('Rewards', 'None by default.')]
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    sections: list[tuple[str, list[str], bool]] = []  # (title, lines, google-style)
    in_fence = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
        if not in_fence:
            md = _MD_HEADING.match(line)
            google = _GOOGLE_HEADING.match(line)
            if md:
                sections.append((md.group("name"), [], False))
                continue
            if google and google.group("name").lower() in GOOGLE_SECTIONS:
                sections.append((GOOGLE_SECTIONS[google.group("name").lower()], [], True))
                continue
        (sections[-1][1] if sections else summary).append(line)
    out = []
    for title, body, google in sections:
        text = textwrap.dedent("\n".join(body)) if google else "\n".join(body)
        if google and title in _ITEM_SECTIONS:
            text = google_items(text)
        out.append((title, text.strip("\n").rstrip()))
    return "\n".join(summary).strip(), out


_ITEM_SECTIONS = frozenset({"Arguments", "Attributes"})
_ITEM = re.compile(r"^(?P<name>\*{0,2}\w+)\s*(?P<type>\([^)]*\))?\s*:\s*(?P<text>.*)$")


def google_items(text: str) -> str:
    """Turn a Google-style ``name (type): text`` block into a markdown list.

    Continuation lines (indented) join their item; anything else is kept as it is.

    >>> print(google_items("voice (str): who speaks.\\n    Defaults to llm.\\nseed: the seed."))
    - `voice` (str): who speaks. Defaults to llm.
    - `seed`: the seed.
    """
    out: list[str] = []
    for line in text.splitlines():
        item = _ITEM.match(line)
        if item:
            kind = f" {item.group('type')}" if item.group("type") else ""
            out.append(f"- `{item.group('name')}`{kind}: {item.group('text')}".rstrip())
        elif line[:1].isspace() and line.strip() and out and out[-1].startswith("- "):
            out[-1] = f"{out[-1]} {line.strip()}"
        else:
            out.append(line)
    return "\n".join(out)


def fence_doctests(text: str) -> str:
    """Wrap runs of doctest lines (``>>>`` prompts and their output) in ``pycon`` fences.

    >>> fence_doctests(">>> 1 + 1\\n2\\n\\nDone.").splitlines()
    ['```pycon', '>>> 1 + 1', '2', '```', '', 'Done.']
    """
    out: list[str] = []
    in_doctest = False
    in_fence = False
    for line in text.splitlines():
        stripped = line.strip()
        if not in_doctest and stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
        if in_fence:
            out.append(line)
            continue
        if stripped.startswith(">>>") and not in_doctest:
            in_doctest = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}```pycon")
        elif in_doctest and not stripped:
            out.append(f"{indent}```")
            in_doctest = False
        out.append(line)
    if in_doctest:
        out.append(f"{indent}```")
    return "\n".join(out)


def _entry_point_name(entry_point: Any) -> str:
    if isinstance(entry_point, str):
        return entry_point
    return f"{entry_point.__module__}:{entry_point.__qualname__}"


def load_entry_point(entry_point: Any) -> Any:
    """The class (or callable) a spec's ``entry_point`` names."""
    if not isinstance(entry_point, str):
        return entry_point
    module_name, _, attr = entry_point.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def env_docstring(obj: Any) -> str:
    """The card's source: the class's own docstring (not an inherited one), else its module's."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if not doc or not split_sections(doc)[1]:
        module_doc = getattr(sys.modules.get(getattr(obj, "__module__", "")), "__doc__", None)
        if module_doc and split_sections(module_doc)[1]:
            return module_doc
    return doc or ""


def _code(value: Any) -> str:
    text = repr(value).replace("|", "\\|").replace("`", "'")
    return f"`{text}`"


def spec_table(env_id: str) -> str:
    """A markdown table of ``gymnasium.spec(env_id)``."""
    import gymnasium

    spec = gymnasium.spec(env_id)
    rows = [
        ("id", f"`{spec.id}`"),
        ("entry point", f"`{_entry_point_name(spec.entry_point)}`"),
    ]
    env_class = getattr(load_entry_point(spec.entry_point), "env_class", None)
    if env_class is not None:  # a factory that wraps the env (with a reward)
        rows.append(("env class", f"`{_entry_point_name(env_class)}`"))
    rows += [
        ("max_episode_steps", _code(spec.max_episode_steps)),
        ("reward_threshold", _code(spec.reward_threshold)),
        ("nondeterministic", _code(spec.nondeterministic)),
        ("kwargs", _code(dict(spec.kwargs)) if spec.kwargs else "none"),
    ]
    lines = ["| field | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    return "\n".join(lines)


def registered_configurations(entry_point: Any) -> str:
    """A list of every registered id sharing ``entry_point``, with its kwargs."""
    import gymnasium

    name = _entry_point_name(entry_point)
    lines = []
    for env_id in sorted(gymnasium.registry):
        spec = gymnasium.registry[env_id]
        if _entry_point_name(spec.entry_point) == name:
            kwargs = f" — {_code(dict(spec.kwargs))}" if spec.kwargs else ""
            lines.append(f"- `{env_id}`{kwargs}")
    return "\n".join(lines)


def render_card(env_id: str) -> str:
    """The markdown that replaces ``<!-- env-card: env_id -->``."""
    import gymnasium

    spec = gymnasium.spec(env_id)
    obj = load_entry_point(spec.entry_point)
    # A factory entry point (it wraps the env with a reward) names the env class it builds.
    obj = getattr(obj, "env_class", obj)
    summary, sections = split_sections(env_docstring(obj))
    titles = {title for title, _ in sections}
    missing = [name for name in SECTIONS[:-1] if name not in titles]
    if missing:
        log.warning(
            "env-card %s: the docstring of %s lacks section(s): %s",
            env_id,
            _entry_point_name(spec.entry_point),
            ", ".join(missing),
        )
    if "Registered Configurations" not in titles:
        sections.append(("Registered Configurations", registered_configurations(spec.entry_point)))
    parts = [fence_doctests(summary)] if summary else []
    for title, body in sections:
        parts.append(f"## {title}\n\n{fence_doctests(body)}")
    parts.append(f"## Specification\n\n{spec_table(env_id)}")
    return "\n\n".join(parts) + "\n"


def fill_cards(markdown: str, render: Callable[[str], str] = render_card) -> str:
    """``markdown`` with each card region holding a fresh card between its two markers.

    >>> fill_cards("# X\\n\\n<!-- env-card: X -->\\nold card\\n<!-- /env-card -->\\nMore.", str.upper)
    '# X\\n\\n<!-- env-card: X -->\\nX<!-- /env-card -->\\nMore.'
    >>> fill_cards("<!-- env-card: Y -->\\n", lambda env_id: "card\\n")
    '<!-- env-card: Y -->\\ncard\\n<!-- /env-card -->\\n'
    """

    def fill(match: re.Match[str]) -> str:
        env_id = match.group("id")
        return f"<!-- env-card: {env_id} -->\n{render(env_id)}{END_MARKER}"

    return REGION.sub(fill, markdown)


def default_page(env_id: str) -> str:
    """The page of an env that has none yet: a title and the card's marker."""
    return f"# {env_id}\n\n<!-- env-card: {env_id} -->\n"


def generate_pages(docs_dir: str | Path) -> dict[str, str]:
    """Each registered env's page (``envs/<id>.md``, under ``docs_dir``) with its card filled now.

    A page's own text around the card is kept; an env without a page gets :func:`default_page`.
    """
    pages = {}
    for env_id in our_env_ids():
        path = _page_path(env_id)
        file = Path(docs_dir) / path
        text = file.read_text(encoding="utf-8") if file.is_file() else default_page(env_id)
        pages[path] = fill_cards(text)
    return pages


def stale_pages(docs_dir: str | Path) -> dict[str, str]:
    """The pages of :func:`generate_pages` that differ from the files in ``docs_dir``."""
    docs = Path(docs_dir)
    return {
        path: text
        for path, text in generate_pages(docs).items()
        if not (docs / path).is_file() or (docs / path).read_text(encoding="utf-8") != text
    }


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


def our_env_ids(package: str = PACKAGE) -> list[str]:
    """Ids registered by importing ``package`` whose entry point lives in ``package``."""
    import gymnasium

    importlib.import_module(package)
    ids = []
    for env_id, spec in gymnasium.registry.items():
        module = _entry_point_name(spec.entry_point).partition(":")[0]
        if module == package or module.startswith(package + "."):
            ids.append(env_id)
    return sorted(ids)


def _nav_pages(nav: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(nav, str):
        found.add(nav)
    elif isinstance(nav, dict):
        for value in nav.values():
            found |= _nav_pages(value)
    elif isinstance(nav, list):
        for item in nav:
            found |= _nav_pages(item)
    return found


def _page_path(env_id: str) -> str:
    return f"{PAGE_DIR}/{env_id}.md"


# --------------------------------------------------------------------------------------------
# mkdocs events
# --------------------------------------------------------------------------------------------


def on_config(config: Any) -> Any:
    """Import the package and list each registered env in the ``Environments`` nav section."""
    _env_ids.clear()
    try:
        _env_ids.extend(our_env_ids())
    except Exception as exc:  # a broken import must fail --strict, not crash the hook
        log.warning("env-cards: cannot import %s to find its environments: %r", PACKAGE, exc)
        return config
    if not _env_ids:
        log.warning("env-cards: importing %s registered no environments", PACKAGE)
    listed = _nav_pages(config.nav)
    for item in config.nav or []:
        if isinstance(item, dict) and isinstance(item.get(NAV_SECTION), list):
            section = item[NAV_SECTION]
            for env_id in _env_ids:
                if _page_path(env_id) not in listed:
                    section.append({env_id: _page_path(env_id)})
    return config


def on_files(files: Any, config: Any) -> Any:
    """Generate a page holding just the marker for every env without an authored page."""
    from mkdocs.structure.files import File

    for env_id in _env_ids:
        path = _page_path(env_id)
        if files.get_file_from_path(path) is None:
            content = f"# {env_id}\n\n<!-- env-card: {env_id} -->\n"
            files.append(File.generated(config, path, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace every card region (a committed card included) with the env's card, rendered now."""

    def replace(match: re.Match[str]) -> str:
        env_id = match.group("id")
        try:
            return render_card(env_id)
        except Exception as exc:
            log.warning("env-card %s on %s: %r", env_id, page.file.src_uri, exc)
            return f"!!! failure\n    No card for `{env_id}`: {exc!r}\n"

    return REGION.sub(replace, markdown)


# --------------------------------------------------------------------------------------------
# command line: the committed cards
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``--write`` the committed cards, or ``--check`` them (exit status 1 when out of date)."""
    parser = argparse.ArgumentParser(
        prog="python docs/hooks/env_cards.py",
        description="Write the env cards into docs/envs/<id>.md from the env docstrings.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the out-of-date pages")
    mode.add_argument("--check", action="store_true", help="list them; exit 1 if any")
    parser.add_argument("--docs", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    stale = stale_pages(args.docs)
    for path, text in sorted(stale.items()):
        if args.write:
            (args.docs / path).parent.mkdir(parents=True, exist_ok=True)
            (args.docs / path).write_text(text, encoding="utf-8")
        print(f"{'wrote' if args.write else 'out of date:'} {args.docs / path}")
    if not stale:
        print("env cards up to date")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
