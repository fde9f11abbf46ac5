"""Which photos a model was calibrated on: a record for the manifest (names + SHA-256), and its lookup.

``validate`` must rebuild its PyTorch reference with the calibration photos of the bundle, not with the
photos it measures parity on, or it compares against a different model.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import BundleError
from .images import video_frames

log = logging.getLogger(__name__)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe_photos(
    paths: Sequence[Path], *, bundled: bool, video: str | Path | None = None
) -> dict[str, Any]:
    """The manifest's ``calibration`` record of ``paths`` (in calibration order) and of the user's clip."""
    record: dict[str, Any] = {"bundled": bundled}
    record["images"] = [{"name": Path(p).name, "sha256": sha256(Path(p))} for p in paths]
    if video is not None:
        record["video"] = describe_video(video)
    return record


def find_photos(record: Any, candidates: Sequence[Path], flag: str = "--calib-images") -> list[Path]:
    """The recorded calibration photos among ``candidates`` (matched by SHA-256), in recorded order."""
    try:
        wanted = [(str(i["name"]), str(i["sha256"])) for i in record["images"]]
    except (TypeError, KeyError) as e:
        raise BundleError(
            f"manifest.json 'calibration' is malformed ({e!r}). Fix: export the bundle again."
        ) from None
    by_digest = {sha256(p): p for p in candidates}
    missing = [name for name, digest in wanted if digest not in by_digest]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise BundleError(
            f"the bundle was calibrated on {len(wanted)} photo(s); {shown} (by content) not found among "
            f"the {len(candidates)} given. Fix: pass {flag} FOLDER holding the photos export calibrated on."
        )
    return [by_digest[d] for _, d in wanted]


def reference_photos(
    manifest: dict[str, Any], calib_folder: str | None, parity: Sequence[Path]
) -> list[Path]:
    """The photos to calibrate ``validate``'s PyTorch reference on: those the bundle recorded.

    Bundled photos are found in the package; others in ``calib_folder`` (else among the parity photos).
    A float bundle needs none (empty list); a bundle written before the record uses ``parity`` (warned).
    """
    from .images import bundled_images, list_images

    if not manifest.get("recipe"):
        return []
    record = manifest.get("calibration")
    if record is None:
        log.warning(
            "manifest.json does not record the calibration photos (older bundle): the reference is "
            "calibrated on the parity photos, which may differ from export's. Re-export to record them."
        )
        return list(parity)
    if isinstance(record, dict) and record.get("bundled"):
        return find_photos(record, bundled_images())
    return find_photos(record, list_images(calib_folder) if calib_folder else list(parity))


def describe_video(folder: str | Path) -> dict[str, Any]:
    """The manifest's record of a calibration clip: its folder and every frame (name + SHA-256, in order)."""
    frames = video_frames(folder)
    return {
        "folder": str(Path(folder).resolve()),
        "frames": [{"name": p.name, "sha256": sha256(p)} for p in frames],
    }


def reference_video(manifest: dict[str, Any], calib_video: str | None) -> Path | None:
    """The clip export calibrated on (``calibration.video`` of the manifest), checked frame by frame.

    None when the bundle recorded no clip of the user's (a recipe over memory layers then calibrates on the
    bundled clip, as export did). The recorded folder is used unless ``calib_video`` names another.
    """
    record = (manifest.get("calibration") or {}).get("video") if manifest.get("recipe") else None
    if record is None:
        return None
    folder = Path(calib_video or record.get("folder", ""))
    fix = "Fix: pass --calib-video FOLDER holding the frames export calibrated on."
    if not folder.is_dir():
        raise BundleError(f"the bundle was calibrated on the clip {record.get('folder')}, not found. {fix}")
    if describe_video(folder)["frames"] != record.get("frames"):
        raise BundleError(
            f"the frames in {folder} differ from those export calibrated on (by content). {fix}"
        )
    return folder
