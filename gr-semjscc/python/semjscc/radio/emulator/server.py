"""An iiod stand-in: libiio's network protocol (as iiod 0.24 speaks it, port 30431) in front of an emulated
Pluto, so ``ip:127.0.0.1`` works with libiio's own clients (``iio_info``, ``iio_attr``, ``iio_readdev``),
pyadi-iio and gr-iio, unmodified.

The protocol, as libiio 0.24's network client uses it (``iiod-client.c``, ``network.c``; iiod's
``parser.y``/``ops.c``): text commands ending in CRLF, each answered by a decimal line, a length or a
negative errno, then any payload:

* ``PRINT`` -> length, the context XML, "\\n" (``ZPRINT``, the zstd variant, is refused with -EINVAL and the
  client falls back); ``VERSION`` -> "0.24.xxxxxxx"; ``TIMEOUT ms``, ``SET dev BUFFERS_COUNT n``,
  ``GETTRIG``/``SETTRIG`` -> 0; ``EXIT`` ends the connection;
* ``READ dev [DEBUG|BUFFER] attr`` / ``READ dev INPUT|OUTPUT chn attr`` -> length, value, "\\n";
  ``WRITE ... attr LEN`` followed by LEN bytes -> the bytes written or -errno;
* ``OPEN dev SAMPLES MASK [CYCLIC]`` -> 0; ``CLOSE dev`` -> 0;
* ``READBUF dev BYTES`` -> length, the channel mask in hex, "\\n", the samples (interleaved int16);
* ``WRITEBUF dev BYTES`` -> 0, then (after the BYTES of samples) the bytes accepted. libiio's fast path
  sends the samples without waiting for the 0 and reads both answers at its next command.

Every device command names the device by id or name. Each connection is served by its own thread;
libiio opens a separate connection per buffer, so RX and TX stream concurrently.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from semjscc.radio.emulator.air import Air, EmulatedRadio, RxStream, TxStream, from_int16, to_int16
from semjscc.radio.emulator.device import CHIPS, Device, PlutoDevices
from semjscc.radio.sim import SimParams
from semjscc.util.errors import UsageError

IIOD_PORT = 30431
DEFAULT_KERNEL_BUFFERS = 4


def check_loopback(address: str) -> str:
    """``address`` if it is an IPv4 loopback address (127.0.0.0/8); the emulator never listens elsewhere."""
    try:
        ok = ipaddress.IPv4Address(address) in ipaddress.IPv4Network("127.0.0.0/8")
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(f"emulated Pluto address {address!r}: only loopback addresses (127.x.y.z) are allowed")
    return address


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    pluto: EmulatedPluto


class _Connection(socketserver.StreamRequestHandler):
    """One client connection: commands in, answers out, its open buffers closed when it goes."""

    server: _Server

    def setup(self) -> None:
        super().setup()
        self.pluto = self.server.pluto
        self.pluto._connections.add(self.request)
        self.streams: dict[str, tuple[RxStream | TxStream, int]] = {}  # device id -> (stream, channel mask)

    def handle(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # the client went away (or the radio was "unplugged")
            while not self.pluto.stopping.is_set():
                line = self.rfile.readline(4096)
                if not line:
                    break
                words = line.decode("ascii", "replace").strip().split()
                if not words:
                    continue
                if words[0] == "EXIT":
                    break
                self.command(words)

    def finish(self) -> None:
        for dev_id in list(self.streams):
            self.close_stream(dev_id)
        self.pluto._connections.discard(self.request)
        with contextlib.suppress(OSError):
            super().finish()

    # --- helpers ------------------------------------------------------------------------------------
    def reply(self, value: int, payload: bytes = b"") -> None:
        self.wfile.write(f"{value}\n".encode() + payload)
        self.wfile.flush()

    def value(self, text: str) -> None:
        data = text.encode()
        self.reply(len(data), data + b"\n")

    def device(self, key: str) -> Device | None:
        return self.pluto.devices.find(key)

    def close_stream(self, dev_id: str) -> None:
        stream, _ = self.streams.pop(dev_id)
        if isinstance(stream, TxStream):
            stream.close()
            self.pluto._open.discard(dev_id)

    # --- commands -----------------------------------------------------------------------------------
    def command(self, w: list[str]) -> None:
        op = w[0]
        if op == "PRINT":
            xml = self.pluto.devices.xml().encode()
            self.reply(len(xml), xml + b"\n")
        elif op == "VERSION":
            self.wfile.write(b"0.24.emulate\n")
            self.wfile.flush()
        elif op in ("TIMEOUT", "GETTRIG", "SETTRIG") or (op == "SET" and len(w) == 4 and w[2] == "BUFFERS_COUNT"):
            if op == "SET":
                self.pluto.kernel_buffers[w[1]] = max(1, int(w[3]) if w[3].isdigit() else DEFAULT_KERNEL_BUFFERS)
            self.reply(0)
        elif op == "READ" and len(w) >= 2:
            self.read_attr(w[1:])
        elif op == "WRITE" and len(w) >= 3:
            self.write_attr(w[1:])
        elif op == "OPEN" and len(w) in (4, 5):
            self.open(w[1], w[2], w[3], cyclic=len(w) == 5 and w[4] == "CYCLIC")
        elif op == "CLOSE" and len(w) == 2:
            dev = self.device(w[1])
            if dev is None or dev.id not in self.streams:
                self.reply(-errno.EBADF)
            else:
                self.close_stream(dev.id)
                self.reply(0)
        elif op in ("READBUF", "WRITEBUF") and len(w) == 3 and w[2].isdigit():
            self.buffer_io(w[1], int(w[2]), write=op == "WRITEBUF")
        else:  # ZPRINT, HELP, anything else: what iiod answers to a line it cannot parse
            self.reply(-errno.EINVAL)

    def _attr(self, w: list[str]) -> tuple[object, str] | int:
        """(attribute table, name) for a READ/WRITE target ``w`` (without the length), or -errno."""
        dev = self.device(w[0])
        if dev is None:
            return -errno.ENODEV
        rest = w[1:]
        if rest and rest[0] in ("INPUT", "OUTPUT"):
            if len(rest) < 2:
                return -errno.EINVAL
            chn = dev.channel(rest[1], rest[0] == "OUTPUT")
            if chn is None:
                return -errno.ENODEV
            table, rest = chn.attrs, rest[2:]
        elif rest and rest[0] == "DEBUG":
            table, rest = dev.debug_attrs, rest[1:]
        elif rest and rest[0] == "BUFFER":
            table, rest = {}, rest[1:]
        else:
            table = dev.attrs
        if len(rest) != 1:
            return -errno.EINVAL  # reading all attributes at once is not offered (no client here uses it)
        return table, rest[0]

    def _lookup(self, w: list[str]) -> Any:
        """The attribute a READ/WRITE command names, or a negative errno to reply with."""
        target = self._attr(w)
        if isinstance(target, int):
            return target
        table, name = target
        attr = table.get(name)  # type: ignore[attr-defined]
        return -errno.ENOENT if attr is None else attr

    def read_attr(self, w: list[str]) -> None:
        attr = self._lookup(w)
        if isinstance(attr, int):
            return self.reply(attr)
        self.value(attr.get())

    def write_attr(self, w: list[str]) -> None:
        if not w[-1].isdigit():
            return self.reply(-errno.EINVAL)
        n = int(w[-1])
        data = self.rfile.read(n)
        if len(data) < n:
            raise ConnectionError("client went away mid-write")
        attr = self._lookup(w[:-1])
        if isinstance(attr, int):
            return self.reply(attr)
        if attr.set is None:
            return self.reply(-errno.EACCES)  # a read-only sysfs file
        ret = attr.set(data.split(b"\0", 1)[0].decode("ascii", "replace"))
        self.reply(ret if ret < 0 else n)

    def open(self, key: str, samples: str, mask: str, cyclic: bool) -> None:
        dev = self.device(key)
        if dev is None:
            return self.reply(-errno.ENODEV)
        try:
            n, bits = int(samples), int(mask, 16)
        except ValueError:
            return self.reply(-errno.EINVAL)
        scan = [c for c in dev.channels if c.scan_index is not None]
        if n <= 0 or not bits & ((1 << len(scan)) - 1):
            return self.reply(-errno.EINVAL)
        if cyclic and not dev.is_tx:
            return self.reply(-errno.EINVAL)
        if dev.id in self.streams:
            return self.reply(-errno.EBUSY)
        if dev.is_tx:
            # One TX buffer at a time, as the DMA allows. A client that just dropped its connection without
            # CLOSE (gr-iio cancels, then closes the socket) is released once its thread notices, within a
            # buffer's duration: wait for that rather than refuse a restart.
            deadline = time.monotonic() + 2.0
            while dev.id in self.pluto._open and time.monotonic() < deadline:
                time.sleep(0.01)
            if dev.id in self.pluto._open:
                return self.reply(-errno.EBUSY)
            self.pluto._open.add(dev.id)
        buffers = self.pluto.kernel_buffers.get(dev.id, self.pluto.kernel_buffers.get(dev.name, DEFAULT_KERNEL_BUFFERS))
        stream: RxStream | TxStream = (TxStream(self.pluto.radio, cyclic, buffers) if dev.is_tx
                                       else RxStream(self.pluto.radio, buffers))
        self.streams[dev.id] = (stream, bits)
        self.reply(0)

    def buffer_io(self, key: str, nbytes: int, write: bool) -> None:
        dev = self.device(key)
        if dev is None:
            return self.reply(-errno.ENODEV)
        if dev.id not in self.streams:
            return self.reply(-errno.EBADF)
        stream, bits = self.streams[dev.id]
        enabled = [bool(bits >> i & 1) for i in range(2)]  # voltage0 = I, voltage1 = Q
        sample_size = 2 * sum(enabled)
        n = nbytes // sample_size
        stopping = self.pluto.stopping
        if write:
            self.reply(0)
            data = self.rfile.read(nbytes)
            if len(data) < nbytes:
                raise ConnectionError("client went away mid-buffer")
            if not isinstance(stream, TxStream) or n == 0:
                return self.reply(-errno.EINVAL)
            words = np.frombuffer(data[:n * sample_size], dtype="<i2").reshape(n, sum(enabled))
            cols = iter(range(words.shape[1]))
            i = words[:, next(cols)] if enabled[0] else np.zeros(n, np.int16)
            q = words[:, next(cols)] if enabled[1] else np.zeros(n, np.int16)
            stream.push(from_int16(i, q), stopping)
            self.pluto.stats["tx_samples"] += n
            return self.reply(nbytes)
        if not isinstance(stream, RxStream) or n == 0:
            return self.reply(-errno.EINVAL)
        samples = stream.read(n, stopping)
        if samples is None:
            return self.reply(-errno.EBADF)
        iq = to_int16(samples)[:, [k for k in range(2) if enabled[k]]]
        self.pluto.stats["rx_samples"] += n
        self.reply(iq.nbytes, f"{bits:08x}\n".encode() + iq.tobytes())


class EmulatedPluto:
    """One emulated Pluto listening on ``address``:``port`` (a loopback address). One TX buffer at a time
    (EBUSY otherwise); every connection may have its own RX buffer."""

    def __init__(self, address: str = "127.0.0.1", params: SimParams | None = None, chip: str = "ad9363",
                 air: Air | None = None, port: int = IIOD_PORT) -> None:
        if chip not in CHIPS:
            raise UsageError(f"emulated chip {chip!r}: expected one of {', '.join(CHIPS)}")
        self.address, self.port = check_loopback(address), port
        try:  # bind first: a failed start leaves no radio behind on the shared air
            self._server = _Server((address, port), _Connection, bind_and_activate=True)
        except OSError as e:
            raise UsageError(f"cannot listen on {address}:{port} for the emulated Pluto ({e.strerror or e})") from None
        self.air = air or Air()
        self.radio = EmulatedRadio(self.air, params or SimParams(), CHIPS[chip])
        self.uri = f"ip:{address}" if port == IIOD_PORT else f"ip:{address}:{port}"
        self.devices = PlutoDevices(self.radio.state, f"emu{address.replace('.', '')}", self.uri)
        self.devices.context_attrs["ad9361-phy,xo_correction"] = str(self.radio.state.xo_correction)
        self.stopping = threading.Event()
        self.kernel_buffers: dict[str, int] = {}
        self.stats = {"rx_samples": 0, "tx_samples": 0}
        self._open: set[str] = set()
        self._connections: set[socket.socket] = set()
        self._server.pluto = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"emulated-pluto {address}", daemon=True)

    @property
    def ppm(self) -> float:
        return self.radio.ppm

    def start(self) -> EmulatedPluto:
        self._thread.start()
        return self

    def unplug(self) -> None:
        """What pulling the USB cable does to the clients: every connection drops, nothing answers."""
        self.stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()  # waits for serve_forever to return: only when it runs
        self._server.server_close()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()

    def stop(self) -> None:
        if not self.stopping.is_set():
            self.unplug()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def __enter__(self) -> EmulatedPluto:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_loopback_addresses(count: int, port: int = IIOD_PORT, first: int = 2) -> list[str]:
    """``count`` loopback addresses (127.77.P.x, P from the process id so parallel test runs do not meet,
    x scanned from ``first``) with nothing listening on ``port``."""
    found: list[str] = []
    for host in range(first, 255):
        addr = f"127.77.{os.getpid() % 250}.{host}"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((addr, port))
            except OSError:
                continue
        found.append(addr)
        if len(found) == count:
            return found
    raise UsageError(f"no {count} free loopback addresses for emulated Plutos on port {port}")


@contextlib.contextmanager
def emulated_plutos(ppm: tuple[float, ...] = (0.0,), *, addresses: list[str] | None = None, chip: str = "ad9363",
                    lifetime_s: float = 300.0, **params: float) -> Iterator[list[EmulatedPluto]]:
    """Emulated Plutos on one air (each hears all), one per oscillator error in ``ppm``, on free loopback
    addresses unless given; ``params`` go to :class:`SimParams` (path_loss_db, noise_figure_db, ...). They
    stop on leaving the block, or after ``lifetime_s`` whatever happens (a test that hangs cannot leave
    servers behind)."""
    addrs = addresses or free_loopback_addresses(len(ppm))
    air = Air()
    plutos: list[EmulatedPluto] = []
    try:
        for i, (addr, p) in enumerate(zip(addrs, ppm, strict=True)):
            sim = replace(SimParams(seed=i + 1, ppm=p), **params)  # type: ignore[arg-type]
            plutos.append(EmulatedPluto(addr, sim, chip, air).start())
        deadline = threading.Timer(lifetime_s, lambda: [p.unplug() for p in plutos])
        deadline.daemon = True
        deadline.start()
        try:
            yield plutos
        finally:
            deadline.cancel()
    finally:
        for p in plutos:
            p.stop()


def serve(plutos: list[EmulatedPluto], duration_s: float | None = None) -> None:
    """Block until ``duration_s`` passed (forever when None) or Ctrl-C, then stop the servers."""
    end = None if duration_s is None else time.monotonic() + duration_s
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.2 if end is None else max(0.0, min(0.2, end - time.monotonic())))
    finally:
        for p in plutos:
            p.stop()
