"""Any torch model: torchvision resnet18 and a 2-layer ViT through recipe -> calibrate -> freeze -> convert
-> ONNX -> onnxruntime, torch.ao's own prepare_qat with sq.qconfig_mapping, MHA refusal, strict save/load."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import VisionTransformer, resnet18

import sam2_quant_plugin as sq
from sam2_quant_plugin.recipe.io import shipped_recipes

W7A8 = sq.Recipe(
    name="w7a8",
    default=sq.LayerRule("<default>", weight=sq.weight_spec(bits=7), activation=sq.activation_spec()),
)
W4 = sq.Recipe(name="w4", default=sq.LayerRule("<default>", weight=sq.weight_spec(bits=4, observer="mse")))
MHA_OUT = r"re:encoder\.layers\.encoder_layer_\d+\.self_attention\.out_proj"


def vit() -> nn.Module:
    torch.manual_seed(0)
    m = VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10
    )
    nn.init.normal_(m.heads.head.weight, std=0.1)  # torchvision zero-inits the head
    return m.eval()


def resnet() -> nn.Module:
    torch.manual_seed(0)
    return resnet18(num_classes=10).eval()


def keep_mha_float(recipe: sq.Recipe) -> sq.Recipe:
    return sq.Recipe(name=recipe.name, default=recipe.default, rules=(sq.LayerRule(MHA_OUT),))


CASES = {"resnet18": (resnet, 64, W7A8), "vit": (vit, 32, keep_mha_float(W7A8))}


def test_recipe_without_targets_covers_the_whole_model_and_shipped_recipes_keep_theirs() -> None:
    assert W7A8.targets == ("",)
    assert sq.Recipe.from_dict({"version": 1, "name": "x"}).targets == ("",)
    q = sq.prepare_qat(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), W7A8)
    assert set(sq.quant_state(q).plans) == {"0", "2"}
    for ref in shipped_recipes():
        assert sq.load_recipe(ref).targets[0] == "image_encoder", ref  # SAM 2 recipes mean what they meant


def test_calibrate_without_forward_loop_on_a_non_sam_model_is_a_named_error() -> None:
    q = sq.prepare_qat(nn.Sequential(nn.Linear(4, 4)), W7A8)
    with pytest.raises(sq.CalibrationError, match=r"not SAM 2.*Fix: pass forward_loop"):
        sq.calibrate(q)


def test_calibration_data_of_the_wrong_kind_is_a_named_error() -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    recipe = sq.Recipe(name="w", default=sq.LayerRule("<default>", weight=sq.weight_spec(bits=7)))
    with pytest.raises(sq.ConfigError, match=r"iterable of batches .*, got int\. Fix"):
        sq.quantize(model, recipe, 5)  # type: ignore[arg-type]
    with pytest.raises(sq.ConfigError, match=r"forward_loop must be a callable loop\(model\), got list"):
        sq.calibrate(sq.prepare_qat(model, recipe), forward_loop=[torch.ones(1, 4)])  # type: ignore[arg-type]
    with pytest.raises(sq.ConfigError, match="transform must be callable"):
        sq.batch_forward_loop([torch.ones(1, 4)], transform=3)  # type: ignore[arg-type]


def test_mha_out_proj_is_refused_with_the_rule_that_excludes_it() -> None:
    with pytest.raises(sq.RecipeError) as err:
        sq.prepare_qat(vit(), W7A8)
    msg = str(err.value)
    assert "encoder.layers.encoder_layer_1.self_attention.out_proj" in msg
    assert "nn.MultiheadAttention" in msg
    pattern = re.search(r"match: '(re:[^']+)'", msg).group(1)
    assert pattern == MHA_OUT  # the suggested rule, pasted, makes the recipe fit
    rules = (sq.LayerRule(pattern),)
    q = sq.prepare_qat(vit(), sq.Recipe(name="ok", default=W7A8.default, rules=rules))
    assert not any(n.endswith("out_proj") for n in sq.quant_state(q).plans)
    # a type rule hits them too; nn.Transformer's attention is refused the same way
    with pytest.raises(sq.RecipeError, match=r"self_attn\.out_proj"):
        sq.prepare_qat(
            nn.TransformerEncoderLayer(16, 2, 32),
            sq.Recipe(name="t", rules=(sq.LayerRule("type:Linear", weight=sq.weight_spec()),)),
        )


@pytest.mark.parametrize("name", sorted(CASES))
def test_quantize_convert_export_and_onnxruntime_parity(name: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from sam2_quant_plugin.onnx import export_module

    build, size, recipe = CASES[name]
    model = build()
    g = torch.Generator().manual_seed(1)
    calib = [torch.randn(2, 3, size, size, generator=g) for _ in range(2)]
    x = torch.randn(2, 3, size, size, generator=g)
    frozen = sq.quantize(model, recipe, calib)
    assert sq.quant_state(frozen).frozen
    path = export_module(frozen, (x,), tmp_path / "m.onnx", input_names=("x",), output_names=("y",))
    y_ort = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        y_float, y_fq, y_int8 = model(x), frozen(x), sq.convert(frozen)(x)
    scale = float(y_float.abs().max())
    assert 0 < float((y_fq - y_float).abs().max()) < 0.3 * scale  # quantized, and close
    assert float((torch.from_numpy(y_ort) - y_fq).abs().max()) < 0.05 * scale
    # torch's int8 kernels also round every layer's output to uint8 (convert's docstring): close on average
    assert float((y_int8 - y_fq).abs().mean()) < 0.03 * scale


def test_qconfig_mapping_drives_torch_ao_prepare_qat_like_sq() -> None:
    from torch.ao.quantization import prepare_qat, propagate_qconfig_

    model, x = resnet(), torch.randn(1, 3, 64, 64)
    mapping = sq.qconfig_mapping(model, W4)
    assert len(mapping.module_name_qconfigs) == 21  # 20 convs + fc
    ours = sq.prepare_qat(model, W4)
    theirs = resnet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        propagate_qconfig_(theirs, dict(mapping.module_name_qconfigs))
        prepare_qat(theirs.train(), inplace=True)
    theirs.eval()
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))  # weight observers ran once in each: same fake-quant weights
        assert not torch.equal(ours(x), model(x))


@pytest.mark.parametrize("stage", ["prepared", "calibrated", "frozen"])
def test_save_and_load_quantized_strictly(stage: str, tmp_path: Path) -> None:
    build, size, _ = CASES["vit"]
    recipe = keep_mha_float(W7A8)
    model, x = build(), torch.randn(2, 3, size, size)
    q = sq.prepare_qat(model, recipe)
    if stage != "prepared":
        sq.calibrate(q, forward_loop=sq.batch_forward_loop([x]))
    if stage == "frozen":
        q = sq.freeze(q)
    path = sq.save_quantized(q, tmp_path / "q.pt")
    again = sq.load_quantized(path, build())  # strict load_state_dict inside; no calibration
    assert sq.quant_state(again).frozen == (stage == "frozen")
    if stage != "prepared":
        with torch.no_grad():
            assert torch.equal(again(x), q(x))
    if stage == "frozen":  # a bare frozen state_dict (what `sam2-quant run` writes) loads with its recipe
        torch.save(q.state_dict(), tmp_path / "frozen_state_dict.pt")
        bare = sq.load_quantized(tmp_path / "frozen_state_dict.pt", build(), recipe=sq.current_recipe(q))
        with torch.no_grad():
            assert torch.equal(bare(x), q(x))
        with pytest.raises(sq.CheckpointError, match="Fix: pass recipe="):
            sq.load_quantized(tmp_path / "frozen_state_dict.pt", build())


def test_batch_forward_loop_applies_transform_and_unpacks_tuples() -> None:
    seen: list[tuple[int, ...]] = []

    class Two(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            seen.append((a.shape[0], b.shape[0]))
            return a + b

    loop = sq.batch_forward_loop(
        [{"a": torch.ones(2), "b": torch.ones(2)}], transform=lambda d: (d["a"], d["b"])
    )
    loop(Two())
    assert seen == [(2, 2)]
