"""Reading untrusted files boundedly: regular files only, size caps, nesting caps, confined paths.

Suites, prompt files, judging templates, training data and legacy results may
come from someone else. Each reader here refuses, with one `InputError` line,
what could hang the process or exhaust its memory or stack:

* a FIFO, socket or device (a `/dev/zero` symlink, a named pipe) is never
  opened for reading: `open()` on a FIFO blocks forever and a device never
  ends. The check runs on the opened descriptor, so swapping the file after a
  `stat` does not help;
* a file or a line larger than its cap is refused before it is decoded;
* JSON nested deeper than `MAX_DEPTH` is refused before `json.loads` recurses
  (Python's parser raises `RecursionError` near 1,000 levels, and everything
  that walks the result recurses too);
* a path option of a suite must resolve inside the suite's folder (`confine`).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, BinaryIO

from brie_bench.errors import InputError

#: Deepest nesting accepted in a suite, a prompts file, a JSON line or a config. Real data needs < 10.
MAX_DEPTH = 64


def open_regular(path: str | Path, what: str = "file") -> BinaryIO:
    """Open `path` for binary reading, refusing folders, FIFOs, sockets and devices with one line.

    Opened non-blocking so a FIFO cannot hang the open itself; the type is
    checked on the descriptor (symlinks are followed, then judged by target).
    """
    spath = str(path)
    try:
        fd = os.open(spath, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=spath) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a file", path=spath) from None
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror or exc}", path=spath) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError("is a folder, not a file", path=spath)
        if not stat.S_ISREG(mode):
            raise InputError(f"{what} is not a regular file (a pipe, socket or device): refusing to read it",
                             path=spath)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | Path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `max_bytes` (refused with one line otherwise)."""
    with open_regular(path, what) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise InputError(f"{what} too large ({size:,} bytes, limit {max_bytes:,})", path=str(path))
        data = fh.read(max_bytes + 1)  # st_size can lie (procfs, a file still growing)
    if len(data) > max_bytes:
        raise InputError(f"{what} too large (more than {max_bytes:,} bytes)", path=str(path))
    return data


def read_text(path: str | Path, max_bytes: int, what: str = "file") -> str:
    """A bounded regular file decoded as UTF-8 (a BOM is dropped); NUL bytes are refused."""
    data = read_bytes(path, max_bytes, what)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} is not UTF-8 text", path=str(path),
                         line=data[:exc.start].count(b"\n") + 1) from None
    if "\x00" in text:
        raise InputError(f"{what} contains NUL bytes", path=str(path))
    return text


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text` (strings skipped); linear, no recursion."""
    if text.count("[") + text.count("{") == 0:
        return 0
    depth = deepest = 0
    for m in _BRACKETS.finditer(_JSON_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class TooDeep(ValueError):
    """JSON nested deeper than the caller allows."""


def loads_json(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads` for untrusted text: raises `TooDeep` (a ValueError) beyond `max_depth` levels.

    Only texts holding more opening brackets than `max_depth` are scanned, so
    ordinary lines cost nothing extra. Other errors are `json.JSONDecodeError`.
    """
    if text.count("[") + text.count("{") > max_depth and json_depth(text) > max_depth:
        raise TooDeep(f"nested more than {max_depth} levels deep")
    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - the scan above prevents it
        raise TooDeep(f"nested more than {max_depth} levels deep") from None


def confine(root: Path, value: str) -> Path:
    """`value` resolved against the folder `root`; ValueError when it leaves `root`.

    `~` is refused rather than expanded, and an absolute path must lie inside
    `root` too: a suite names files next to itself, so a suite from someone
    else cannot read `~/.ssh/id_rsa` or `../../outside.txt` and send it to a
    judge's endpoint. Symlinks are resolved before the check.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError("path is empty")
    if "\x00" in value:
        raise ValueError("path contains a NUL byte")
    if value.startswith("~"):
        raise ValueError(f"path {value!r} points into a home folder; paths in a suite are relative to the "
                         f"suite's folder {root}")
    root = root.resolve()
    candidate = (root / value).resolve()
    if not candidate.is_relative_to(root):
        raise ValueError(f"path {value!r} is outside the suite's folder {root}")
    return candidate




# -- path options of plugins ---------------------------------------------------------------

#: The `json_schema_extra` key that marks a plugin option as a path inside the suite's folder.
SUITE_PATH = "suite_path"


def suite_path_field(default: Any = None, *, description: str = "", **kwargs: Any) -> Any:
    """A pydantic `Field` for a plugin option that names a file next to the suite.

    The suite loader confines every such option (a string, or a list of
    strings) to the suite's folder, exactly like `prompts_file`, and requires
    the file to exist: one rule, enforced in one place (`suite.check_plugins`).
    Pass `...` as `default` for a required path, or `default_factory=list`.
    """
    from pydantic import Field

    if "default_factory" in kwargs:  # e.g. a list of paths, default_factory=list
        return Field(description=description, json_schema_extra={SUITE_PATH: True}, **kwargs)
    return Field(default, description=description, json_schema_extra={SUITE_PATH: True}, **kwargs)


def is_suite_path(field_info: Any) -> bool:
    """Whether a pydantic FieldInfo was declared with `suite_path_field`."""
    extra = getattr(field_info, "json_schema_extra", None)
    return isinstance(extra, dict) and extra.get(SUITE_PATH) is True


__all__ = ["MAX_DEPTH", "SUITE_PATH", "TooDeep", "confine", "is_suite_path", "json_depth", "loads_json",
           "open_regular", "read_bytes", "read_text", "suite_path_field"]
