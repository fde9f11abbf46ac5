"""The deployment side of target_cpu: a VNNI-only file is caught on a CPU whose int8 kernels saturate."""

from __future__ import annotations

import logging

import onnx
import pytest

from sam2_quant_plugin.errors import Int8Error
from sam2_quant_plugin.int8 import host_int8_path
from sam2_quant_plugin.int8.deploy import NOTE_KEY, SAFE_KEY, TARGET_KEY, safety_metadata, wrong_cpu_message
from sam2_quant_plugin.int8.host import Int8Path
from sam2_quant_plugin.int8.safety import SaturationReport
from sam2_quant_plugin.onnx.runtime import make_session
from tests.int8._linear import export, ln_linear

AVX2 = Int8Path(onnxruntime="avx2", torch="avx2", cpu="Zen 1 (family 23 model 1) [avx2]", cpu_flags="avx2")
EXACT = Int8Path(onnxruntime="exact", torch="exact", cpu="Zen 4 [avx512_vnni]", cpu_flags="avx512_vnni")


@pytest.mark.parametrize(
    ("meta", "flagged_on_avx2"),
    [
        ({TARGET_KEY: "vnni", SAFE_KEY: "false"}, True),
        ({TARGET_KEY: "vnni"}, True),  # no proof recorded: not trusted
        ({TARGET_KEY: "vnni", SAFE_KEY: "true"}, False),  # proved saturation-free: right everywhere
        ({TARGET_KEY: "any", SAFE_KEY: "true"}, False),
        ({}, False),  # another exporter's file: nothing to go by
    ],
)
def test_only_an_unproven_vnni_file_on_a_saturating_cpu_is_flagged(meta: dict, flagged_on_avx2: bool) -> None:
    assert (wrong_cpu_message(meta, "m.onnx", AVX2) is not None) is flagged_on_avx2
    assert wrong_cpu_message(meta, "m.onnx", EXACT) is None


def test_the_message_names_the_file_the_cpu_and_the_fix() -> None:
    msg = wrong_cpu_message({TARGET_KEY: "vnni"}, "bundle/encoder.onnx", AVX2)
    assert msg is not None
    for part in ("bundle/encoder.onnx", "target_cpu='vnni'", AVX2.cpu, "--target-cpu any", "VNNI", "CUDA"):
        assert part in msg


def test_each_graph_records_only_its_own_layers() -> None:
    layers = {"image_encoder.a": (3, 64), "image_encoder.b": (0, 64), "sam_mask_decoder.c": (0, 8)}
    report = SaturationReport(layers)
    encoder = safety_metadata(report, ["image_encoder.a", "image_encoder.b"])
    decoder = safety_metadata(report, ["sam_mask_decoder.c"])
    assert encoder[SAFE_KEY] == "false"
    assert "1 of 2" in encoder[NOTE_KEY]
    assert decoder[SAFE_KEY] == "true"
    assert "all 1 int8-kernel layers" in decoder[NOTE_KEY]
    assert safety_metadata(report, [])[SAFE_KEY] == "true"  # a graph without int8 layers (float decoder)
    assert safety_metadata(None, ["x"])[SAFE_KEY] == "true"  # a float model


def _metadata(path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_export_records_the_proof_and_this_cpu_gets_what_its_kernels_deserve(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    risky, x = ln_linear(8)
    safe, x7 = ln_linear(7)
    risky_file = export(risky, x, tmp_path / "risky.onnx", target_cpu="vnni")
    safe_file = export(safe, x7, tmp_path / "safe.onnx", target_cpu="vnni")
    assert _metadata(risky_file)[SAFE_KEY] == "false"
    assert _metadata(safe_file)[SAFE_KEY] == "true"
    wrong_here = host_int8_path().onnxruntime == "avx2"  # derived from this CPU's kernels, not assumed
    with caplog.at_level(logging.WARNING):
        make_session(risky_file)
    assert ("outputs would be wrong here" in caplog.text) is wrong_here
    if wrong_here:
        with pytest.raises(Int8Error, match="--target-cpu any"):
            make_session(risky_file, wrong_cpu="error")
    else:
        make_session(risky_file, wrong_cpu="error")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        make_session(safe_file, wrong_cpu="error")
        make_session(risky_file, wrong_cpu="error", optimization="disable")  # Q/DQ simulated in float
    assert "wrong" not in caplog.text


def test_an_avx2_host_refuses_the_risky_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Whatever CPU runs the suite: the factory's guard acts on what the host probe says."""
    import sam2_quant_plugin.int8.deploy as deploy

    risky, x = ln_linear(8)
    path = export(risky, x, tmp_path / "risky.onnx", target_cpu="vnni")
    monkeypatch.setattr(deploy, "host_int8_path", lambda: AVX2)
    with pytest.raises(Int8Error, match=r"risky\.onnx.*Zen 1"):
        make_session(path, wrong_cpu="error")
    monkeypatch.setattr(deploy, "host_int8_path", lambda: EXACT)
    make_session(path, wrong_cpu="error")
    with pytest.raises(ValueError, match="wrong_cpu"):
        make_session(path, wrong_cpu="ignore")
