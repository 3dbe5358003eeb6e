"""Writing without half-written results: temp file or directory, then an atomic rename."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .errors import UserError

log = logging.getLogger(__name__)


def _umask() -> int:
    old = os.umask(0o022)  # read once, at import (single-threaded then)
    os.umask(old)
    return old


UMASK = _umask()


def _temp_beside(path: Path, folder: bool = False) -> str:
    """A temp file (or folder) beside `path`, with the mode the user's umask gives a new one (a temp one is the
    owner's only). A place we cannot write in is a UserError naming `path`: creating the temp is the test, as
    os.access says yes to root in /proc."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{path.parent}: cannot create output directory ({e.strerror})") from None
    try:
        if folder:
            made = tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)
            os.chmod(made, 0o777 & ~UMASK)
        else:
            fd, made = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            os.fchmod(fd, 0o666 & ~UMASK)
            os.close(fd)
    except OSError as e:
        raise UserError(f"{path}: cannot write there ({e.strerror})") from None
    return made


def _file_path(path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory (give a file name)")
    return path


def check_output_file(path) -> None:
    """UserError unless `path` can be written as a file (checked before a long command, not after it)."""
    os.unlink(_temp_beside(_file_path(path)))


def check_output_dir(path) -> None:
    """UserError unless files can be written into folder `path`, before a long command (folders it had to make
    for the test are removed again)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: is a file, not a folder")
    missing = [p for p in [path, *path.parents] if not p.exists()]
    made = missing[-1] if missing else None   # the outermost folder the probe makes
    try:
        os.unlink(_temp_beside(path / ".probe"))
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", **kw):
    """Open a temp file beside `path`; rename over it only if the block succeeds."""
    path = _file_path(path)
    tmp = _temp_beside(path)
    try:
        with open(tmp, mode, **kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path):
    """Build a directory at a temp path; it replaces `path` only if the block succeeds."""
    path = Path(path)
    tmp = Path(_temp_beside(path, folder=True))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


WRITTEN = ".sketchshop-written"  # in a replaced output folder: the files the command wrote there


def _files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _first(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


@contextlib.contextmanager
def replaced_dir(path, marker: str):
    """`atomic_dir` for an output folder a command replaces whole: it must be absent, empty, or an earlier output
    of the command (it holds `marker`), never a file nor a folder of the user's; nor an earlier output to which
    files were added since (listed against its WRITTEN record): those would go with it."""
    path = Path(path)
    if path.exists() and not (path.is_dir() and (not any(path.iterdir()) or (path / marker).is_file())):
        raise UserError(f"{path}: exists and is not an earlier output (no {marker}); choose another folder")
    if (path / WRITTEN).is_file():
        ours = set((path / WRITTEN).read_text().splitlines()) | {WRITTEN}
        added = [f for f in _files_in(path) if f not in ours]
        if added:
            raise UserError(f"{path}: holds {len(added)} file(s) added since it was written, which replacing it "
                            f"would delete: {_first(added)}; move them out, or choose another folder")
    with atomic_dir(path) as tmp:
        yield tmp
        (tmp / WRITTEN).write_text("\n".join(_files_in(tmp)) + "\n")
        gone = [f for f in _files_in(path) if not (tmp / f).exists()] if path.is_dir() else []
        if gone:  # an output written before the record goes whole: say what this run did not write (a user's notes)
            log.warning("%s: replaced; %d file(s) it held that this run did not write go with it: %s", path,
                        len(gone), _first(gone))


def keep_newest(folder: Path, pattern: str, keep: int) -> None:
    """Delete all but the `keep` most recently modified files of `folder` matching `pattern` (a bounded cache).
    A file another process deletes meanwhile is no error."""
    def modified(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0
    for old in sorted(Path(folder).glob(pattern), key=modified, reverse=True)[keep:]:
        old.unlink(missing_ok=True)
