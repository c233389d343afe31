"""Write outputs somewhere temporary and rename them into place only when complete.

Temporaries are hidden (`.NAME.tmp-<pid>-<random>`) beside their target, so the rename is atomic and
a killed run never leaves anything that looks valid; the next run for the same target sweeps
the temporaries of processes that no longer exist. Finished outputs get the permissions the
user's umask asks for (mkdtemp/mkstemp would leave them 0700/0600).
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

from .errors import UserError
from .lock import exclusive


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def refuse_existing(path: Path, overwrite: bool, flag: str = "--overwrite") -> None:
    if Path(path).exists() and not overwrite:
        raise UserError(f"output {path} already exists (pass {flag} to replace it)")


def _prefix(final: Path) -> str:
    return f".{final.name}.tmp-"


def stale_temporaries(final: Path) -> list[Path]:
    """Temporaries of `final` left by killed runs (their PID is gone)."""
    if not final.parent.is_dir():
        return []
    stale = []
    for candidate in final.parent.glob(_prefix(final) + "*"):
        pid = candidate.name[len(_prefix(final)):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            stale.append(candidate)
    return stale


def sweep_stale_temporaries(final: Path) -> list[Path]:
    """Remove temporaries of `final` left by killed runs; returns them."""
    removed = stale_temporaries(final)
    for candidate in removed:
        if candidate.is_dir():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def check_writable_folder(folder: Path, flag: str) -> None:
    """Create `folder` and prove a file can be made in it, before a library's writer thread finds out
    with a traceback (os.access says yes to root, and on read-only mounts)."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"cannot write {flag} {folder}: {exc.strerror or exc}")


def _writable_parent(final: Path) -> None:
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {final.parent}: {exc.strerror}")
    if not os.access(final.parent, os.W_OK):
        raise UserError(f"cannot write to {final.parent}: permission denied")


def _temporary(final: Path, make):
    try:
        return make(prefix=f"{_prefix(final)}{os.getpid()}-", dir=final.parent)
    except OSError as exc:
        raise UserError(f"cannot write to {final.parent}: {exc.strerror}")


# A full disk, a quota, a file size limit: the output cannot be written, whatever wrote it.
NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def no_space_reason(exc: BaseException) -> str | None:
    """"No space left on device" (or a quota's, a size limit's words) when that is what `exc` comes down
    to, through Dask's and pyarrow's wrapping (pyarrow keeps the words, not the errno); else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            return exc.strerror or os.strerror(exc.errno)
        for code in NO_SPACE:
            if os.strerror(code) in str(exc):
                return os.strerror(code)
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def no_space_is_one_line(final: Path):
    """A write that fails for lack of space becomes one line naming the output, not a library's traceback."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        reason = no_space_reason(exc)
        if reason is None:
            raise
        raise UserError(f"cannot write {final}: {reason}") from None


@contextlib.contextmanager
def atomic_dir(final: Path, overwrite: bool = False):
    """Yield an empty temporary folder beside `final`; on success it becomes `final`.

    `final` is locked for the whole block, so a second run on it refuses instead of racing this one.
    """
    final = Path(final)
    _writable_parent(final)
    with exclusive(final):
        refuse_existing(final, overwrite)
        sweep_stale_temporaries(final)
        tmp = Path(_temporary(final, tempfile.mkdtemp))
        try:
            with no_space_is_one_line(final):
                yield tmp
            os.chmod(tmp, 0o777 & ~current_umask())
            if final.exists():
                shutil.rmtree(final) if final.is_dir() else final.unlink()
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(final: Path):
    """Yield a temporary path beside `final`; on success it replaces `final`."""
    final = Path(final)
    _writable_parent(final)
    sweep_stale_temporaries(final)
    fd, tmp = _temporary(final, tempfile.mkstemp)
    os.close(fd)
    try:
        with no_space_is_one_line(final):
            yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def scratch_dir(name: str, parent: Path | None = None) -> Path:
    """A private folder for a run's intermediate files in `parent` (default: the system's temporary folder),
    named as the temporaries above so that the next run sweeps the ones a killed run left; the caller removes it."""
    final = Path(parent or tempfile.gettempdir()) / name
    _writable_parent(final)
    sweep_stale_temporaries(final)
    return Path(_temporary(final, tempfile.mkdtemp))
