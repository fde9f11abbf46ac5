"""The wheel as a user gets it: build it, install it outside the checkout, export with the shipped profiles.

The wheel is built from a copy of the project (the checkout stays clean) and installed with
``pip install --no-deps --target``; its dependencies come from the running environment. The commands run
from a folder outside the checkout with ``PYTHONPATH`` set to the install folder only, so the package is the
wheel's (asserted), not the checkout or an editable install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What the build reads; the package's qconfigs/ and profiles/ are symlinks into qconfigs/ and export/.
SOURCES = ("pyproject.toml", "README.md", "sam2_quant_plugin", "qconfigs", "export")
PROFILE_FILES = {
    "cuda_int4_fp16": {"encoder", "decoder", "encoder_fp16", "decoder_fp16"},
    "cpu_w8a8": {"encoder", "decoder"},
}

pytestmark = [pytest.mark.slow, pytest.mark.onnx]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The install folder of a freshly built wheel (package, dist-info and ``bin/sam2-quant``)."""
    for mod in ("pip", "setuptools", "onnxruntime"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    dist = tmp / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)], cwd=tmp)
    (wheel,) = dist.glob("sam2_quant_plugin-*.whl")
    target = tmp / "site"
    _run([*pip, "install", "--no-deps", "--no-compile", "-q", "--target", str(target), str(wheel)], cwd=tmp)
    return target


def _cli(installed: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(installed)  # before site-packages, so it shadows an editable install
    return _run([str(installed / "bin" / "sam2-quant"), *args], cwd=cwd, env=env)


def test_wheel_ships_profiles_and_recipes(installed: Path, tmp_path: Path) -> None:
    pkg = installed / "sam2_quant_plugin"
    profiles = {p.name for p in (pkg / "profiles").glob("*.yaml")}
    assert profiles == {p.name for p in (ROOT / "export" / "profiles").glob("*.yaml")}
    assert not (pkg / "profiles").is_symlink()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(installed)
    code = "import sam2_quant_plugin as m; print(m.__file__)"
    proc = _run([sys.executable, "-c", code], cwd=tmp_path, env=env)
    assert Path(proc.stdout.strip()).resolve() == (pkg / "__init__.py").resolve()
    listing = _cli(installed, "inspect", "--list", cwd=tmp_path).stdout
    shipped = sorted(p.stem for p in (ROOT / "qconfigs" / "sam2.1_hiera_t").glob("*.yaml"))
    assert shipped
    for name in shipped:
        assert f"sam2.1_hiera_t/{name} " in listing


@pytest.mark.parametrize("profile", sorted(PROFILE_FILES))
def test_export_with_shipped_profile(installed: Path, tmp_path: Path, profile: str) -> None:
    out = tmp_path / "bundle"
    _cli(installed, "export", "--profile", profile, "--image-size", "64", "--out", str(out), cwd=tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == PROFILE_FILES[profile]
    for name in manifest["files"].values():
        assert (out / name).stat().st_size > 0
    assert manifest["image_size"] == 64
    assert manifest["recipe"] == {"cuda_int4_fp16": "mixed", "cpu_w8a8": "w8a8"}[profile]
