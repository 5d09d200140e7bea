"""No import cycles among deeplab_tf modules (every import counted, lazy ones in functions too)."""

import ast
import os

import deeplab_tf

PACKAGE_DIR = os.path.dirname(deeplab_tf.__file__)


def _modules():
    """{module name: path} of every deeplab_tf module."""
    modules = {}
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join(parts)] = path
    return modules


def _imports(module, path, modules):
    """The deeplab_tf modules that ``module`` imports.

    ``from a import b`` counts ``a.b`` when that is a module, else ``a``; ``import a.b`` counts
    ``a.b``. Parent packages, imported implicitly on the way, are not counted.
    """
    is_package = path.endswith("__init__.py")
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            # A name that is a module counts as that module; any other, as the package.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                     for alias in node.names]
        for name in names:
            # The deepest deeplab_tf module the name refers to.
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _cycles(graph):
    """Every elementary cycle found by a depth-first search (one per back edge)."""
    cycles, state, stack = [], {}, []

    def visit(node):
        state[node] = "active"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "active":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_walker_sees_imports_and_finds_a_cycle():
    modules = _modules()
    assert "deeplab_tf.data.converters.conversion" in modules
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    assert "deeplab_tf.data.cityscapes_labels" in graph["deeplab_tf.data.registry"]
    assert "deeplab_tf.data.tfds_source" in graph["deeplab_tf.data.registry"]  # A lazy import.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles_among_deeplab_tf_modules():
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
