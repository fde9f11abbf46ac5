"""``--device`` / ``device=``: resolution, the error without a GPU, and inputs that follow the model.

The expectation is derived from what torch sees on this host (CI has no GPU; a GPU host gets CUDA).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sam2_quant_plugin as sq
from sam2_quant_plugin.cli.main import main
from sam2_quant_plugin.device import model_device, resolve_device
from sam2_quant_plugin.errors import DeviceError

HAS_CUDA = torch.cuda.is_available()


def test_auto_is_cuda_when_torch_sees_a_gpu_else_cpu() -> None:
    assert resolve_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_cuda_without_a_gpu_and_unknown_devices_are_named_errors() -> None:
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if HAS_CUDA:
        assert resolve_device("cuda").type == "cuda"
        with pytest.raises(DeviceError, match="does not exist"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(DeviceError, match=r"no CUDA GPU.*Fix: pass --device cpu"):
            resolve_device("cuda")


@pytest.mark.skipif(HAS_CUDA, reason="the no-GPU exit is what this host can show; a GPU host runs the job")
def test_cli_device_cuda_on_a_cpu_host_exits_2_with_the_fix(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    assert main(["cdpq", "--device", "cuda", "--image-size", "64", "--out", str(tmp_path)]) == 2
    assert "Fix: pass --device cpu" in caplog.text
    assert not any(tmp_path.iterdir()), "a refused run leaves no folder"


def test_model_device_and_quantize_device() -> None:
    assert model_device(nn.Identity()) == torch.device("cpu")
    model = nn.Sequential(nn.Linear(4, 4))
    recipe = sq.Recipe(name="w8", default=sq.LayerRule("<default>", weight=sq.weight_spec(bits=8)))
    frozen = sq.quantize(model, recipe, [torch.randn(2, 4)], device="auto")
    assert model_device(frozen) == resolve_device("auto")
    assert all(t.device == model_device(frozen) for t in frozen.state_dict().values())  # fake-quants too


def test_generic_task_moves_inputs_to_the_model() -> None:
    from sam2_quant_plugin.models import output_task

    model = nn.Linear(3, 2).to(resolve_device("auto"))
    out = output_task(model, torch.randn(1, 3))  # a CPU batch
    assert out["output"].device == model_device(model)
