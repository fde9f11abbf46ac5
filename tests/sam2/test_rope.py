"""Real-valued RoPE must match SAM 2's complex RoPE and export to ONNX."""

from __future__ import annotations

import copy

import pytest
import torch
from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis
from sam2.modeling.sam.transformer import RoPEAttention

from sam2_quant_plugin.sam2 import build_sam2_model
from sam2_quant_plugin.sam2.rope import (
    RealRoPEAttention,
    apply_rotary_enc_real,
    axial_rope_cos_sin,
    patch_real_rope,
)

SIDE = 8  # feature map side at image_size=128
N_TOK = SIDE * SIDE


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_sam2_model("t", image_size=128, seed=0)


def test_tables_equal_complex_freqs() -> None:
    cis = compute_axial_cis(dim=64, end_x=6, end_y=5)
    cos, sin = axial_rope_cos_sin(dim=64, end_x=6, end_y=5)
    assert cos.shape == sin.shape == cis.shape
    torch.testing.assert_close(cos, cis.real, atol=1e-6, rtol=0)
    torch.testing.assert_close(sin, cis.imag, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("repeat", "k_frames"), [(False, 1), (True, 3), (True, 0)])
def test_apply_rotary_matches_complex(repeat: bool, k_frames: int) -> None:
    gen = torch.Generator().manual_seed(0)
    dim = 32
    q = torch.randn(2, 2, N_TOK, dim, generator=gen)
    k = torch.randn(2, 2, N_TOK * k_frames, dim, generator=gen)
    cis = compute_axial_cis(dim=dim, end_x=SIDE, end_y=SIDE)
    q_ref, k_ref = apply_rotary_enc(q, k, freqs_cis=cis, repeat_freqs_k=repeat)
    q_out, k_out = apply_rotary_enc_real(q, k, cis.real, cis.imag, repeat_freqs_k=repeat)
    assert (q_out - q_ref).abs().max() < 1e-5
    assert k_out.shape == k_ref.shape
    if k_frames:
        assert (k_out - k_ref).abs().max() < 1e-5


def test_patch_counts_and_keeps_state(model: torch.nn.Module) -> None:
    patched_model = copy.deepcopy(model)
    keys = list(model.state_dict())
    assert patch_real_rope(patched_model) == 8  # 4 memory-attention layers x (self, cross)
    assert patch_real_rope(patched_model) == 0  # idempotent
    assert list(patched_model.state_dict()) == keys
    mods = [m for m in patched_model.modules() if isinstance(m, RoPEAttention)]
    assert all(isinstance(m, RealRoPEAttention) for m in mods)
    again = copy.deepcopy(patched_model)  # class swap survives deepcopy
    assert isinstance(again.memory_attention.layers[0].self_attn, RealRoPEAttention)


@torch.no_grad()
def test_memory_attention_matches_complex(model: torch.nn.Module) -> None:
    ref = model.memory_attention
    real = copy.deepcopy(ref)
    assert patch_real_rope(real) == 8
    gen = torch.Generator().manual_seed(1)
    n_ptr = 8  # object-pointer tokens: excluded from RoPE via num_k_exclude_rope
    n_mem = 2 * N_TOK + n_ptr
    curr = torch.randn(N_TOK, 1, 256, generator=gen)
    curr_pos = torch.randn(N_TOK, 1, 256, generator=gen)
    memory = torch.randn(n_mem, 1, 64, generator=gen)
    memory_pos = torch.randn(n_mem, 1, 64, generator=gen)
    args = (curr, memory, curr_pos, memory_pos, n_ptr)
    out_ref = ref(*args)
    out_real = real(*args)
    assert (out_ref - out_real).abs().max() < 1e-5


class _CrossAttn(torch.nn.Module):
    def __init__(self, attn: torch.nn.Module, n_exclude: int) -> None:
        super().__init__()
        self.attn = attn
        self.n_exclude = n_exclude

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.attn(q, k, v, num_k_exclude_rope=self.n_exclude)


@pytest.mark.onnx
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # dynamo=False is the legacy exporter
@pytest.mark.parametrize("which", ["self_attn", "cross_attn_image"])
def test_patched_module_exports_to_onnx(model: torch.nn.Module, which: str, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    attn = copy.deepcopy(getattr(model.memory_attention.layers[0], which))
    assert patch_real_rope(attn) == 1
    gen = torch.Generator().manual_seed(2)
    q = torch.randn(1, N_TOK, 256, generator=gen)
    if which == "self_attn":
        wrapper, k = _CrossAttn(attn, 0), q.clone()
    else:
        wrapper, k = _CrossAttn(attn, 4), torch.randn(1, 2 * N_TOK + 4, 64, generator=gen)
    v = torch.randn(k.shape, generator=gen)
    wrapper.eval()
    with torch.no_grad():
        expected = wrapper(q, k, v).numpy()
    path = tmp_path / f"{which}.onnx"
    torch.onnx.export(
        wrapper, (q, k, v), str(path), dynamo=False, opset_version=17, input_names=["q", "k", "v"]
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"q": q.numpy(), "k": k.numpy(), "v": v.numpy()})
    assert abs(got - expected).max() < 1e-4
