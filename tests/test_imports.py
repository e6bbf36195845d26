"""Importing a science module loads no training engine, no plotting library and no network code.

A chapter that only measures gradients or reads committed results must not pay for (or depend on) the training
engine, matplotlib or an internet connection. Each check runs in a fresh interpreter, where `sys.modules` shows
exactly what an import pulled in.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "resnet_lab"
SCIENCE = [
    "resnet_lab",
    "resnet_lab.blocks",
    "resnet_lab.models",
    "resnet_lab.summary",
    "resnet_lab.gradflow",
    "resnet_lab.toynets",
    "resnet_lab.shattered",
    "resnet_lab.experiments.gradient_flow",
    "resnet_lab.data",
    "resnet_lab.evaluate",
    "resnet_lab.checkpoint",
    "resnet_lab.config",
    "resnet_lab.experiments",
    "resnet_lab.experiments.depth_sweep",
    "resnet_lab.experiments.results",
]
# A fresh interpreter per module is slow (torch): probe those whose import is not already part of another probe's
# (every import runs resnet_lab/__init__.py, which loads models and blocks; the experiments package loads its
# depth_sweep and results modules).
PROBED = ["resnet_lab", "resnet_lab.summary", "resnet_lab.gradflow", "resnet_lab.data", "resnet_lab.evaluate",
          "resnet_lab.checkpoint", "resnet_lab.config", "resnet_lab.experiments"]
ENGINE = ("resnet_lab.train", "resnet_lab.experiments.runner")
NETWORK = ("urllib", "http", "socket", "requests")

# Prints the modules that importing NAME adds to those torch itself loads. torch is imported first because it
# loads urllib.request itself (for torch.hub): that is not the imported module's doing.
_PROBE = """
import importlib, json, sys
import torch
before = set(sys.modules)
importlib.import_module({name!r})
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _new_modules(name: str) -> list[str]:
    """The modules that `import name` loads in a fresh interpreter, beyond torch's own."""
    result = subprocess.run([sys.executable, "-c", _PROBE.format(name=name)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _loaded(modules: list[str], prefix: str) -> list[str]:
    return [m for m in modules if m == prefix or m.startswith(prefix + ".")]


@pytest.mark.parametrize("name", PROBED)
def test_science_modules_load_no_engine_and_no_matplotlib(name):
    modules = _new_modules(name)
    for forbidden in (*ENGINE, "matplotlib", "urllib.request"):
        assert not _loaded(modules, forbidden), f"import {name} loads {forbidden}"


def test_viz_draws_without_the_engine():
    modules = _new_modules("resnet_lab.viz")
    assert _loaded(modules, "matplotlib")  # the probe sees what viz imports
    for forbidden in (*ENGINE, "resnet_lab.experiments", "urllib.request"):
        assert not _loaded(modules, forbidden), f"import resnet_lab.viz loads {forbidden}"


def _top_level_imports(path: Path) -> set[str]:
    """The top-level package of every import at module level (imports inside functions run only when called)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _module_file(name: str) -> Path:
    parts = name.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


@pytest.mark.parametrize("name", [*SCIENCE, "resnet_lab.viz"])
def test_science_modules_import_no_network_code(name):
    """torch loads urllib.request anyway, so the probe above cannot see it: read the module's own imports."""
    imports = _top_level_imports(_module_file(name))
    assert not imports & set(NETWORK), f"{name} imports {sorted(imports & set(NETWORK))} at module level"


def test_gradflow_is_pure_measurement():
    """gradflow imports the standard library and torch, nothing of resnet_lab and no plotting."""
    imports = _top_level_imports(PACKAGE / "gradflow.py") - {"__future__"}
    assert imports - set(sys.stdlib_module_names) == {"torch"}


def test_the_import_checks_can_fail(tmp_path):
    """The probe sees an engine import and the reader sees module-level network imports: the checks can fail."""
    assert _loaded(_new_modules("resnet_lab.experiments.runner"), "resnet_lab.train")
    module = tmp_path / "module.py"
    module.write_text("import os\nimport urllib.request\n\ndef f():\n    import socket\n")
    assert _top_level_imports(module) == {"os", "urllib"}
