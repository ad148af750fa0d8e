"""Every file Brie Bench writes goes through here: whole or not at all, never through a link, never over the database.

Writing a report or a model card in place loses data whenever the write stops
halfway: a full disk left a user's README.md cut at 128 KiB, a `kill -9` left
half a report. So a file is written to a temporary file in the same folder
(the same file system, so the rename cannot turn into a copy), flushed,
fsynced, and renamed over the target in one step; on any failure (ENOSPC,
EIO, an exception, Ctrl-C) the temporary file is removed and the old target is
left exactly as it was. The temporary file is a hidden `.NAME.XXXXXXXXXXXX.tmp`
next to the target: a `kill -9` mid-write (which no code can clean up after)
leaves that file, never a partial target and never a file that looks like one.
(Linux's unnamed `O_TMPFILE` would leave nothing, but linking it into place
goes through /proc and fails in some sandboxes, so it is not used.)

Two targets are refused before anything is written (one line, exit 2):

* a symbolic link, unless the command was given `--follow-symlinks`: a planted
  `README.md -> ~/.bashrc` must not make the tool write outside the folder the
  user named (with the flag, the file the link points to is replaced and the
  link kept);
* the database the command has open, or its `-wal`, `-shm` or `-journal` file,
  however the path is spelt (`export --csv -o brie-bench.db` would destroy
  every stored result).
"""

from __future__ import annotations

import io
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TextIO, cast

from brie_bench.errors import InputError

#: The files that together make up one SQLite database in WAL (or rollback) mode.
DATABASE_SUFFIXES = ("", "-wal", "-shm", "-journal")
#: The write buffer: large enough that a 150 MB report is a few hundred system calls.
BUFFER_BYTES = 1024 * 1024
#: How many bytes of the target's name the temporary file's name keeps (NAME_MAX is 255 bytes).
_NAME_KEEP = 200


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: by inode when both exist, else by their resolved spelling."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def is_database(path: str | Path, db: str | Path) -> bool:
    """Whether `path` is the database `db` or one of its companion files (-wal, -shm, -journal)."""
    return any(_same_file(str(path), str(db) + suffix) for suffix in DATABASE_SUFFIXES)


def check_target(path: str | Path, *, db: str | Path | None = None, follow_symlinks: bool = False) -> Path:
    """The file to replace for `path`, or InputError (exit 2) when writing there is refused.

    Called by every writer before it writes (and by commands before expensive
    rendering, so a refused target costs nothing). With `follow_symlinks`, a
    link's final target is returned, and the link itself stays.
    """
    target = Path(path)
    if os.path.islink(target):
        if not follow_symlinks:
            raise InputError("is a symbolic link: refusing to write through it (remove the link, or pass "
                             "--follow-symlinks to replace the file it points to)", path=str(path))
        target = Path(os.path.realpath(target))
    if db is not None and is_database(target, db):
        raise InputError(f"is the database this command uses ({db}): refusing to write over it; choose another "
                         "output file", path=str(path))
    if os.path.isdir(target):  # (False, not an error, for a name the file system cannot hold)
        raise InputError("is a folder, not a file", path=str(path))
    return target


class _Raw(io.RawIOBase):
    """The temporary file's descriptor as a raw stream: every byte goes out through `os.write`.

    (A plain FileIO would do the same in C; this keeps the one system call that
    can fail with ENOSPC in Python, where a test can make it fail halfway.)
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        return os.write(self.fd, b)

    def fileno(self) -> int:
        return self.fd


def _temp_name(folder: Path, name: str) -> Path:
    keep = os.fsencode(name)[:_NAME_KEEP].decode(errors="ignore")  # bytes, not characters, count against NAME_MAX
    return folder / f".{keep}.{secrets.token_hex(6)}.tmp"


def _open_named(folder: Path, name: str) -> tuple[int, Path]:
    """A new hidden temporary file next to the target (never an existing file, never through a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = _temp_name(folder, name)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: some file systems cannot fsync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: str | Path, *, encoding: str = "utf-8", newline: str | None = None,
                db: str | Path | None = None, follow_symlinks: bool = False) -> Iterator[TextIO]:
    """Open `path` for writing text; the target changes only when the `with` block ends without an exception.

    `newline` is as for `open` (pass "" to write line endings exactly as
    given). Refusals are InputError; a failed write is the OSError itself,
    after the temporary file is removed and with the old target untouched.
    """
    with _atomic(path, binary=False, encoding=encoding, newline=newline, db=db,
                 follow_symlinks=follow_symlinks) as stream:
        yield cast(TextIO, stream)


@contextmanager
def _atomic(path: str | Path, *, binary: bool, encoding: str = "utf-8", newline: str | None = None,
            db: str | Path | None = None, follow_symlinks: bool = False) -> Iterator[IO[Any]]:
    """The one implementation: a binary or text stream over the temporary file, renamed over the target at the end."""
    target = check_target(path, db=db, follow_symlinks=follow_symlinks)
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)  # a replaced card keeps its permissions
    except OSError:
        mode = None
    fd, tmp = _open_named(folder, target.name)
    done = False
    try:
        raw = _Raw(fd)
        buffered = io.BufferedWriter(raw, buffer_size=BUFFER_BYTES)
        stream: IO[Any] = buffered if binary else io.TextIOWrapper(buffered, encoding=encoding, newline=newline,
                                                                   write_through=False)
        try:
            yield stream
            stream.flush()
            os.fsync(fd)
            if mode is not None:
                os.fchmod(fd, mode)
        finally:
            raw.fd = -1  # the descriptor is closed below, exactly once, whatever happened
            try:
                stream.close()
            except (OSError, ValueError):
                pass  # flushing what a failed write left in the buffer fails again; the file is discarded
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
        done = True
    finally:
        if fd >= 0:
            os.close(fd)
        if not done:
            tmp.unlink(missing_ok=True)
    _fsync_folder(folder)


def write_bytes(path: str | Path, data: bytes, *, db: str | Path | None = None,
                follow_symlinks: bool = False) -> Path:
    """Write `data` to `path` atomically; returns the file replaced (the link's target with `follow_symlinks`)."""
    target = check_target(path, db=db, follow_symlinks=follow_symlinks)
    with _atomic(target, binary=True) as fh:
        fh.write(data)
    return target


def write_text(path: str | Path, text: str, *, encoding: str = "utf-8", db: str | Path | None = None,
               follow_symlinks: bool = False) -> Path:
    """Write `text` to `path` atomically, line endings exactly as given (no translation)."""
    return write_bytes(path, text.encode(encoding), db=db, follow_symlinks=follow_symlinks)
