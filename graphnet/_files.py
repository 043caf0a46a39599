"""The user's files: atomic replacement, and reading a file the user named.

**Writing.** A crash never leaves a half-written file where a good one was.

The data goes to a temporary file beside the target, named
``.NAME.XXXXXXXX.tmp`` (``NAME`` the target's name, eight random letters;
for a name too long to take the 14 more bytes, ``NAME`` is a digest of
it), flushed and synced, then renamed over the target. A target that is a
symbolic link is replaced by the new file, as the rename does: a link
never sends the write elsewhere (one planted in a shared folder cannot make
it overwrite another file), and the file the link led to is left as it
was. A process killed mid-write (SIGKILL, power loss) leaves the old file
intact and that temporary file behind: the next write of the same target
removes such files once they are older than :data:`STALE_SECONDS` (a write
still in progress keeps touching its own, and only files of exactly that
pattern, for exactly that target, are ever removed).

**Reading.** :func:`open_regular` and :func:`read_regular` open a file the
user named without blocking and check the open file itself: a pipe cannot
stall the open, a device (``/dev/zero``) is never read, a file over the
reader's limit is refused before a byte is read, and the file checked is
the file read. Every reader of model files, specs and data uses them.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import logging
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ._text import named, reason, shown
from .errors import ModelFileError

__all__ = ["atomic_write", "check_output", "names_folder", "open_regular", "read_regular", "kind_of_file",
           "refuse_bad_name", "STALE_SECONDS"]

logger = logging.getLogger(__name__)

#: A temporary file of ours untouched for this long belongs to a write that died.
STALE_SECONDS = 3600


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then replace ``path``.

    The temporary file is flushed and synced before ``os.replace``, which is
    atomic on POSIX and Windows, so readers see the old file or the new one,
    never a mix. An existing file's permission bits are kept. If ``write``
    raises, the temporary file is removed and ``path`` is untouched. Stale
    temporary files left for ``path`` by writes that were killed are removed
    (see the module's docstring).

    Raises
    ------
    OSError
        Naming ``path`` (never the temporary file): its folder is missing or
        not writable, ``path`` is a folder (or ends with a separator), or
        the disk is full.
    """
    path = check_output(path)
    folder = path.parent if str(path.parent) else Path(".")
    _remove_stale(folder, path.name)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(path.name), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _about(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _mode_for(path))
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError) and exc.filename in (None, tmp_name):
            raise _about(exc, path) from None  # name the target, not our temporary file
        raise
    _sync_folder(folder)
    return path


def check_output(path: str | os.PathLike, probe: bool = False) -> Path:
    """``path`` as a place a new file can be written, checked before any work.

    Parameters
    ----------
    path : str or PathLike
    probe : bool
        Also make (and remove at once) a temporary file in the folder, as the
        write will: the permission bits do not tell everything (a file system
        that takes no new files, such as ``/sys``, even for root).

    Raises
    ------
    OSError
        Naming ``path``: ``FileNotFoundError`` when its folder does not exist,
        ``NotADirectoryError`` when the "folder" is a file,
        ``IsADirectoryError`` when ``path`` is a folder or ends with a
        separator (a folder's name), ``PermissionError`` (or what the probe
        met) when the folder cannot be written.
    """
    text = os.fsdecode(path)
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name inside it", str(path))
    ending = names_folder(text)
    if ending:
        raise IsADirectoryError(errno.EISDIR, f"ends with {ending!r}, so it names a folder; give a file name", text)
    if not folder.exists():
        raise FileNotFoundError(errno.ENOENT, f"folder {str(folder)!r} does not exist; create it first",
                                str(path))
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{str(folder)!r} is a file, not a folder", str(path))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"no permission to write in folder {str(folder)!r}", str(path))
    if probe:
        try:
            fd, name = tempfile.mkstemp(prefix=_temporary_prefix(path.name), suffix=".tmp", dir=folder)
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot create a file in folder {str(folder)!r} ({reason(exc)})",
                            str(path)) from None
        os.close(fd)
        os.unlink(name)
    return path


def probe_folder(path: Path) -> None:
    """Make the folder ``path`` (and the parents it lacks), as the writer
    will, or make and remove a file in it when it exists: whether it can be
    made and written in, which the permission bits do not tell (``/proc``,
    even for root). What it makes stays (removing it could race a fit beside
    this one making the same).

    Raises
    ------
    OSError
        What making the folder or the file met.
    """
    if path.is_symlink() and not path.exists():  # mkdir would say only "File exists"
        raise FileNotFoundError(errno.ENOENT, f"is a link to {os.readlink(path)!r}, which does not exist", str(path))
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        return
    fd, name = tempfile.mkstemp(prefix=".graphnet-probe-", dir=path)
    os.close(fd)
    os.unlink(name)


def refuse_bad_name(path: str, argument: str, error: type[Exception] = ModelFileError) -> None:
    """Refuse a path no file's name can be: an empty one, one holding a NUL
    character, or one the file system's encoding cannot write (``'modèle.gnet'`` where
    Python runs in the C locale, whose file names are ASCII). The one
    message every reader and writer gives for each.

    Raises
    ------
    ModelFileError (or ``error``)
        ``"{argument}: 'm\\x00x' contains a NUL character ('\\x00'), which no
        file's name can hold"``, ``argument`` as the caller names it
        (``"save: path"``); or that the name cannot be encoded, naming the
        encoding.
    """
    if not path:
        raise error(f"{argument} is empty; give the file's path")
    if "\0" in path:
        raise error(f"{argument}: {shown(path, 60)} contains a NUL character ('\\x00'), which no file's name "
                    "can hold")
    try:
        os.fsencode(path)
    except UnicodeEncodeError as exc:
        encoding, held = sys.getfilesystemencoding(), exc.object[exc.start : exc.end]
        try:  # what UTF-8 mode would write (a lone surrogate it cannot either)
            held.encode("utf-8", "surrogateescape")
            remedy = "" if codecs.lookup(encoding).name == "utf-8" else (
                " (the C locale's; PYTHONUTF8=1 or a UTF-8 locale takes it)")
        except UnicodeEncodeError:
            remedy = ""
        raise error(f"{argument}: {shown(path, 60)} holds {shown(held)}, which file "
                    f"names cannot hold in this Python's file system encoding {encoding!r}{remedy}") from None


def names_folder(path: str) -> str:
    """How ``path`` ends when that makes it a folder's name whatever is
    there (``"/"``, ``"/."``, ``"/.."``; ``pathlib`` would drop the ending and
    name a file), else ""."""
    separators = tuple(filter(None, (os.sep, os.altsep)))
    if path.endswith(separators):
        return path[-1]
    last = re.split("|".join(map(re.escape, separators)), path)[-1]
    return path[-len(last) - 1:] if last in (".", "..") and len(path) > len(last) else ""


def _about(exc: OSError, path: Path) -> OSError:
    """The same error, naming the target rather than the temporary file."""
    why = reason(exc)
    if isinstance(exc, FileNotFoundError):
        why = (f"folder {str(path.parent)!r} does not exist; create it first" if not path.parent.exists()
               else f"cannot create a file in folder {str(path.parent)!r} ({why}); write elsewhere")
    return type(exc)(exc.errno, why, str(path))


def _temporary_prefix(name: str) -> str:
    """``.NAME.``, where ``NAME`` is ``name`` or, when the temporary file's
    name would pass the longest a file name may be, a digest of it."""
    if len(os.fsencode(name)) + _TEMPORARY_EXTRA <= _NAME_MAX:
        return f".{name}."
    return f".{hashlib.sha256(os.fsencode(name)).hexdigest()[:32]}."


#: What the temporary file's name adds to the target's: two dots, eight letters, ".tmp".
_TEMPORARY_EXTRA = 14
#: The longest file name, in bytes, on the file systems graphnet writes to (ext4, XFS, APFS, NTFS, tmpfs).
_NAME_MAX = 255


def _remove_stale(folder: Path, name: str) -> None:
    """Remove our temporary files for ``name`` that no write has touched for
    :data:`STALE_SECONDS` (best effort: a folder that cannot be listed is left alone)."""
    prefix = _temporary_prefix(name)
    pattern = re.compile(rf"{re.escape(prefix)}[A-Za-z0-9_]{{8}}\.tmp")
    cutoff = time.time() - STALE_SECONDS
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix) or not pattern.fullmatch(entry.name):
            continue
        with contextlib.suppress(OSError):
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                os.unlink(entry.path)
                logger.info("removed %s, left by an interrupted write of %s", entry.path, name)


def _mode_for(path: Path) -> int:
    """The existing file's mode, or what a plain ``open(path, "w")`` would
    give (for a link too: the file it led to is not the one replaced)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        info = None
    if info is None or stat.S_ISLNK(info.st_mode):
        return 0o666 & ~_umask()
    return info.st_mode & 0o7777


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would, racing
    other threads); 0o022 where the platform does not say."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    return 0o022


def _sync_folder(folder: Path) -> None:
    """Persist the rename itself (best effort: not every platform allows it)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def open_regular(path: str, limit: int | None, what: str, argument: str = "path", too_big: str = "") -> BinaryIO:
    """``path`` opened for reading in binary, once the open file is known to
    be a regular file of at most ``limit`` bytes.

    The file is opened without blocking and checked through its own handle,
    so a pipe cannot stall the open, a device (``/dev/zero``) is never read,
    and the file checked is the file read.

    Parameters
    ----------
    path : str
        The file, as the user named it.
    limit : int or None
        The most bytes such a file may hold (None: as many as it holds, for a
        reader that bounds what it takes from the bytes present).
    what : str
        The kind of file, for messages ("a spec", "a Keras model file").
    argument : str
        The caller's name for ``path``, for messages.
    too_big : str, optional
        What to do about a file over ``limit``, added to its message.

    Raises
    ------
    ModelFileError
        Naming ``path``: a NUL character in it, no such file, no permission,
        not a regular file (a folder, a pipe, a device, a socket), or larger
        than ``limit``.
    """
    path = os.fsdecode(path)  # a PathLike may give bytes
    refuse_bad_name(path, argument)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ModelFileError(f"{named(path)}: no such file") from None
    except OSError as exc:
        raise ModelFileError(f"{named(path)}: cannot be read ({reason(exc)})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ModelFileError(f"{named(path)}: is {kind_of_file(info.st_mode)}, not a regular file; {what} is read "
                                 f"from a file")
        if limit is not None and info.st_size > limit:
            raise ModelFileError(f"{named(path)}: {info.st_size:,} bytes, more than the limit of {limit:,} "
                                 f"bytes for {what}{'; ' + too_big if too_big else ''}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str, limit: int, what: str, argument: str = "path", too_big: str = "") -> bytes:
    """The bytes of ``path``, opened as :func:`open_regular` opens it, read in
    one go and refused when the file changed size while it was read.

    Raises
    ------
    ModelFileError
        As :func:`open_regular` does, and for a read that fails or a file that grew or shrank.
    """
    with open_regular(path, limit, what, argument, too_big) as handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            raw = handle.read(size)
            grown = handle.read(1)
        except OSError as exc:
            raise ModelFileError(f"{named(path)}: cannot be read ({reason(exc)})") from None
    if len(raw) != size or grown:
        raise ModelFileError(f"{named(path)}: changed size while being read; read it again once it is written")
    return raw


def kind_of_file(mode: int) -> str:
    """What a file that is not a regular one is, for messages (``os.stat``'s mode)."""
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a pipe"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "not a plain file")
