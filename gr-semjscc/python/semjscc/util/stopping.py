"""Stopping long runs: Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal closed) take one path.

Under ``semjscc`` (:func:`semjscc.cli.main.main`) SIGTERM and SIGHUP raise :class:`Terminated`, a
``KeyboardInterrupt``, so whatever cleans up after Ctrl-C does so after them too. Long runs hold
the signals with :func:`deferred_signals` while they write what they measured, then stop; the exit
status is 128 + the signal number. :func:`run_until_done` is the one loop every long run uses.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP), raised where Ctrl-C raises ``KeyboardInterrupt`` (it is one), so that
    everything that cleans up after Ctrl-C does so after them too."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signal.Signals(signum)


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
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


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


@dataclass
class RunOutcome:
    """How a run ended: ``done`` by itself, ``timed_out``, stopped by a signal (``held``: the stop
    signals received, the first one stopped it) or by an ``error`` (its one-line message)."""

    done: bool = False
    timed_out: bool = False
    held: list[int] = field(default_factory=list)  # live: signals that arrive during finalize show up here
    error: str | None = None
    exception: BaseException | None = None  # the caught exception behind ``error``
    elapsed_s: float = 0.0

    @property
    def interrupted(self) -> bool:
        return bool(self.held)

    @property
    def stopped_by(self) -> str | None:
        """'Ctrl-C', 'SIGTERM', ... or None (see :func:`stopped_by`)."""
        return stopped_by(self.held[0]) if self.held else None


def run_until_done(start: Callable[[], object], finished: Callable[[float], bool], stop: Callable[[list[int]], object],
                   poll: Callable[[], object] | None = None, timeout_s: float | None = None,
                   finalize: Callable[[RunOutcome], object] | None = None, deliver: bool = True,
                   catch: tuple[type[BaseException], ...] = (), poll_s: float = 0.05) -> RunOutcome:
    """The one loop of every long run (a flowgraph, a flowgraph script, a soak, an over-the-air sweep):
    ``start()``; then until ``finished(poll_s)`` says so (it may block up to ``poll_s``), ``timeout_s``
    passes or a stop signal arrives, ``poll()``; then always ``stop(held)`` (``held``: the stop signals
    received, e.g. to pass on to a child process) and ``finalize(outcome)``.

    Stop signals (Ctrl-C, SIGTERM, SIGHUP) are held from ``start`` until ``finalize`` has returned, so
    what the run measured is on disk before the signal is delivered (``deliver``; under ``semjscc``
    that raises ``KeyboardInterrupt`` and exits 128 + the signal). Exceptions of the types in
    ``catch`` end the run like a signal, recorded as ``error``; others propagate after ``stop()``."""
    outcome = RunOutcome()
    t0 = time.monotonic()
    deadline = t0 + timeout_s if timeout_s else math.inf
    interrupt: KeyboardInterrupt | None = None
    with deferred_signals(deliver=deliver) as held:
        try:
            start()
            while not held:
                if finished(poll_s):
                    outcome.done = True
                    break
                if time.monotonic() > deadline:
                    outcome.timed_out = True
                    break
                if poll is not None:
                    poll()
        except catch as e:
            outcome.error = (f"{type(e).__name__}: {e}".splitlines() or [type(e).__name__])[0]
            outcome.exception = e
        except KeyboardInterrupt as e:  # raised inside (a signal before the hold, or by code): a stop like any
            interrupt = e
            held.append(int(stop_signal(e)))
        finally:
            stop(held)
        outcome.held, outcome.elapsed_s = held, time.monotonic() - t0
        if finalize is not None:
            finalize(outcome)
    if interrupt is not None and deliver:  # not turned into an exception on delivery (off the main thread)
        raise interrupt
    return outcome
