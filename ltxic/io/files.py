"""Small file-system helpers shared by every module that writes: nothing half-written survives a crash."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ltxic.io.errors import InputError, disk_full_message, is_write_failure


class DiskFullError(InputError, OSError):
    """Raised instead of a bare ENOSPC (or a library's "write failed"): names the file, the space and what to do."""

    needed_bytes: int | None = None

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def disk_full(path: Path, err: BaseException, needed_bytes: int | None = None, intact: str | None = None) -> DiskFullError:
    """The :class:`DiskFullError` for a failed write of ``path`` (``needed_bytes``: an inner one's if not given)."""
    if needed_bytes is None:
        needed_bytes = next((e.needed_bytes for e in (err, err.__cause__) if isinstance(e, DiskFullError)), None)
    full = DiskFullError(errno.ENOSPC, disk_full_message(path, needed_bytes, *(() if intact is None else (intact,))))
    full.needed_bytes = needed_bytes
    return full


def new_temp_file(path: Path) -> Path:
    """Create an empty temp file beside ``path``, with the permissions the user's umask gives a new file.

    (``tempfile.mkstemp`` creates mode 0600 whatever the umask; the renamed file would keep it.)
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")  # the suffix picks the format
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as err:  # name the folder the user can fix, not the temp name
            raise type(err)(err.errno, f"{err.strerror} (writing {path.name} there)", str(path.parent)) from err
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, f"no free temp name beside {path}", str(path))


def _commit(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], needed_bytes: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path`` in one step.

    A crash, a full disk or any exception leaves the previous ``path`` untouched and removes the temp file. A full
    disk (``ENOSPC`` or a library's failed write: torch, safetensors, libsndfile, PyAV) raises
    :class:`DiskFullError` naming the file, the free space and ``needed_bytes`` when the caller knows it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_temp_file(path)
    try:
        yield tmp
        _commit(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, Exception) and not isinstance(err, DiskFullError) and is_write_failure(err):
            raise disk_full(path, err, needed_bytes) from err
        raise


class StagedFiles:
    """Temp files standing in for several final paths; see :func:`staged_files`."""

    def __init__(self) -> None:
        self.pending: list[tuple[Path, Path]] = []

    def path(self, final: str | os.PathLike[str]) -> Path:
        """A temp path to write ``final``'s new content to; it replaces ``final`` when the whole set is written."""
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = new_temp_file(final)
        self.pending.append((tmp, final))
        return tmp


@contextlib.contextmanager
def staged_files() -> Iterator[StagedFiles]:
    """Write several files as one change: all go to temp files first, then all are renamed into place.

    Renames take no space, so a full disk (or any error) while writing leaves every previous file as it was and
    removes the temp files.
    """
    stage = StagedFiles()
    try:
        yield stage
        for tmp, _ in stage.pending:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
    except BaseException as err:
        for tmp, _ in stage.pending:
            tmp.unlink(missing_ok=True)
        if isinstance(err, Exception) and is_write_failure(err) and stage.pending:
            # name the file being written, not its temp name
            final = next((f for tmp, f in stage.pending if tmp.name in str(err)), stage.pending[-1][1])
            raise disk_full(final, err, intact="No file of this change was written; the previous ones are intact.") from err
        raise
    for tmp, final in stage.pending:
        os.replace(tmp, final)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write JSON (indented, UTF-8, trailing newline) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return Path(path)


def sha256_file(path: str | os.PathLike[str], chunk: int = 8 * 1024 * 1024) -> str:
    """Hex sha256 of a file, read in chunks (constant memory for 40 GB checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
