"""SAM 2's video loop on exported files: the backbone, memory-attention, memory-encoder and mask-decoder
graphs run in onnxruntime inside ``SAM2VideoPredictor`` (object pointers included) and match torch."""

from __future__ import annotations

import copy
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from sam2_quant_plugin.errors import BundleError
from sam2_quant_plugin.eval.baselines.onnx_encoder import ort_student
from sam2_quant_plugin.eval.video import build_video_reference, default_video_dir, score_video
from sam2_quant_plugin.onnx import make_session
from sam2_quant_plugin.onnx.export import export_graph
from sam2_quant_plugin.sam2.export import backbone_spec, bundle_memory_specs
from sam2_quant_plugin.sam2.ort_modules import OrtMaskDecoder, OrtMemoryAttention, OrtMemoryEncoder
from tests.conftest import SMALL as S

pytestmark = [pytest.mark.slow, pytest.mark.onnx]


def _files(model: torch.nn.Module, folder: Path) -> dict[str, Path]:
    specs = {"backbone": backbone_spec(S), **bundle_memory_specs(S, ["memory_attention", "memory_encoder"])}
    return {name: export_graph(model, folder / f"{name}.onnx", spec) for name, spec in specs.items()}


def test_video_loop_runs_the_memory_graphs_in_onnxruntime(tiny_sam2, tmp_path) -> None:  # type: ignore[no-untyped-def]
    teacher = copy.deepcopy(tiny_sam2)
    files = _files(teacher, tmp_path)
    memory = {k: make_session(files[k]) for k in ("memory_attention", "memory_encoder")}
    student = ort_student(teacher, make_session(files["backbone"]), memory)
    assert isinstance(student.memory_attention, OrtMemoryAttention)
    assert isinstance(student.memory_encoder, OrtMemoryEncoder)

    ref = build_video_reference(teacher, default_video_dir(), n_per_side=2, max_frames=5, work_dir=tmp_path)
    scores = score_video(ref, teacher, student)
    assert scores["j_mean_after_prompt_frame"] > 0.99, scores  # float files: the torch model's masks
    # every propagated frame went through the file, with SAM 2.1's object-pointer tokens in the memory
    assert student.memory_attention.calls >= 4 * 4, student.memory_attention.calls
    assert student.memory_attention.max_obj_ptr_tokens > 0
    assert student.memory_encoder.calls > 0


def test_memory_attention_drop_in_splits_pointer_tokens(tiny_sam2, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The drop-in takes SAM 2's call (concatenated memory, pointer count, batch of 2) and equals the
    torch module; a memory that is not whole frames is a named error."""
    from sam2_quant_plugin.sam2.rope import patch_real_rope

    model = copy.deepcopy(tiny_sam2)
    path = export_graph(
        model, tmp_path / "m.onnx", bundle_memory_specs(S, ["memory_attention"])["memory_attention"]
    )
    drop_in = OrtMemoryAttention(make_session(path))
    patch_real_rope(model)
    hw, c, cm = (S // 16) ** 2, model.memory_attention.d_model, model.mem_dim
    torch.manual_seed(0)
    cur, cur_pos = torch.randn(hw, 2, c), torch.randn(hw, 2, c)
    mem, mem_pos = torch.randn(3 * hw + 12, 2, cm), torch.randn(3 * hw + 12, 2, cm)
    kw = {
        "curr": [cur],
        "curr_pos": [cur_pos],
        "memory": mem,
        "memory_pos": mem_pos,
        "num_obj_ptr_tokens": 12,
    }
    with torch.no_grad():
        ref = model.memory_attention(**kw)
    out = drop_in(**kw)
    assert out.shape == ref.shape
    assert float((out - ref).abs().max()) < 1e-3
    with pytest.raises(ValueError, match="not a positive multiple"):
        drop_in(**{**kw, "num_obj_ptr_tokens": 11})


def test_a_file_with_other_inputs_is_refused_with_the_fix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A memory-attention file from before pointer tokens were inputs (4 inputs) cannot be dropped in."""
    names = ("current", "current_pos", "memory", "memory_pos")
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["a", 1, 4]) for n in names]
    out = helper.make_tensor_value_info("conditioned", TensorProto.FLOAT, ["a", 1, 4])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["current"], ["conditioned"])], "old", inputs, [out]
    )
    path = tmp_path / "old.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(BundleError, match=r"re-export it .*--graphs memory_attention"):
        OrtMemoryAttention(make_session(path))


@pytest.mark.parametrize("multimask", [True, False])
def test_mask_decoder_drop_in_equals_sam2s_decoder(tiny_sam2, tmp_path, multimask) -> None:  # type: ignore[no-untyped-def]
    """SAM 2's call (batch of 2 objects, 2 or 5 prompt tokens, one image repeated or one per object) gives
    the torch decoder's masks, scores, pointer tokens and object scores, whichever outputs it selects."""
    from sam2_quant_plugin.sam2.graphs import mask_decoder_example

    model = copy.deepcopy(tiny_sam2).eval()
    spec = bundle_memory_specs(S, ["sam_mask_decoder"])["sam_mask_decoder"]
    drop_in = OrtMaskDecoder(
        make_session(export_graph(model, tmp_path / "d.onnx", spec)), model.sam_mask_decoder
    )
    torch.manual_seed(0)
    image, _, _, dense, hr0, hr1 = mask_decoder_example(model, S)
    pe = model.sam_prompt_encoder.get_dense_pe()
    for n_tokens, repeat in ((2, True), (5, False)):
        sparse = torch.randn(2, n_tokens, image.shape[1])
        batch = 1 if repeat else 2
        kw = {
            "image_embeddings": image.expand(batch, -1, -1, -1),
            "image_pe": pe,
            "sparse_prompt_embeddings": sparse,
            "dense_prompt_embeddings": dense.expand(2, -1, -1, -1),
            "multimask_output": multimask,
            "repeat_image": repeat,
            "high_res_features": [hr0.expand(batch, -1, -1, -1), hr1.expand(batch, -1, -1, -1)],
        }
        with torch.no_grad():
            ref = model.sam_mask_decoder(**kw)
        got = drop_in(**kw)
        for name, a, b in zip(("masks", "iou", "pointer tokens", "object scores"), got, ref):
            assert a.shape == b.shape, name
            assert float((a - b).abs().max()) < 1e-3, name
    assert drop_in.calls == 2
    with pytest.raises(ValueError, match="needs the MaskDecoder"):
        OrtMaskDecoder(drop_in.session)


def test_eval_decodes_with_the_decoder_file_when_the_student_has_one(tiny_sam2, photos, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An onnxruntime student with the loop's decoder graph is scored with it on images too (eval's rows
    for a video recipe that quantizes the decoder), and the report can say which decoder each row used."""
    from sam2_quant_plugin.api import prepare_qat
    from sam2_quant_plugin.eval.harness import build_reference, decoder_kind, score_student
    from sam2_quant_plugin.recipe import load_recipe

    teacher = copy.deepcopy(tiny_sam2).eval()
    specs = {"backbone": backbone_spec(S), **bundle_memory_specs(S, ["sam_mask_decoder"])}
    files = {n: export_graph(teacher, tmp_path / f"{n}.onnx", spec) for n, spec in specs.items()}
    decoder = {"sam_mask_decoder": make_session(files["sam_mask_decoder"])}
    student = ort_student(teacher, make_session(files["backbone"]), decoder)
    ref = build_reference(teacher, photos[:1], image_size=S, points_per_side=2, max_boxes=2, progress=False)
    scores = score_student(ref, student, teacher, progress=False)
    assert student.sam_mask_decoder.calls >= 2  # points and boxes went through the file
    assert scores["points"]["mask_iou"] > 0.99, scores  # float files: the teacher's masks
    assert decoder_kind(student) == "onnxruntime"
    assert decoder_kind(teacher) == "float"
    assert decoder_kind(prepare_qat(teacher, load_recipe("mixed"))) == "quantized"  # mixed: decoder rules
    assert decoder_kind(prepare_qat(teacher, load_recipe("w8a8"))) == "float"
