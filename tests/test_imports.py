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


# The house, floor by floor: a module imports only from its own floor or the floors below.
# (Cycles within a floor are caught by test_no_import_cycles_among_deeplab_tf_modules.)
FLOORS = (
    ("deeplab_tf.errors", "deeplab_tf.fileio", "deeplab_tf.runtime", "deeplab_tf.config"),
    ("deeplab_tf.modeling", "deeplab_tf.data"),
    ("deeplab_tf.inference", "deeplab_tf.losses", "deeplab_tf.metrics", "deeplab_tf.schedules",
     "deeplab_tf.checkpoints"),
    ("deeplab_tf.model", "deeplab_tf.segmenter", "deeplab_tf.presets"),
    ("deeplab_tf.train", "deeplab_tf.evaluation", "deeplab_tf.export", "deeplab_tf.demo",
     "deeplab_tf.bench", "deeplab_tf.hardware"),
    ("deeplab_tf.cli",),
)


def _floor(module):
    for level, prefixes in enumerate(FLOORS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return None


def test_every_module_has_a_floor():
    homeless = sorted(m for m in _modules() if m != "deeplab_tf" and _floor(m) is None)
    assert not homeless, f"modules on no floor of FLOORS: {homeless}"


def test_no_module_imports_from_a_floor_above_its_own():
    modules = _modules()
    upward = []
    for module, path in modules.items():
        if module == "deeplab_tf":
            continue
        for target in _imports(module, path, modules):
            if target != "deeplab_tf" and _floor(target) > _floor(module):
                upward.append(f"{module} (floor {_floor(module)}) -> {target} "
                              f"(floor {_floor(target)})")
    assert not upward, "imports that run up the house:\n" + "\n".join(sorted(upward))


def test_the_network_and_the_configs_stand_alone():
    """modeling/ imports only config/, errors and itself; config/ only errors and itself; and
    nothing outside cli/ imports cli/."""
    modules = _modules()
    allowed = {"deeplab_tf.modeling": ("deeplab_tf.modeling", "deeplab_tf.config",
                                       "deeplab_tf.errors"),
               "deeplab_tf.config": ("deeplab_tf.config", "deeplab_tf.errors")}
    wrong = []
    for module, path in modules.items():
        targets = _imports(module, path, modules)
        for package, homes in allowed.items():
            if module.startswith(package):
                wrong += [f"{module} -> {t}" for t in targets
                          if not any(t == h or t.startswith(h + ".") for h in homes)]
        if not module.startswith("deeplab_tf.cli"):
            wrong += [f"{module} -> {t}" for t in targets if t.startswith("deeplab_tf.cli")]
    assert not wrong, "\n".join(sorted(wrong))


def test_walker_catches_an_upward_import(tmp_path):
    """The floor rule fails on a module that imports from above (a planted modeling module
    importing train/)."""
    planted = {"deeplab_tf.modeling.bad": str(tmp_path / "bad.py"),
               "deeplab_tf.train.loop": str(tmp_path / "loop.py")}
    (tmp_path / "bad.py").write_text("from deeplab_tf.train import loop\n")
    (tmp_path / "loop.py").write_text("")
    targets = _imports("deeplab_tf.modeling.bad", planted["deeplab_tf.modeling.bad"], planted)
    assert targets == {"deeplab_tf.train.loop"}
    assert _floor("deeplab_tf.train.loop") > _floor("deeplab_tf.modeling.bad")
