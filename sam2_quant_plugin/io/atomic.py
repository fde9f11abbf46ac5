"""Atomic file writes and run folders that never overwrite earlier results."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: below this much free space a failed write is reported as a full disk
FULL_DISK_BYTES = 1 << 20


def atomic_write(path: str | Path, write: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    A crash leaves either the old file or the new one, never half a file. Without ``overwrite`` an
    existing ``path`` raises :class:`FileExistsError`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        alt = path.with_name(f"{path.stem}-2{path.suffix}")
        raise FileExistsError(
            f"{path} already exists; refusing to overwrite it. Fix: pass a new name (e.g. {alt}) "
            "or delete the old file first."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:  # the bytes reach the disk before the rename makes them visible
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        if overwrite:
            os.replace(tmp, path)
        else:
            _place_exclusive(Path(tmp), path)
    except Exception as e:
        err = disk_full_error(e, path)
        if err is e:
            raise
        raise err from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _place_exclusive(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` only if no file has it: of two racing writers exactly one wins.

    ``os.link`` fails when ``path`` exists (atomically, unlike an ``exists()`` check before a rename).
    Where hard links are not supported, an ``O_EXCL`` create reserves the name before the rename.
    """
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise FileExistsError(
            f"{path} was created by another process while this one was writing it; refusing to overwrite "
            "it. Fix: write to a new name (or folder) per run."
        ) from None
    except OSError:  # no hard links on this file system (e.g. some network or FAT mounts)
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # raises FileExistsError if taken
    os.close(fd)
    os.replace(tmp, path)


def disk_full_error(exc: BaseException, path: Path) -> BaseException:
    """``exc`` as an ``OSError(ENOSPC)`` naming ``path`` when the disk is (nearly) full, else ``exc``.

    Writers such as ``torch.save`` report a full disk in their own words (``unexpected pos ...``).
    """
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return exc
    if isinstance(exc, FileExistsError):
        return exc
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return exc
    if free < FULL_DISK_BYTES:
        return OSError(errno.ENOSPC, f"No space left on device while writing {path} ({exc})", str(path))
    return exc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str, *, overwrite: bool = False) -> Path:
    return atomic_write(path, lambda p: p.write_text(text), overwrite=overwrite)


def atomic_write_json(path: str | Path, data: Any, *, overwrite: bool = False) -> Path:
    return atomic_write_text(
        path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", overwrite=overwrite
    )


def new_run_dir(root: str | Path, name: str) -> Path:
    """Create ``root/<UTC timestamp>_<name>`` (with a numeric suffix if taken); never reuses a folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for i in range(1000):
        d = root / (f"{stamp}_{name}" + (f"-{i}" if i else ""))
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a fresh run folder under {root}")
