"""Read a file written by ``torch.save`` (tensors only), or a :class:`CheckpointError` naming what broke.

Every reader of this package's ``.pt`` files (``load_quantized``, CDPQ packages, CDPQ resume folders)
goes through :func:`load_torch_file`, so a missing, truncated, foreign or pickled-object file is one
clear line with the caller's fix, never a torch traceback.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError


def load_torch_file(path: str | os.PathLike[str], *, fix: str) -> Any:
    """``torch.load(path, weights_only=True)``; a failure is a ``CheckpointError`` ending in fix."""
    path = Path(path)
    if not path.is_file():
        why = "no such file" if not path.exists() else "it is a folder, not a file"
        raise CheckpointError(f"{path} cannot be loaded: {why}. Fix: {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many kinds: zip, pickle, struct, storage, OS errors
        raise CheckpointError(f"{path} cannot be loaded: {_why(path, e)}. Fix: {fix}") from None


def load_torch_dict(path: str | os.PathLike[str], *, what: str, fix: str) -> dict[Any, Any]:
    """:func:`load_torch_file` for a file that must hold a dict (``what`` names it in the error)."""
    blob = load_torch_file(path, fix=fix)
    if not isinstance(blob, dict):
        raise CheckpointError(f"{path} holds a {type(blob).__name__}, not {what}. Fix: {fix}")
    return blob


def _why(path: Path, error: BaseException) -> str:
    if path.stat().st_size == 0:
        return "the file is empty (0 bytes)"
    if not zipfile.is_zipfile(path):
        return "it is not a torch.save archive (corrupt, truncated, or another format)"
    first = " ".join(str(error).split()).split(". ")[0]  # torch's first sentence says what broke
    if isinstance(error, pickle.UnpicklingError):
        return f"it holds Python objects other than tensors and plain containers ({first:.160})"
    return f"{type(error).__name__}: {first:.200}"
