"""Model building, seeding, checkpoints and non-default image sizes."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sam2.modeling.sam.transformer import RoPEAttention

from sam2_quant_plugin.errors import CheckpointError, ModelConfigError
from sam2_quant_plugin.models import model_info
from sam2_quant_plugin.sam2 import (
    COMPONENTS,
    CONFIGS,
    build_sam2_model,
    bundled_video_frames,
    resolve_config,
    save_checkpoint,
)
from sam2_quant_plugin.sam2.names import SAM21_ONLY_KEYS, config_short_name

SIZE = 256


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return build_sam2_model("t", image_size=SIZE, seed=3)


@pytest.fixture(scope="module")
def tiny_ckpt(tiny: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tiny, tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def test_unknown_config_lists_valid_names() -> None:
    with pytest.raises(ModelConfigError, match=r"unknown SAM 2 config 'sam2\.1_hiera_xl'") as info:
        resolve_config("sam2.1_hiera_xl")
    assert "sam2.1_hiera_t" in str(info.value)
    assert "tiny" in str(info.value)
    with pytest.raises(ModelConfigError):
        build_sam2_model("huge")


@pytest.mark.parametrize(
    ("alias", "short"),
    [
        ("t", "sam2.1_hiera_t"),
        ("tiny", "sam2.1_hiera_t"),
        ("Tiny", "sam2.1_hiera_t"),
        ("s", "sam2.1_hiera_s"),
        ("small", "sam2.1_hiera_s"),
        ("b+", "sam2.1_hiera_b+"),
        ("base_plus", "sam2.1_hiera_b+"),
        ("l", "sam2.1_hiera_l"),
        ("large", "sam2.1_hiera_l"),
        ("sam2.1_hiera_l", "sam2.1_hiera_l"),
        ("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_s"),
    ],
)
def test_alias_resolution(alias: str, short: str) -> None:
    assert config_short_name(alias) == short
    assert resolve_config(alias) == CONFIGS[short]


def test_names() -> None:
    assert set(CONFIGS) == {"sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l"}
    assert COMPONENTS == (
        "image_encoder",
        "sam_prompt_encoder",
        "sam_mask_decoder",
        "memory_attention",
        "memory_encoder",
    )


@pytest.mark.parametrize("size", [0, -32, 100, 1000, 256.0, True])
def test_bad_image_size(size: object) -> None:
    with pytest.raises(ModelConfigError, match="multiple of 32"):
        build_sam2_model("t", image_size=size)


def test_seeded_build_is_deterministic(tiny: torch.nn.Module) -> None:
    rng_before = torch.get_rng_state()
    same = build_sam2_model("t", image_size=SIZE, seed=3)
    other = build_sam2_model("t", image_size=SIZE, seed=4)
    assert torch.equal(torch.get_rng_state(), rng_before), "global RNG must be left untouched"
    assert _same_state(tiny, same)
    assert not _same_state(tiny, other)


def test_attributes_and_eval_mode(tiny: torch.nn.Module) -> None:
    info = model_info(tiny)
    assert info.weights == "random-init(seed=3)"
    assert info.random_init
    assert info.seed == 3
    assert (info.family, info.config) == ("sam2", "sam2.1_hiera_t")
    assert info.image_size == SIZE == tiny.image_size
    assert not tiny.training
    for name in COMPONENTS:
        assert hasattr(tiny, name)


def test_random_init_warning_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sam2_quant_plugin.sam2.build"):
        build_sam2_model("t", image_size=128, seed=7)
    text = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "RANDOM-INIT WEIGHTS (seed=7)" in text
    assert "--checkpoint PATH" in text


def test_checkpoint_round_trip_is_bit_exact(
    tiny: torch.nn.Module, tiny_ckpt: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sam2_quant_plugin.sam2.build"):
        loaded = build_sam2_model("t", tiny_ckpt, image_size=SIZE, seed=99)
    assert "RANDOM-INIT" not in caplog.text
    assert _same_state(tiny, loaded)
    assert model_info(loaded).weights == str(tiny_ckpt)
    assert model_info(loaded).seed is None
    assert list(tiny_ckpt.parent.iterdir()) == [tiny_ckpt], "no temp files may be left behind"


def test_bare_state_dict_accepted(tiny: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "bare.pt"
    torch.save(tiny.state_dict(), path)
    assert _same_state(tiny, build_sam2_model("t", path, image_size=SIZE))


def test_missing_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="not found") as info:
        build_sam2_model("t", path, image_size=128)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_corrupt_checkpoint(tiny_ckpt: Path, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.pt"
    if kind == "garbage":
        path.write_bytes(b"\x00\x13 this is not a checkpoint \xff" * 10)
    else:
        data = tiny_ckpt.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint") as info:
        build_sam2_model("t", path, image_size=128)
    assert "corrupt" in str(info.value)
    assert str(path) in str(info.value)


def test_checkpoint_not_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="not a dict"):
        build_sam2_model("t", path, image_size=128)


def test_wrong_config_checkpoint(tiny_ckpt: Path) -> None:
    with pytest.raises(CheckpointError, match=r"does not fit config 'sam2\.1_hiera_s'") as info:
        build_sam2_model("small", tiny_ckpt, image_size=128)
    msg = str(info.value)
    assert "missing keys" in msg
    assert "image_encoder.trunk.blocks." in msg
    assert "has 12 Hiera blocks, as sam2.1_hiera_t has (not 16). Fix: pass --config sam2.1_hiera_t" in msg


def test_sam2_0_checkpoint_is_named_with_the_sam2_1_file_to_use(
    tiny: torch.nn.Module, tmp_path: Path
) -> None:
    """A SAM 2 (2.0) checkpoint lacks exactly the parameters 2.1 added; the fix names the 2.1 file by size."""
    state = {k: v for k, v in tiny.state_dict().items() if k not in SAM21_ONLY_KEYS}
    torch.save({"model": state}, tmp_path / "sam2_hiera_tiny.pt")
    for config in ("t", "large"):  # the size comes from the file's trunk, not from the config asked for
        with pytest.raises(CheckpointError, match=r"SAM 2 \(2\.0\) checkpoint") as info:
            build_sam2_model(config, tmp_path / "sam2_hiera_tiny.pt", image_size=128)
        assert "use the SAM 2.1 checkpoint sam2.1_hiera_tiny.pt with config sam2.1_hiera_t" in str(info.value)


def test_unrecognised_mismatch_asks_for_the_matching_config(tiny: torch.nn.Module, tmp_path: Path) -> None:
    state = {**tiny.state_dict(), "extra.weight": torch.zeros(1)}
    torch.save({"model": state}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="1 unexpected keys") as info:
        build_sam2_model("t", tmp_path / "odd.pt", image_size=128)
    assert "probably a checkpoint for another config" in str(info.value)


def test_save_refuses_overwrite(tiny: torch.nn.Module, tiny_ckpt: Path) -> None:
    before = tiny_ckpt.read_bytes()
    with pytest.raises(FileExistsError, match=r"tiny-2\.pt"):
        save_checkpoint(tiny, tiny_ckpt)
    assert tiny_ckpt.read_bytes() == before


@torch.no_grad()
def test_small_image_size_forward_and_rope(tiny: torch.nn.Module) -> None:
    out = tiny.forward_image(torch.zeros(1, 3, SIZE, SIZE))
    assert out["vision_features"].shape == (1, 256, SIZE // 16, SIZE // 16)
    ropes = [m for m in tiny.modules() if isinstance(m, RoPEAttention)]
    assert len(ropes) == 8
    assert all(m.freqs_cis.shape[0] == (SIZE // 16) ** 2 for m in ropes)


@torch.no_grad()
@pytest.mark.filterwarnings("ignore:cannot import name '_C':UserWarning")
def test_video_predictor_at_small_size(tiny_ckpt: Path) -> None:
    video = build_sam2_model("t", tiny_ckpt, image_size=128, video=True)
    frames = bundled_video_frames()
    state = video.init_state(str(frames[0].parent))
    assert state["num_frames"] == len(frames) == 8
    video.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=[[480, 270]], labels=[1])
    seen = []
    for frame_idx, obj_ids, masks in video.propagate_in_video(state, max_frame_num_to_track=3):
        assert list(obj_ids) == [1]
        assert masks.shape == (1, 1, 540, 960)
        seen.append(frame_idx)
    assert seen == [0, 1, 2, 3]


def test_nan_checkpoint(tiny_ckpt: Path, tmp_path: Path) -> None:
    state = torch.load(tiny_ckpt, weights_only=True)["model"]
    key = "image_encoder.trunk.blocks.0.attn.qkv.weight"
    state[key] = state[key].clone()
    state[key][0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="NaN/Inf") as err:
        build_sam2_model("t", path, image_size=128)
    assert key in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU host may have SAM 2's hole-filling kernel")
def test_video_predictor_skips_hole_filling_it_cannot_run_with_sam2s_own_masks() -> None:
    """SAM 2's hole filling needs its CUDA kernel; without it SAM 2 warns per run and leaves the masks as
    they are. Our predictor turns the step off: no warning, and the very masks SAM 2 gives."""
    from sam2_quant_plugin.sam2.video import propagate

    vp = build_sam2_model("t", image_size=128, video=True)
    assert vp.fill_hole_area == 0
    clip = bundled_video_frames()[0].parent
    points = np.array([[120.0, 90.0], [300.0, 200.0]], dtype=np.float32)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ours = propagate(vp, clip, points)
    assert not [w for w in seen if "post-processing" in str(w.message)]
    vp.fill_hole_area = 8  # SAM 2.1's default: the kernel is missing here, so SAM 2 skips the step itself
    with pytest.warns(UserWarning, match="Skipping the post-processing step"):
        theirs = propagate(vp, clip, points)
    assert len(ours) == len(theirs) == len(bundled_video_frames())
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
