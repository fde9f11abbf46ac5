"""The encoder's trunk is judged by its block count (quantized files keep no patch-embedding weight name)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from sam2_quant_plugin.errors import BundleError
from sam2_quant_plugin.sam2.bundle_checks import TRUNK_BLOCKS, check_trunk


def _encoder_with_blocks(n: int) -> onnx.ModelProto:
    inits = [
        numpy_helper.from_array(np.zeros(1, np.int8), f"image_encoder.trunk.blocks.{i}.mlp.layers.0.weight_q")
        for i in range(n)
    ]
    graph = helper.make_graph([], "enc", [], [], initializer=inits)
    return helper.make_model(graph)


@pytest.mark.parametrize(("config", "blocks"), list(TRUNK_BLOCKS.items()))
def test_each_config_accepts_its_trunk_and_names_the_right_one_for_another(config: str, blocks: int) -> None:
    check_trunk(_encoder_with_blocks(blocks), Path("encoder.onnx"), config)
    other = next(c for c in TRUNK_BLOCKS if c != config)
    with pytest.raises(BundleError, match=re.escape(f"set config to '{config}'")):
        check_trunk(_encoder_with_blocks(blocks), Path("encoder.onnx"), other)


def test_a_count_no_config_has_is_not_evidence() -> None:
    check_trunk(_encoder_with_blocks(11), Path("encoder.onnx"), "sam2.1_hiera_t")  # names changed: no verdict
    check_trunk(_encoder_with_blocks(0), Path("encoder.onnx"), "sam2.1_hiera_l")
