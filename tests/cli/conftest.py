"""Bundles shared by the CLI tests: exported once per session at 64 px (seeded random init)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sam2_quant_plugin.cli.main import main
from sam2_quant_plugin.sam2 import bundled_images


@pytest.fixture(scope="session")
def good_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "float64"
    assert main(["export", "--image-size", "64", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def quant_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("quant")
    photos = root / "photos"
    photos.mkdir()
    shutil.copy(bundled_images()[1], photos)  # calibrated on truck.jpg only
    out = root / "w8a8"
    args = ["export", "--recipe", "w8a8", "--image-size", "64", "--images", str(photos), "--out", str(out)]
    assert main(args) == 0
    return out
