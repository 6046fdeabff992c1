"""What went wrong with an input, in one line: the file, what is wrong, the fix.

Every ``ltxic`` command runs through one wrapper (``ltxic.cli.main``) that passes any exception to
:func:`input_error_message`. Errors about an input (a file, a folder, a disk, a setting) become one message and a
non-zero exit; anything else is a bug and keeps its traceback. Errors raised by ltxic itself say they are about an
input by deriving from :class:`InputError`; errors of Python and the libraries (``OSError``, ``UnicodeDecodeError``,
PIL's ``DecompressionBombError``, pathlib's symlink-loop ``RuntimeError``, the writers' "no space" errors) are
recognised here by type.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


class InputError(Exception):
    """Base of ltxic's errors about an input; its message already names the file, what is wrong and the fix."""


# "No space" as the writers report it: OSError (errno), safetensors ("os error 28"), libsndfile, torch's zip writer
_NO_SPACE_WORDS = ("no space left", "os error 28", "disk full", "disk quota exceeded", "os error 122")
_WRITE_FAILURE_WORDS = ("file write failed", "unexpected pos", "error writing", "write error", "failed writing")
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and the exceptions it was raised from, outermost first."""
    out: list[BaseException] = []
    while err is not None and err not in out:
        out.append(err)
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return out


def is_disk_full(err: BaseException) -> bool:
    """True when ``err`` (or what it was raised from) says the disk or the quota is full."""
    for e in _chain(err):
        if isinstance(e, OSError) and e.errno in _DISK_ERRNOS:
            return True
        if any(word in str(e).lower() for word in _NO_SPACE_WORDS):
            return True
    return False


def is_write_failure(err: BaseException) -> bool:
    """True for a library's error about a failed write (torch's zip writer, libsndfile, safetensors, PyAV).

    These do not carry an errno; a writer that sees one is out of disk space in practice (or out of quota), so the
    callers that were writing treat it as a full disk and say how much space is left."""
    if is_disk_full(err):
        return True
    for e in _chain(err):
        if isinstance(e, OSError):
            continue
        name = type(e).__name__
        text = str(e).lower()
        if name in ("LibsndfileError", "SafetensorError") or any(word in text for word in _WRITE_FAILURE_WORDS):
            return True
    return False


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Free bytes on the disk holding ``path`` (its nearest existing parent), or None if unknown."""
    p = Path(path)
    for candidate in (p, *p.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def human_bytes(n: float, digits: int = 1) -> str:
    """``n`` bytes in decimal units with ``digits`` decimals: ``human_bytes(46.15e9, 2) == "46.15 GB"``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.{digits}f} {unit}"
        n /= 1000
    return f"{n:.{digits}f} TB"


def disk_full_message(path: str | os.PathLike[str], needed: int | None = None,
                      intact: str = "The previous file, if any, is intact.") -> str:
    """One line for a full disk while writing ``path``: free space, the space needed when known, the fix."""
    free = free_bytes(Path(path).parent)
    have = f"{human_bytes(free)} free" if free is not None else "free space unknown"
    need = f", about {human_bytes(needed)} needed" if needed else ""
    return f"{path}: disk full while writing ({have}{need}); free some space or write somewhere else. {intact}"


def _filename(err: OSError) -> str:
    return str(err.filename) if err.filename is not None else "(a file)"


def _os_error_message(err: OSError) -> str | None:
    name = _filename(err)
    if is_disk_full(err):
        return str(err) if isinstance(err, InputError) else disk_full_message(name)
    fixes = {
        errno.ENOENT: "not found; check the path (relative paths start at the current folder)",
        errno.EACCES: "permission denied; give your user read (or write) access, e.g. chmod u+rw, or use another path",
        errno.EPERM: "operation not permitted; give your user access to it or use another path",
        errno.ELOOP: "a symbolic link loop (the link points back to itself); replace the link by the real file",
        errno.EISDIR: "is a folder, a file was expected; give the file's path",
        errno.ENOTDIR: "a part of the path is a file, not a folder; fix the path",
        errno.EROFS: "on a read-only file system; write somewhere else",
        errno.ENAMETOOLONG: "the path is too long; use a shorter path",
        errno.EMFILE: "too many open files; raise the limit (ulimit -n) and run again",
        errno.EIO: "the disk reported an input/output error; copy the file to a healthy disk",
    }
    fix = fixes.get(err.errno) if err.errno is not None else None
    if fix is None:
        return None
    return f"{name}: {fix}."


def input_error_message(err: BaseException) -> str | None:
    """One line (or a short list) for an error about an input; ``None`` for an unexpected error (a bug).

    ltxic's own :class:`InputError` subclasses carry their message; the others are recognised by type."""
    if isinstance(err, InputError):
        return str(err)
    if isinstance(err, UnicodeDecodeError):
        where = getattr(err, "ltxic_path", None) or "a text file"
        return (f"{where}: not valid UTF-8 text (byte {err.object[err.start:err.start + 1]!r} at offset {err.start}); "
                "re-save it as UTF-8.")
    if type(err).__name__ == "DecompressionBombError":
        return (f"an image is larger than Pillow opens safely ({err}); resize it below 8000x8000 pixels, "
                "e.g. `convert in.png -resize 2048x2048 out.png`.")
    if isinstance(err, RuntimeError) and "symlink loop" in str(err).lower():
        return f"{str(err).split('from', 1)[-1].strip()}: a symbolic link loop; replace the link by the real file."
    if isinstance(err, OSError):
        return _os_error_message(err)
    if is_disk_full(err):
        return f"disk full while writing ({err}); free some space or write somewhere else."
    return None
