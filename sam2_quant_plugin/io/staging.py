"""Output folders that appear whole or not at all.

A command writes into ``.<name>.partial-XXXX`` beside the final folder and renames it into place when
everything is written; on failure the partial folder is removed. So no half-written, empty or mixed
folder is ever left where a finished one is expected, and of two writers racing on one name exactly one
wins (a rename onto a non-empty folder fails).

Two forms: :func:`staged_dir` (a context manager, or :func:`staged_output` as a decorator) for library
code, and :func:`new_staged_run_dir` / :func:`publish_run_dir` for commands, whose partial folders
:func:`discard_staged` removes when the command fails (``sam2-quant`` calls it after every command).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
PARTIAL = ".partial-"
_OPEN: dict[Path, Path] = {}  # partial folder -> the final name it was meant for
F = TypeVar("F", bound=Callable[..., Any])


def refuse_non_empty(final: Path, flag: str = "--out") -> None:
    """Raise ``FileExistsError`` when ``final`` exists and is not an empty folder."""
    if final.is_dir() and not any(final.iterdir()):
        return
    if final.exists() or final.is_symlink():
        what = "a file" if not final.is_dir() else "a folder that is not empty"
        raise FileExistsError(
            f"{final} is {what}; refusing to write into it (nothing is ever overwritten or mixed). "
            f"Fix: pass a new folder name as {flag}, or delete the old one first."
        )


_MADE: dict[Path, list[Path]] = {}  # partial folder -> parent folders created for it (removed with it)


def _partial(final: Path) -> Path:
    made = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}{PARTIAL}", dir=final.parent))
    _MADE[tmp] = made
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700 folders; give the usual permissions
    return tmp


def _remove(tmp: Path) -> None:
    """Remove a partial folder and the parents created for it, if they are empty now."""
    shutil.rmtree(tmp, ignore_errors=True)
    for parent in _MADE.pop(tmp, []):
        try:
            parent.rmdir()
        except OSError:
            break


def publish(tmp: Path, final: Path) -> Path:
    """Rename the finished folder ``tmp`` to ``final`` (which must be absent or an empty folder)."""
    try:
        os.rename(tmp, final)  # atomic; replaces an empty folder, fails on a non-empty one
        _MADE.pop(tmp, None)
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise FileExistsError(
                f"{final} was filled by another process while this one was writing it; this run's "
                "output is discarded. Fix: give each run its own output folder."
            ) from None
        if e.errno in (errno.EBUSY, errno.EINVAL):
            raise FileExistsError(
                f"cannot rename the finished output into {final} (it is in use, e.g. the current "
                "folder). Fix: pass a new folder name, e.g. --out bundles/new."
            ) from None
        raise
    return final


@contextmanager
def staged_dir(final: str | Path) -> Iterator[Path]:
    """Yield a partial folder beside ``final``; rename it to ``final`` on success, remove it on error."""
    final = Path(final)
    refuse_non_empty(final)
    tmp = _partial(final)
    try:
        yield tmp
        publish(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def staged_output(func: F) -> F:
    """Decorator for ``func(obj, out_dir, ...)``: it writes into a partial folder renamed to ``out_dir``."""

    @functools.wraps(func)
    def wrapper(obj: Any, out_dir: str | Path, *args: Any, **kwargs: Any) -> Any:
        with staged_dir(out_dir) as tmp:
            return func(obj, tmp, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _fresh_name(root: Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for i in range(1000):
        d = root / (f"{stamp}_{name}" + (f"-{i}" if i else ""))
        if not d.exists() and d not in _OPEN.values():
            return d
    raise FileExistsError(f"could not find a fresh run folder name under {root}. Fix: clean up {root}.")


def new_staged_run_dir(root: str | Path, name: str) -> Path:
    """A partial run folder under ``root``; :func:`publish_run_dir` gives it ``root/<UTC stamp>_<name>``."""
    root = Path(root)
    final = _fresh_name(root, name)
    tmp = _partial(final)
    _OPEN[tmp] = final
    return tmp


def final_name(partial: Path) -> Path:
    """The name :func:`publish_run_dir` will (try to) give ``partial``."""
    return _OPEN.get(Path(partial), Path(partial))


def publish_run_dir(partial: Path) -> Path:
    """Rename a partial run folder to its fresh final name (a new suffix if that was taken meanwhile)."""
    partial = Path(partial)
    first = _OPEN.pop(partial)
    for i in range(100):
        final = first if i == 0 else first.with_name(f"{first.name}-r{i}")
        try:
            return publish(partial, final)
        except FileExistsError:
            continue
    _remove(partial)
    final = first
    raise FileExistsError(f"could not rename {partial} to a fresh run folder. Fix: clean up {final.parent}.")


def discard_staged() -> list[Path]:
    """Remove every partial run folder not yet published (after a failed command); returns them."""
    gone = list(_OPEN)
    for tmp in gone:
        _remove(tmp)
        log.debug("removed partial output %s", tmp)
    _OPEN.clear()
    return gone
