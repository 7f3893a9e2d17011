"""Files huren creates are its own: mode 0600 for files, 0700 for directories, on the platform and
on the gateway alike (they hold patients' data and keys).

Two layers, because either alone leaks: :func:`private_umask` is set where a process starts
(``huren serve``, ``huren gateway run``, every CLI command) so that whatever a library creates —
SQLite's ``-wal``/``-shm``/journal files, a log file, a temporary file — is private too; and each
place that creates a file or directory asks for the mode explicitly (:func:`private_dir`,
:func:`private_file`, :func:`atomic_write`), so the modes hold even when huren is imported by a
host process with a looser umask. SQLite creates its ``-wal`` and ``-shm`` files with the mode of
the database file, so the database file is made 0600 *before* SQLite opens it.

Ground floor: imports nothing of huren.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
UMASK = 0o077  # nothing for group and others


def private_umask() -> int:
    """Set the process umask to 077 (returns the previous one). Call it where a process starts."""
    return os.umask(UMASK)


def private_dir(path: str | Path) -> Path:
    """``path`` as a directory; every component created here is made mode 0700 (directories that
    already exist are left as they are: they may be the operator's, such as ``/var/lib``)."""
    p = Path(path)
    missing: list[Path] = []
    q = p
    while not q.exists():
        missing.append(q)
        if q.parent == q:
            break
        q = q.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process created it first
            d.mkdir(mode=DIR_MODE)
            os.chmod(d, DIR_MODE)  # mkdir's mode is masked by the umask; this is not
    if not p.is_dir():
        raise NotADirectoryError(str(p))
    return p


def private_file(path: str | Path) -> Path:
    """Make sure ``path`` exists and is mode 0600 (creating it empty, with its directory, if it
    does not exist; tightening it if an older version left it readable by others). Use it for a
    file another library then opens, such as an SQLite database."""
    p = Path(path)
    private_dir(p.parent)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return p


def private_sqlite(path: str | Path) -> Path:
    """Prepare an SQLite database file before SQLite opens it: the file 0600 (SQLite gives its
    ``-wal``, ``-shm`` and ``-journal`` files the database file's mode), and any of those an older
    version left readable by others tightened."""
    p = private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(f"{p}{suffix}")
    return p


@contextlib.contextmanager
def sqlite_transaction(path: str | Path, *, timeout: float = 30.0) -> Iterator[sqlite3.Connection]:
    """One short transaction on a small local SQLite file (the gateway's caches and sessions):
    WAL, ``synchronous=NORMAL`` (what it keeps can be rebuilt or re-asked), committed on leaving
    the block (rolled back on an exception), the connection closed."""
    conn = sqlite3.connect(path, timeout=timeout)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with conn:
            yield conn
    finally:
        conn.close()


def tighten(path: str | Path) -> None:
    """chmod an existing file huren owns to 0600 (a no-op if it is missing or already private)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
            os.chmod(path, FILE_MODE)


def atomic_write(path: str | Path, data: bytes, *, replace: bool = True, durable: bool = True) -> Path:
    """Write ``path`` (mode 0600) so that a reader never sees half of it: a temporary file in the
    same directory, flushed, then renamed (``replace``) or linked (not ``replace``: an existing file
    wins and FileExistsError is raised, so of two processes racing to create it, the first wins).
    ``durable`` fsyncs the file and its directory before returning."""
    p = Path(path)
    private_dir(p.parent)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, p)
        else:
            os.link(tmp, p)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if durable:
        fsync_dir(p.parent)
    return p


def fsync_dir(path: str | Path) -> None:
    """fsync a directory, so a file just created or renamed in it survives a power loss."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
