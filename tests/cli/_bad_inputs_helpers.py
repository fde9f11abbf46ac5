"""Builders for ``test_bad_inputs.py``: damaged bundles, crafted files and tmpfs mounts."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def copy_bundle(good: Path, dst: Path, *, manifest: Any = None, raw_manifest: str | None = None) -> Path:
    """``dst``: hard links to ``good``'s files (so no 100 MB copies), with a replaced manifest if given."""
    dst.mkdir(parents=True)
    for f in good.iterdir():
        os.link(f, dst / f.name)
    if manifest is not None or raw_manifest is not None:
        (dst / "manifest.json").unlink()
        (dst / "manifest.json").write_text(raw_manifest if raw_manifest is not None else json.dumps(manifest))
    return dst


def edit_manifest(good: Path, dst: Path, **changes: Any) -> Path:
    m = json.loads((good / "manifest.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(m.get(key), dict):
            m[key] = {**m[key], **value}
        else:
            m[key] = value
    return copy_bundle(good, dst, manifest=m)


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` as a new file (never through a hard link shared with the good bundle)."""
    path.unlink()
    path.write_bytes(data)


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width`` x ``height`` pixels (PIL checks the size before decoding anything)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    return path


def onnx_with_outside_data(path: Path) -> Path:
    """A one-node ONNX model whose initializer's external data is ``../../outside.bin``."""
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../outside.bin"), ("offset", "0"), ("length", "4")):
        w.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Add", ["image", "w"], ["out"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 64, 64])],
        [w],
    )
    path.write_bytes(helper.make_model(graph).SerializeToString())
    return path


@contextmanager
def tmpfs(where: Path, *, size: str, read_only: bool = False) -> Iterator[Path | None]:
    """A small tmpfs at ``where`` (root only); yields None where mounting is not allowed."""
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    ok = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield where if ok else None
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
