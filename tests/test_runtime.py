"""resnet_lab.runtime: smoke mode, pick(), the device and the set-up line every notebook prints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import resnet_lab
from resnet_lab import runtime

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " 1 "])
def test_smoke_on(monkeypatch, value):
    monkeypatch.setenv("RESNET_LAB_SMOKE", value)
    assert runtime.is_smoke()
    assert runtime.pick(full=100, smoke=2) == 2


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off", "2"])
def test_smoke_off(monkeypatch, value):
    monkeypatch.setenv("RESNET_LAB_SMOKE", value)
    assert not runtime.is_smoke()
    assert runtime.pick(full=100, smoke=2) == 100


def test_smoke_off_when_unset(monkeypatch):
    monkeypatch.delenv("RESNET_LAB_SMOKE", raising=False)
    assert not runtime.is_smoke()
    assert runtime.pick(full=[1, 2, 3], smoke=[1]) == [1, 2, 3]


def test_pick_is_read_at_call_time(monkeypatch):
    """Smoke mode is not frozen at import: a notebook can be re-run in the other mode without a restart."""
    monkeypatch.setenv("RESNET_LAB_SMOKE", "1")
    assert runtime.pick("full", "smoke") == "smoke"
    monkeypatch.setenv("RESNET_LAB_SMOKE", "0")
    assert runtime.pick("full", "smoke") == "full"


def test_package_exports_the_runtime_functions():
    assert resnet_lab.pick is runtime.pick
    assert resnet_lab.is_smoke is runtime.is_smoke
    assert resnet_lab.setup is runtime.setup
    assert resnet_lab.get_device is runtime.get_device


def test_smoke_variable_is_read_in_exactly_one_place():
    """RESNET_LAB_SMOKE appears in runtime.py only, among the package and the notebooks."""
    sources = [*(ROOT / "resnet_lab").rglob("*.py"), *(ROOT / "notebooks").glob("*.ipynb")]
    readers = sorted(str(p.relative_to(ROOT)) for p in sources if "RESNET_LAB_SMOKE" in p.read_text("utf-8"))
    assert readers == ["resnet_lab/runtime.py"], readers


def test_get_device_default_is_available():
    device = runtime.get_device()
    assert isinstance(device, torch.device)
    assert device.type in {"cuda", "mps", "cpu"}
    if torch.cuda.is_available():
        assert device.type == "cuda", "a visible CUDA GPU must be preferred"
    assert torch.zeros(2, device=device).device.type == device.type  # the device really takes tensors


def test_get_device_prefer_cpu():
    assert runtime.get_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_get_device_cuda_without_gpu_says_what_to_do():
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        runtime.get_device("cuda")


def test_device_name_cpu():
    name = runtime.device_name(torch.device("cpu"))
    assert name.startswith("cpu (") and "threads" in name
    assert runtime.device_name("cpu") == name


@pytest.mark.parametrize(("value", "mode"), [("1", "smoke mode"), ("0", "normal mode")])
def test_setup_prints_versions_device_and_mode(monkeypatch, capsys, value, mode):
    monkeypatch.setenv("RESNET_LAB_SMOKE", value)
    device = runtime.setup()
    line = capsys.readouterr().out
    assert isinstance(device, torch.device)
    assert f"resnet_lab {resnet_lab.__version__}" in line
    assert f"torch {torch.__version__}" in line
    assert mode in line
    # tests/check_notebooks.py tells a normal run from a smoke run by these words: keep them distinct.
    assert ("normal mode" in line) != ("smoke mode" in line)


def test_setup_quiet(capsys):
    runtime.setup(verbose=False)
    assert capsys.readouterr().out == ""
