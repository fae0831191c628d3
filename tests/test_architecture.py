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
HEAVY = {"torch", "torchvision", "open_clip", "transformers", "gradio", "timm", "faiss", "sentence_transformers"}


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
