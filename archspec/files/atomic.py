"""Atomic file writes: a file archspec writes is either the old one or the whole new one.

Every output (ejected source, ONNX model, converted spec, checkpoint, metrics) is written to a
temporary file in the same folder, flushed to disk, then renamed over the target; an error on
the way (disk full, a failing serialiser, Ctrl-C, SIGTERM, SIGHUP) removes the temporary file
and leaves any previous file untouched. A termination signal that arrives during the write is
delivered again once the temporary is gone, to the handler that was there before (by default,
the process ends by that signal). The file gets the mode a plain ``open()`` would give it:
``0o666`` less the umask.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

#: The signals that end a process by default and that a write cleans up after, as after
#: Ctrl-C (SIGINT raises KeyboardInterrupt already).
CLEANUP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                        if hasattr(signal, name))


class Signalled(BaseException):
    """Raised inside a write by a termination signal (see :func:`atomic_file`); like
    KeyboardInterrupt, not an Exception, so that no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def _raise_signalled(signum: int, _frame: Any) -> None:
    """The first termination signal: later ones are held off (the first is delivered again
    after the clean-up), then the write is interrupted."""
    for other in CLEANUP_SIGNALS:
        if signal.getsignal(other) is _raise_signalled:
            signal.signal(other, _hold)
    raise Signalled(signum)


def _hold(_signum: int, _frame: Any) -> None:
    """A termination signal during the clean-up after the first: the first ends the process."""


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise :class:`Signalled` (unless they are
    ignored, or this is not the main thread, where handlers cannot be set); afterwards the
    previous handlers are back, and a signal that was caught is delivered to them."""
    previous: dict[int, Any] = {}
    for signum in CLEANUP_SIGNALS:
        try:
            old = signal.getsignal(signum)
            if old is not signal.SIG_IGN:
                signal.signal(signum, _raise_signalled)
                previous[signum] = old
        except ValueError:  # not the main thread
            break
    try:
        yield
    except Signalled as exc:
        _restore(previous)
        previous = {}
        signal.raise_signal(exc.signum)
        raise
    finally:
        _restore(previous)


def _restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def file_mode() -> int:
    """``0o666`` less the process's umask: the mode ``open()`` gives a new file (read from
    /proc where it can be, without changing the umask; else by setting it and back)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _hold_signals() -> Any:
    """Hold the termination signals off (until :func:`_release`): the old signal mask."""
    if not CLEANUP_SIGNALS or not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, CLEANUP_SIGNALS)


def _release(mask: Any) -> None:
    """Deliver the held signals: the mask before :func:`_hold_signals` (again is harmless)."""
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content into; it replaces ``path`` only when the
    ``with`` block ends without an error (or signal). Termination signals are held off while
    the temporary file is created, so that one is never left unnamed."""
    target = Path(path)
    with _signals_raise():
        mask = _hold_signals()
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                       dir=target.parent)
        except OSError as exc:  # name the file asked for, not the temporary one
            _release(mask)
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        try:
            with os.fdopen(fd, "wb") as f:
                _release(mask)
                os.fchmod(f.fileno(), file_mode())
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            _release(mask)
            if isinstance(exc, OSError) and exc.filename is None:  # name the file it was for
                raise OSError(exc.errno, exc.strerror, str(target)) from exc
            raise


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_file(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name the same existing file (through links and ``..``)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
