"""resnet_lab.runtime: smoke mode, pick(), the device, precision, distributed helpers and the set-up line."""

from __future__ import annotations

import warnings
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


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off", "OFF", " no "])
def test_smoke_off(monkeypatch, value):
    monkeypatch.setenv("RESNET_LAB_SMOKE", value)
    assert not runtime.is_smoke()
    assert runtime.pick(full=100, smoke=2) == 100


@pytest.mark.parametrize("value", ["2", "ture", "smoke", "y", "-1"])
def test_smoke_value_not_understood_is_an_error(monkeypatch, value):
    """A typo must not silently start an hours-long full run (or a useless tiny one)."""
    monkeypatch.setenv("RESNET_LAB_SMOKE", value)
    message = rf"RESNET_LAB_SMOKE='{value}' is not understood: set it to 1 .* or 0 .*, or unset it"
    with pytest.raises(ValueError, match=message):
        runtime.is_smoke()
    with pytest.raises(ValueError, match="not understood"):
        runtime.pick(full=100, smoke=2)


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
    assert runtime.get_device(" CPU ") == torch.device("cpu")
    assert runtime.get_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", [None, "auto", "", "AUTO"])
def test_get_device_auto(name):
    assert runtime.get_device(name) == runtime.get_device()


@pytest.mark.parametrize("name", ["foo", "gpu", "cuda:x", "meta", "xpu"])
def test_get_device_unknown_name(name):
    with pytest.raises(ValueError, match=rf"Unknown device '{name}': use cpu, cuda .*mps .*leave it out"):
        runtime.get_device(name)


def test_get_device_cuda_without_gpu_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=rf"Device '{name}' was requested but no CUDA GPU is visible.*--device"):
            runtime.get_device(name)


def test_get_device_cuda_index_beyond_the_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert runtime.get_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"'cuda:2' does not exist: this machine has 2 CUDA GPUs \(cuda:0 to cuda:1\)"):
        runtime.get_device("cuda:2")


def test_get_device_mps_unavailable(monkeypatch):
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    with pytest.raises(ValueError, match="'mps' was requested but Apple's MPS backend is not available"):
        runtime.get_device("mps")


def test_get_device_mps_when_available(monkeypatch):
    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    assert runtime.get_device("mps") == torch.device("mps")


def test_get_device_order_of_preference(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    assert runtime.get_device() == torch.device("mps")
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert runtime.get_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.get_device() == torch.device("cuda")


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


def test_in_colab_is_gone():
    assert not hasattr(runtime, "in_colab")


# ----- precision -----


def test_resolve_precision_on_the_cpu():
    cpu = torch.device("cpu")
    assert runtime.PRECISIONS == ("auto", "bf16", "fp16", "fp32")
    assert runtime.resolve_precision("auto", cpu) == ("bf16" if runtime.cpu_supports_bf16() else "fp32")
    assert runtime.resolve_precision("fp32", cpu) == "fp32"
    assert runtime.resolve_precision("auto", torch.device("cuda")) == "fp16"
    with pytest.raises(ValueError, match="'fp16' .* is for CUDA GPUs"):
        runtime.resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match=r"precision must be one of auto, bf16, fp16, fp32, got 'half'"):
        runtime.resolve_precision("half", cpu)


def test_bf16_on_a_cpu_without_native_bf16_warns(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: False)
    cpu = torch.device("cpu")
    assert runtime.resolve_precision("auto", cpu) == "fp32"
    with pytest.warns(UserWarning, match="no native bfloat16"):
        assert runtime.resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: True)
    assert runtime.resolve_precision("auto", cpu) == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runtime.resolve_precision("bf16", cpu) == "bf16"


def test_autocast():
    cpu = torch.device("cpu")
    x = torch.randn(4, 4)
    with runtime.autocast(cpu, "fp32"):
        assert (x @ x).dtype == torch.float32
    with runtime.autocast(cpu, "bf16"):
        assert (x @ x).dtype == torch.bfloat16


# ----- distributed helpers in a single process -----


def test_single_process_distributed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    state, device = runtime.start_distributed("cpu")
    assert state == runtime.Distributed(rank=0, world_size=1, started_here=False) and state.is_main
    assert device == torch.device("cpu")
    assert not runtime.Distributed(rank=1, world_size=2).is_main
    assert runtime.shard() == (0, 1)
    values = torch.tensor([1.0, 2.0])
    assert runtime.all_sum(values) is values and values.tolist() == [1.0, 2.0]


def test_start_distributed_checks_the_device(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="Unknown device 'foo'"):
        runtime.start_distributed("foo")
