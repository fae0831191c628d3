"""The house rules: arrows point one way, heavy libraries load lazily, tests stay on loopback."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import prompts

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["index", "tools", "agent", "ui"]  # each may import only those before it
HEAVY = {"torch", "torchvision", "open_clip", "transformers", "gradio", "timm", "faiss", "sentence_transformers", "PIL"}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, imported at module level?) for every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], id(node) in module_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module.split(".")[0], id(node) in module_level))
    return found


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_edges(package: str) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports, anywhere in the file (lazy imports and
    TYPE_CHECKING ones count: a cycle is a tangle however late it is tied). `from .x import y`
    is an edge to x.y when that is a module, else to x."""
    files = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        edges[name] = {t for t in targets if t in files and t != name}
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), each as a path a -> b -> a."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    cycles = []
    for group in groups:  # a shortest way round from the group's first module, for the message
        start = min(group)
        paths, seen = [[start]], {start}
        while paths:
            path = paths.pop(0)
            if start in edges[path[-1]] and len(path) > 1:
                cycles.append(path + [start])
                break
            for nxt in sorted(edges[path[-1]] & group - seen):
                seen.add(nxt)
                paths.append(path + [nxt])
    return cycles


def test_the_cycle_finder_finds_a_mutual_import(tmp_path):
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_edges_resolve_relative_and_lazy_imports():
    edges = _package_edges("tools")
    assert "tools.models.pixels" in edges["tools.models.geometry"]  # from .pixels import ...
    assert "tools.training.versions" in edges["tools.zeroshot"]  # a lazy import inside suggest()
    assert "tools.zeroshot" in edges["tools.training.activation"]


def test_tools_hold_no_import_cycle():
    cycles = _cycles(_package_edges("tools"))
    assert not cycles, "import cycles in tools/: " + "; ".join(" -> ".join(c) for c in cycles) + \
        ". Move what both need into a module below them."


def _store_writers() -> set[str]:
    """The Store's public methods that change the database: those that open a write transaction
    (`self._write()`, `self.transaction()`), or call one that does, wherever in index/ the
    Store's table groups live."""
    calls: dict[str, set[str]] = {}
    for path in [*ROOT.glob("index/store*.py"), *ROOT.glob("index/store/**/*.py")]:
        for cls in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(cls, ast.ClassDef):
                continue
            for method in cls.body:
                if isinstance(method, ast.FunctionDef):
                    calls.setdefault(method.name, set()).update(
                        node.func.attr for node in ast.walk(method) if isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                        and node.func.value.id == "self")
    writers = {"_write", "transaction"}
    while True:
        more = {name for name, called in calls.items() if called & writers} - writers
        if not more:
            return {name for name in writers if not name.startswith("_")} - {"transaction"}
        writers |= more


def _store_writes(source: str, writers: set[str]) -> list[str]:
    """Calls like `store.set_labels(...)` or `state.project.store.undo_last(...)` in a file."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in writers:
            receiver = node.func.value
            name = receiver.id if isinstance(receiver, ast.Name) else getattr(receiver, "attr", "")
            if name == "store":
                found.append(f"line {node.lineno}: {ast.unparse(node.func)}")
    return found


def test_the_store_write_finder_finds_writes():
    writers = _store_writers()
    assert {"set_labels", "undo_last", "decide", "set_setting", "put_suggestions_many"} <= writers
    assert not {"label_set", "status", "decisions", "get_item"} & writers
    source = "def f(state, store):\n    state.project.store.undo_last(actor='x')\n    store.status()\n    store.add_labels([])\n"
    assert _store_writes(source, writers) == ["line 2: state.project.store.undo_last", "line 4: store.add_labels"]


def test_the_front_ends_change_the_project_only_through_the_workbench():
    writers = _store_writers()
    for path in [*(ROOT / "ui").rglob("*.py"), *(ROOT / "agent" / "tools").rglob("*.py")]:
        writes = _store_writes(path.read_text(), writers)
        assert not writes, (f"{path.relative_to(ROOT)} writes to the store itself ({'; '.join(writes)}): "
                            f"call tools/workbench.py's Workbench (or a tools/ function) instead")


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_downwards(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1]) | {"prompts"}
    for path in (ROOT / layer).rglob("*.py"):
        for module, _ in _imports(path):
            if module in LAYERS:
                assert module in allowed, f"{path.relative_to(ROOT)} imports {module}: arrows go ui -> agent -> tools -> index"


def test_only_agent_imports_langchain_and_only_ui_imports_gradio():
    for layer in ["index", "tools", "ui"]:
        for path in (ROOT / layer).rglob("*.py"):
            assert "langchain_core" not in {m for m, _ in _imports(path)}, path
    for layer in ["index", "tools", "agent"]:
        for path in (ROOT / layer).rglob("*.py"):
            assert "gradio" not in {m for m, _ in _imports(path)}, path


def test_no_heavy_import_at_module_level():
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            eager = {m for m, top in _imports(path) if top} & HEAVY
            assert not eager, f"{path.relative_to(ROOT)} imports {eager} at import time"


def test_importing_the_cli_loads_no_heavy_library():
    code = "import sys, ui.cli, tools.ingest, tools.export, tools.importing; print(sorted(m for m in sys.modules if m.split('.')[0] in %r))" % HEAVY
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_network_guard_blocks_outside_addresses_before_sending():
    from conftest import OutsideNetworkError

    with socket.socket() as s, pytest.raises(OutsideNetworkError, match="169.254.169.254"):
        s.connect(("169.254.169.254", 80))
    with socket.socket() as s, pytest.raises(OutsideNetworkError):
        s.connect(("10.1.2.3", 443))


def test_prompt_templates_are_data_and_render_strictly():
    from jinja2.exceptions import UndefinedError

    templates = prompts.load_yaml("clip_templates.yaml")["ensembles"]
    assert len(templates["default"]) >= 10 and templates["short"]
    assert prompts.render(templates["short"][0], label="windmill") == "a photo of a windmill."
    with pytest.raises(UndefinedError):
        prompts.render(templates["short"][0], name="windmill")
