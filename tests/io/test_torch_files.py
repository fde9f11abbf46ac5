"""Every .pt reader of the package fails as one CheckpointError line: the file, the cause, the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sam2_quant_plugin import load_quantized, load_recipe
from sam2_quant_plugin.cdpq import load_package
from sam2_quant_plugin.errors import CheckpointError, RecipeError
from sam2_quant_plugin.io.torch_files import load_torch_file
from tests._utils import make_tiny_sam2_like

FIX = "do the thing"


class _NotATensor:
    pass


def _files(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, the cause the message must give)."""
    good = tmp / "good.pt"
    torch.save({"w": torch.ones(3)}, good)
    (tmp / "empty.pt").write_bytes(b"")
    (tmp / "text.pt").write_text("not a checkpoint")
    (tmp / "cut.pt").write_bytes(good.read_bytes()[:200])
    torch.save({"obj": _NotATensor()}, tmp / "pickled.pt")
    (tmp / "folder.pt").mkdir()
    return {
        "missing": (tmp / "missing.pt", "no such file"),
        "folder": (tmp / "folder.pt", "folder"),
        "empty": (tmp / "empty.pt", "empty"),
        "text": (tmp / "text.pt", "not a torch.save archive"),
        "truncated": (tmp / "cut.pt", "not a torch.save archive"),
        "pickled-object": (tmp / "pickled.pt", "Python objects other than tensors"),
    }


def test_load_torch_file_reads_tensors(tmp_path: Path) -> None:
    torch.save({"w": torch.arange(3.0)}, tmp_path / "ok.pt")
    assert torch.equal(load_torch_file(tmp_path / "ok.pt", fix=FIX)["w"], torch.arange(3.0))


@pytest.mark.parametrize("case", ["missing", "folder", "empty", "text", "truncated", "pickled-object"])
def test_load_torch_file_names_cause_and_fix(tmp_path: Path, case: str) -> None:
    path, cause = _files(tmp_path)[case]
    with pytest.raises(CheckpointError) as info:
        load_torch_file(path, fix=FIX)
    message = str(info.value)
    assert str(path) in message
    assert cause in message
    assert message.endswith(f"Fix: {FIX}")
    assert "\n" not in message


@pytest.mark.parametrize("case", ["text", "pickled-object"])
def test_public_readers_raise_checkpoint_errors(tmp_path: Path, case: str) -> None:
    path, cause = _files(tmp_path)[case]
    with pytest.raises(CheckpointError, match=cause) as info:
        load_quantized(path, make_tiny_sam2_like())
    assert "save_quantized" in str(info.value)
    with pytest.raises(CheckpointError, match=cause) as info:
        load_package(path)
    assert "sam2-quant cdpq" in str(info.value)


def test_readers_refuse_a_file_that_is_not_a_dict(tmp_path: Path) -> None:
    torch.save(torch.ones(2), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="holds a Tensor, not a saved model"):
        load_quantized(tmp_path / "tensor.pt", make_tiny_sam2_like())
    with pytest.raises(CheckpointError, match="holds a Tensor, not a CDPQ package"):
        load_package(tmp_path / "tensor.pt")


def test_load_recipe_names_a_wrong_type() -> None:
    with pytest.raises(RecipeError, match="got int 5"):
        load_recipe(5)  # type: ignore[arg-type]
