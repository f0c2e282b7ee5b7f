"""Stopping long runs: Ctrl-C (SIGINT) and SIGTERM take one path.

Under ``semjscc`` (:func:`semjscc.cli.main`) SIGTERM raises :class:`Terminated`, a
``KeyboardInterrupt``, so whatever cleans up after Ctrl-C does so after SIGTERM too. Long runs hold
both signals with :func:`deferred_signals` while they write what they measured, then stop; the exit
status is 128 + the signal number.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises ``KeyboardInterrupt`` (it is one), so that everything
    that cleans up after Ctrl-C does so after SIGTERM too."""

    signum = signal.SIGTERM


# Stop signals received under main(). Python turns a signal into an exception wherever the main
# thread happens to be; one raised inside a C extension's import comes out as an ImportError (that
# a fallback import may swallow), so the signal itself is remembered: deferred_signals() starts
# with it (a run then stops at once) and main() reports the error it caused as the interrupt.
requested: list[int] = []


def on_stop_signal(signum: int, frame: object) -> None:
    requested.append(signum)
    raise interrupt_for(signum)


def stop_signal(exc: BaseException) -> signal.Signals:
    """The signal behind a ``KeyboardInterrupt``: SIGTERM for :class:`Terminated`, else SIGINT."""
    return signal.Signals(getattr(exc, "signum", signal.SIGINT))


def stopped_by(exc_or_signum: BaseException | int) -> str:
    """'Ctrl-C' (SIGINT) or 'SIGTERM': what the JSON outputs record as ``stopped_by``."""
    signum = stop_signal(exc_or_signum) if isinstance(exc_or_signum, BaseException) else exc_or_signum
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def interrupt_for(signum: int) -> KeyboardInterrupt:
    """The exception that ``signum`` raises under :func:`main`."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def deferred_signals(deliver: bool = True) -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM inside the block: yields the list of signals received so far (the
    block polls it to stop early) and, with ``deliver``, hands the first one to the handler that was
    in place once the block is done (under :func:`main` that raises ``KeyboardInterrupt`` or
    :class:`Terminated`; a default SIGTERM disposition ends the process). Off the main thread, or for
    a signal that is ignored, nothing is held."""
    held: list[int] = list(requested)  # a stop already asked for (its exception was lost)
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    old: dict[int, Any] = {}
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) not in (signal.SIG_IGN, None):  # None: a handler Python did not install
            old[sig] = signal.signal(sig, lambda signum, frame: held.append(signum))
    try:
        yield held
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if deliver and held:
            signal.raise_signal(held[0])


def interrupt_in_chain(e: BaseException) -> KeyboardInterrupt | None:
    """A KeyboardInterrupt among the causes of ``e`` (a signal during a C extension's import)."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None
