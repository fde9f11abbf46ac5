"""Image files: read one (RGB uint8), list a folder, and the photos and video frames shipped with the package.

Nothing here knows a model; each model family turns these arrays into its own input (SAM 2:
:func:`sam2_quant_plugin.sam2.preprocess.to_model_input`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

PathLike = str | os.PathLike[str]


def load_image(path: PathLike) -> np.ndarray:
    """Read an image file as an ``HxWx3`` uint8 RGB array (what ``SAM2ImagePredictor.set_image`` takes).

    A photo's EXIF orientation is applied (phones store portrait shots sideways with a rotate tag), so the
    array, the point prompts given in its pixels and the written masks are the way up a viewer shows them.
    Video frames are read by SAM 2's own loader, which does not rotate them.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file not found: {path}. Fix: check the path (jpg, jpeg or png expected).")
    try:
        with Image.open(path) as img:
            if img.mode.startswith("I"):  # 16-bit grey PNGs: scale to 8 bits (convert("RGB") clips at 255)
                return _wide_grey_to_rgb(np.asarray(img))
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    except Image.DecompressionBombError as exc:
        raise DataError(
            f"image {path} is too large to read safely ({exc}). Fix: downscale it (SAM 2 resizes every "
            "photo to the model input size anyway)."
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(
            f"cannot read image {path}: {exc}. Fix: replace or remove the file; it is corrupt or not "
            "an image (jpg, jpeg or png expected)."
        ) from exc
    return np.asarray(rgb, dtype=np.uint8).copy()


def _wide_grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """A 16-bit (or 32-bit integer) grey image as uint8 RGB, scaled from 0..65535 (values above clip)."""
    scaled = np.clip(np.rint(grey.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    return np.repeat(scaled[..., None], 3, axis=2)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder_or_files: PathLike | Iterable[PathLike]) -> list[Path]:
    """Sorted jpg/jpeg/png paths from a folder (not recursive), one file, or a list of files.

    Raises ``DataError`` when a path is missing or when no image is found.
    """
    if isinstance(folder_or_files, (str, os.PathLike)):
        root = Path(folder_or_files)
        if root.is_dir():
            found = [p for p in root.iterdir() if p.is_file() and _is_image(p)]
            where = f"folder {root}"
        elif root.is_file():
            found = [root] if _is_image(root) else []
            where = f"file {root}"
        else:
            raise DataError(f"image path not found: {root}. Fix: pass an existing folder or image file.")
    else:
        found = []
        for item in folder_or_files:
            path = Path(item)
            if not path.is_file():
                raise DataError(
                    f"image file not found: {path}. Fix: check the path or drop it from the list."
                )
            if _is_image(path):
                found.append(path)
        where = "the given file list"
    if not found:
        raise DataError(
            f"no images found in {where}. Fix: point at .jpg, .jpeg or .png files "
            "(or omit the option to use the bundled photos)."
        )
    return sorted(found)


def _asset_files(*parts: str) -> list[Path]:
    folder = resources.files("sam2_quant_plugin") / "assets"
    for part in parts:  # one part at a time: namespace-package paths join a single name only
        folder = folder / part
    folder = Path(str(folder))
    if not folder.is_dir():
        raise DataError(
            f"bundled assets folder {folder} is missing. Fix: reinstall sam2-quant-plugin "
            "(the package data was not installed) or pass your own images."
        )
    return list_images(folder)


def bundled_images() -> list[Path]:
    """The real photos shipped with the package (``assets/images``: groceries.jpg, truck.jpg)."""
    return _asset_files("images")


def _is_jpeg(path: Path) -> bool:
    return path.suffix.lower() in (".jpg", ".jpeg")


def _clip_hint(folder: Path) -> str | None:
    """The fix for a folder that holds clips rather than frames: an SA-V root, or a folder of clip folders."""
    from .sav import sav_layout  # sav reads IMAGE_SUFFIXES from here: import when needed

    layout = sav_layout(folder)
    where = layout[0] if layout else folder
    clips = sorted(d for d in where.iterdir() if d.is_dir() and any(_is_jpeg(f) for f in d.iterdir()))
    if not clips:
        return None
    what = (
        f"is an SA-V root (one clip per folder in {where.name}/)"
        if layout
        else f"holds {len(clips)} clip folders"
    )
    extra = (
        " (`sam2-quant cdpq --images` takes the whole root, with prompts from its masks)" if layout else ""
    )
    return f"It {what}: a video option takes one clip. Fix: pass one of them, e.g. {clips[0]}{extra}."


def video_frames(video_dir: str | Path) -> list[Path]:
    """The JPEG frames of a clip folder in frame order; a named :class:`DataError` when SAM 2's video
    reader would not take it (missing folder, no ``*.jpg``, names that are not frame numbers, a frame whose
    header cannot be read, frames of different sizes)."""
    folder = Path(video_dir)
    fix = "Fix: pass a folder of JPEG frames named by frame number (00000.jpg, 00001.jpg, ...)."
    if not folder.is_dir():
        raise DataError(f"video folder not found: {folder}. {fix}")
    frames = [p for p in folder.iterdir() if _is_jpeg(p)]
    if not frames:
        raise DataError(f"video folder {folder} holds no .jpg/.jpeg frame. {_clip_hint(folder) or fix}")
    odd = [p.name for p in frames if not p.stem.isdigit()]
    if odd:
        raise DataError(f"video folder {folder}: {odd[:3]} are not frame numbers. {fix}")
    frames = sorted(frames, key=lambda p: int(p.stem))
    sizes = {p: _frame_size(p) for p in frames}  # headers only: cheap, and before any model work
    first = frames[0]
    for p in frames[1:]:
        if sizes[p] != sizes[first]:
            (w0, h0), (w1, h1) = sizes[first], sizes[p]
            raise DataError(
                f"video folder {folder}: frames differ in size ({first.name} is {w0}x{h0}, {p.name} is "
                f"{w1}x{h1}). Fix: resize every frame of the clip to one size (SAM 2 tracks one frame size)."
            )
    return frames


def _frame_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from a frame's header, or a :class:`DataError` naming the frame and the fix."""
    try:
        with Image.open(path) as img:
            return img.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise DataError(
            f"video frame {path} cannot be read ({type(exc).__name__}: {exc}). Fix: replace or remove it "
            "(every frame must be a readable JPEG image of the clip's size)."
        ) from None


def bundled_video_frames() -> list[Path]:
    """The 8 bundled frames of SAM 2's "bedroom" clip (``assets/video/bedroom``), in frame order."""
    return _asset_files("video", "bedroom")
