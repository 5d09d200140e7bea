"""The README and the pages under docs/ hold together: every relative link points to a file
that exists (no anchors: headings move between pages), every docs page is linked from the
README and links back to it, every ``deeplab_tf`` name and every repository path the text
names exists (and no page sends users to a deprecated alias), every Python block compiles,
and the README's Python API block runs as written (slow set: an Xception-65 at 513x513).
docs/keras.md's blocks run in tests/test_keras_readme.py; docs/compatibility.md's generated
table is checked in tests/test_recipes_and_flags.py."""

import ast
import glob
import importlib
import itertools
import os
import re

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
README = os.path.join(ROOT, "README.md")
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
PAGES = [README] + DOCS

FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOTTED = re.compile(r"(?<![\w.])deeplab_tf(?:\.\w+)+")
REPO_PATH = re.compile(
    r"(?<![\w/.-])(?:deeplab_tf|benchmarks|tests|configs|datasets|export|docs)/[\w./{},<>*-]*")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def name(path):
    return os.path.relpath(path, ROOT)


def links(path):
    """The link targets of a page's prose (code blocks and code spans left out)."""
    prose = re.sub(r"`[^`\n]*`", "", FENCE.sub("", read(path)))
    return LINK.findall(prose)


def python_blocks(path):
    return re.findall(r"^```python\n(.*?)^```", read(path), flags=re.S | re.M)


def test_there_are_docs_pages():
    assert len(DOCS) >= 5, DOCS


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_relative_links_point_to_existing_files(page):
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        assert "#" not in target, (
            f"{name(page)}: link {target!r} has an anchor; link the page (headings move)")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), target))
        assert os.path.exists(resolved), f"{name(page)}: link {target!r}: no such file"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {os.path.normpath(os.path.join(ROOT, t)) for t in links(README)}
    missing = [name(p) for p in DOCS if os.path.normpath(p) not in linked]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("page", DOCS, ids=name)
def test_each_page_starts_with_its_purpose_and_a_link_back(page):
    lines = read(page).split("\n")
    assert lines[0].startswith("# "), f"{name(page)}: no title on the first line"
    first_paragraph = "\n".join(itertools.takewhile(str.strip, lines[2:]))
    assert "](../README.md)" in first_paragraph, f"{name(page)}: no link back to README.md"


def resolve(dotted):
    """The object a dotted ``deeplab_tf`` name names, and the modules on the way."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        modules = [importlib.import_module(".".join(parts[:i])) for i in range(1, cut + 1)]
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj, modules
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_named_deeplab_tf_paths_exist_and_are_current(page):
    for dotted in sorted(set(DOTTED.findall(read(page)))):
        try:
            _, modules = resolve(dotted)
        except (ImportError, AttributeError) as e:
            pytest.fail(f"{name(page)} names {dotted}, which does not resolve: {e}")
        deprecated = [m.__name__ for m in modules
                      if (m.__doc__ or "").lstrip().startswith("Deprecated")]
        if deprecated and not page.endswith(os.path.join("docs", "layout.md")):
            pytest.fail(f"{name(page)} names {dotted} through the deprecated alias "
                        f"{deprecated[-1]}: name its new home")


def expand_braces(path):
    match = re.search(r"\{([^{}]*)\}", path)
    if not match:
        return [path]
    return [p for alt in match.group(1).split(",")
            for p in expand_braces(path[:match.start()] + alt + path[match.end():])]


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_named_repository_paths_exist(page):
    for path in sorted(set(REPO_PATH.findall(read(page)))):
        path = path.rstrip(".,")
        if any(c in path for c in "<>*"):  # a pattern: configs/<dataset>/<recipe>.flags
            continue
        for one in expand_braces(path):
            assert os.path.exists(os.path.join(ROOT, one)), f"{name(page)} names {one}: not found"


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_python_blocks_compile_and_their_imports_resolve(page):
    for block in python_blocks(page):
        tree = ast.parse(block, filename=name(page))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("deeplab_tf"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name) or importlib.util.find_spec(
                        f"{node.module}.{alias.name}"), (
                        f"{name(page)}: from {node.module} import {alias.name}: not found")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)


@pytest.mark.slow
def test_readme_python_api_block_runs(capsys):
    section = read(README).split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace = {}
    exec(compile(block, "README.md (Python API)", "exec"), namespace)
    assert tuple(namespace["logits"].shape) == (1, 129, 129, 21)
    assert tuple(namespace["labels"].shape) == (1, 513, 513)
    assert "{'params': 41258213, 'madds': 54049219184}" in capsys.readouterr().out
