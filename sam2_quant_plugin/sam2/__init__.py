"""SAM 2 glue: model building, checkpoints, preprocessing, encode/decode helpers and exportable RoPE."""

from sam2_quant_plugin.sam2.build import build_sam2_model, make_image_predictor, save_checkpoint
from sam2_quant_plugin.sam2.forward import decode, encode, point_grid
from sam2_quant_plugin.sam2.names import COMPONENTS, CONFIGS, config_short_name, resolve_config
from sam2_quant_plugin.sam2.preprocess import (
    bundled_images,
    bundled_video_frames,
    list_images,
    load_image,
    to_model_input,
)
from sam2_quant_plugin.sam2.rope import (
    RealRoPEAttention,
    apply_rotary_enc_real,
    axial_rope_cos_sin,
    patch_real_rope,
)

__all__ = [
    "COMPONENTS",
    "CONFIGS",
    "RealRoPEAttention",
    "apply_rotary_enc_real",
    "axial_rope_cos_sin",
    "build_sam2_model",
    "bundled_images",
    "bundled_video_frames",
    "config_short_name",
    "decode",
    "encode",
    "list_images",
    "load_image",
    "make_image_predictor",
    "patch_real_rope",
    "point_grid",
    "resolve_config",
    "save_checkpoint",
    "to_model_input",
]
