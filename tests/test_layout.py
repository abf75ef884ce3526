"""The package layout's rules (docs/ARCHITECTURE.md), checked on the source itself:

- every file under 400 lines and every function under 60 (STYLE.md: a longer one is two ideas);
- no import cycle between bertbench modules, counting imports inside functions too;
- imports inside functions only where they defer something heavy (TensorFlow, Keras, matplotlib,
  ...), directly or through a bertbench module that loads it at import time: an import that costs
  nothing belongs at the top, where it shows the dependency graph.
"""

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bertbench"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
HEAVY = {"tensorflow", "keras", "keras_hub", "tensorflow_text", "tensorflow_datasets", "matplotlib",
         "h5py", "safetensors", "sentencex", "seqeval", "sklearn", "scipy", "pandas"}


def _modules():
    """{dotted module name: parsed AST} of every bertbench source file."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = (path, ast.parse(path.read_text(encoding="utf-8")))
    return out


MODULES = _modules()


def _targets(node, module):
    """Dotted names a (from-)import statement loads, resolved to modules where they are modules."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:  # relative import
        package = module.split(".")[: len(module.split(".")) - node.level + (module in _packages())]
        base = ".".join(package + ([node.module] if node.module else []))
    out = []
    for alias in node.names:
        full = f"{base}.{alias.name}"
        out.append(full if full in MODULES else base)
    return out


def _packages():
    return {name for name, (path, _) in MODULES.items() if path.name == "__init__.py"}


def _imports(tree, module, lazy):
    """Import targets at module level (lazy=False) or inside functions (lazy=True)."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)) and inside == lazy:
                found.extend((child.lineno, t) for t in _targets(child, module))
            visit(child, inside)

    visit(tree, False)
    return found


def _internal(target):
    """The bertbench module a dotted import target loads (or None for other packages)."""
    if not target.startswith("bertbench"):
        return None
    while target not in MODULES and "." in target:
        target = target.rsplit(".", 1)[0]
    return target if target in MODULES else None


def _loads_heavy(module, seen=None):
    """Does importing `module` load a heavy package (directly or through bertbench modules)?"""
    seen = set() if seen is None else seen
    if module in seen:
        return False
    seen.add(module)
    for _, target in _imports(MODULES[module][1], module, lazy=False):
        if target.split(".")[0] in HEAVY:
            return True
        internal = _internal(target)
        if internal and _loads_heavy(internal, seen):
            return True
    parent = module.rsplit(".", 1)[0] if "." in module else None  # a submodule runs its package first
    return bool(parent and parent in MODULES and _loads_heavy(parent, seen))


def test_files_and_functions_are_short():
    long_files, long_functions = [], []
    for name, (path, tree) in MODULES.items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES:
            long_files.append(f"{name}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}.{node.name}: {length} lines")
    assert not long_files, f"files over {MAX_FILE_LINES} lines: {long_files}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_no_import_cycles():
    graph = {name: set() for name in MODULES}
    for name, (_, tree) in MODULES.items():
        for lazy in (False, True):
            for _, target in _imports(tree, name, lazy):
                internal = _internal(target)
                if internal and internal != name and not name.startswith(internal + "."):
                    graph[name].add(internal)
    cycles = []
    state = {}

    def dfs(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                dfs(nxt, stack)
        stack.pop()
        state[node] = "done"

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in state:
            dfs(node, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_inside_functions_only_defer_heavy_modules():
    needless = []
    for name, (_, tree) in MODULES.items():
        for line, target in _imports(tree, name, lazy=True):
            internal = _internal(target)
            heavy = target.split(".")[0] in HEAVY or (internal is not None and _loads_heavy(internal))
            if not heavy:
                needless.append(f"{name}:{line} imports {target}")
    assert not needless, "imports inside functions that load nothing heavy (move them to the top): " + \
        "; ".join(needless)


def test_the_layout_rules_can_fail(tmp_path):
    """The cycle and lazy-import checks see what they are meant to see (not vacuous)."""
    tree = ast.parse("import json\ndef f():\n    import os\n    from bertbench.errors import BertbenchError\n")
    assert [t for _, t in _imports(tree, "bertbench.x", lazy=True)] == ["os", "bertbench.errors"]
    assert [t for _, t in _imports(tree, "bertbench.x", lazy=False)] == ["json"]
    assert not _loads_heavy("bertbench.errors")
    assert _loads_heavy("bertbench.model.encoder")
