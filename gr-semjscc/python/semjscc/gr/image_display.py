"""Qt image display: the transmitted image beside the received one, with true and predicted labels.

Message handlers run in GNU Radio's threads and Qt widgets may only be touched from the GUI
thread, so the handlers just store the newest pair under a lock and a QTimer in the GUI thread
repaints at ``update_hz`` (a modest rate: a person cannot follow 100 frames/s anyway).
Works under ``QT_QPA_PLATFORM=offscreen``.

Accuracy is shown per *setting* (a label such as "SNR 10 dB, CFO 0 Hz" that the flowgraph updates
when a slider moves, :meth:`image_display.set_setting`): a running total would mix channel
conditions. Only frames *sent* after the last change count towards it, so frames already in flight
on the old channel do not; the running total over everything is shown beside it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pmt
from gnuradio import gr

from semjscc.data import CIFAR10_CLASSES
from semjscc.gr.pdus import finite_or, image_u8_from_vector, split_pdu
from semjscc.phy.frame import MAX_FRAME_NUMBER
from semjscc.util.stats import wilson

PORT_SENT = pmt.intern("sent")
PORT_RECEIVED = pmt.intern("received")


class image_display(gr.basic_block):  # noqa: N801 (GNU Radio block naming)
    """Inputs ``sent`` (image source PDUs: frame_number, label, image) and ``received`` (classified
    PDUs: 16-bit frame_number, pred, confidence, image). :meth:`widget` is the QWidget to place
    (GRC does it through the GUI hint). Create it after the QApplication exists."""

    def __init__(self, scale: int = 4, update_hz: float = 5.0, history: int = 512, title: str = "",
                 setting: str = "") -> None:
        gr.basic_block.__init__(self, name="semjscc_image_display", in_sig=None, out_sig=None)
        for port, handler in ((PORT_SENT, self._on_sent), (PORT_RECEIVED, self._on_received)):
            self.message_port_register_in(port)
            self.set_msg_handler(port, handler)
        self._lock = threading.Lock()
        # air frame number -> (image, label, setting epoch at sending)
        self._sent: OrderedDict[int, tuple[np.ndarray, int, int]] = OrderedDict()
        self._history = max(1, int(history))
        self._latest: dict[str, Any] | None = None
        self._dirty = False
        self.shown = 0  # pairs received (not all are repainted)
        self.correct = 0
        self.setting = str(setting)
        self._epoch = 0
        self.setting_shown = 0  # pairs sent and received under the current setting
        self.setting_correct = 0
        self.repaints = 0
        self._widget = _ImageWidget(self, max(1, int(scale)), float(update_hz), title)

    def widget(self) -> Any:
        return self._widget.qt

    def set_setting(self, setting: str) -> None:
        """The channel setting changed (GRC callback): restart the per-setting accuracy."""
        with self._lock:
            if str(setting) == self.setting:
                return
            self.setting, self._epoch = str(setting), self._epoch + 1
            self.setting_shown = self.setting_correct = 0
            self._dirty = self._latest is not None

    # --- message handlers (GNU Radio threads) -----------------------------------------------------
    def _on_sent(self, msg: Any) -> None:
        pdu = split_pdu(msg)
        if pdu is None or pdu[0].get("flush"):
            return
        meta, vec = pdu
        img = image_u8_from_vector(vec)
        if img is None:
            return
        air = int(finite_or(meta.get("frame_number"), 0)) % (MAX_FRAME_NUMBER + 1)
        with self._lock:
            self._sent[air] = (img, int(finite_or(meta.get("label"), -1)), self._epoch)
            self._sent.move_to_end(air)
            while len(self._sent) > self._history:
                self._sent.popitem(last=False)

    def _on_received(self, msg: Any) -> None:
        pdu = split_pdu(msg)
        if pdu is None or not pdu[0].get("header_ok", True):
            return
        meta, vec = pdu
        rx = image_u8_from_vector(vec)
        if rx is None:
            return
        air = int(finite_or(meta.get("frame_number"), -1))
        with self._lock:
            tx, label, epoch = self._sent.pop(air, (None, -1, -1))
            pred = meta.get("pred")
            right = int(pred is not None and label >= 0 and int(pred) == label)
            self.shown += 1
            self.correct += right
            if epoch == self._epoch and label >= 0:
                self.setting_shown += 1
                self.setting_correct += right
            self._latest = {"tx": tx, "rx": rx, "label": label, "pred": pred, "confidence": meta.get("confidence"),
                            "frame": air, "snr": meta.get("snr_est_db")}
            self._dirty = True

    def take_latest(self) -> dict[str, Any] | None:
        """The newest pair if it changed since the last call (GUI thread)."""
        with self._lock:
            if not self._dirty:
                return None
            self._dirty = False
            return dict(self._latest or {}, shown=self.shown, correct=self.correct, setting=self.setting,
                        setting_shown=self.setting_shown, setting_correct=self.setting_correct)


def _class_name(k: Any) -> str:
    try:
        i = int(k)
    except (TypeError, ValueError):
        return "?"
    return CIFAR10_CLASSES[i] if 0 <= i < len(CIFAR10_CLASSES) else ("unlabelled" if i < 0 else str(i))


class _ImageWidget:
    """The Qt side (imported lazily: the rest of semjscc.gr must not need PyQt5)."""

    def __init__(self, block: image_display, scale: int, update_hz: float, title: str) -> None:
        from PyQt5 import QtCore, QtGui, QtWidgets

        self._QtGui, self._QtCore = QtGui, QtCore
        self.block, self.side = block, 32 * scale
        self.qt = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(self.qt)
        if title:
            grid.addWidget(QtWidgets.QLabel(f"<b>{title}</b>"), 0, 0, 1, 2)
        self.images, self.captions = [], []
        for col, head in enumerate(("Transmitted", "Received")):
            grid.addWidget(QtWidgets.QLabel(f"<b>{head}</b>"), 1, col, QtCore.Qt.AlignHCenter)
            img = QtWidgets.QLabel()
            img.setFixedSize(self.side, self.side)
            img.setStyleSheet("background: #202020")
            grid.addWidget(img, 2, col, QtCore.Qt.AlignHCenter)
            cap = QtWidgets.QLabel("-")
            cap.setAlignment(QtCore.Qt.AlignHCenter)
            grid.addWidget(cap, 3, col)
            self.images.append(img)
            self.captions.append(cap)
        self.status = QtWidgets.QLabel("waiting for frames")
        grid.addWidget(self.status, 4, 0, 1, 2)
        self.timer = QtCore.QTimer(self.qt)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(max(20, int(1000 / max(update_hz, 0.1))))

    def _pixmap(self, img: np.ndarray) -> Any:
        QtGui, QtCore = self._QtGui, self._QtCore
        data = np.ascontiguousarray(img, dtype=np.uint8)
        h, w, _ = data.shape
        qimg = QtGui.QImage(data.tobytes(), w, h, 3 * w, QtGui.QImage.Format_RGB888).copy()  # own the pixels
        return QtGui.QPixmap.fromImage(qimg).scaled(self.side, self.side, QtCore.Qt.KeepAspectRatio,
                                                   QtCore.Qt.FastTransformation)  # keep pixels crisp

    def refresh(self) -> None:
        d = self.block.take_latest()
        if d is None:
            return
        if d["tx"] is not None:
            self.images[0].setPixmap(self._pixmap(d["tx"]))
        self.images[1].setPixmap(self._pixmap(d["rx"]))
        self.captions[0].setText(f"#{d['frame']}  true: {_class_name(d['label'])}")
        conf = d.get("confidence")
        mark = "" if d["pred"] is None or d["label"] < 0 else (" ✓" if int(d["pred"]) == d["label"] else " ✗")
        self.captions[1].setText(f"pred: {_class_name(d['pred'])}"
                                 + (f" ({100 * float(conf):.0f}%)" if conf is not None else "") + mark)
        self.status.setText(status_text(d))
        self.block.repaints += 1


def status_text(d: dict[str, Any]) -> str:
    """Two lines: accuracy under the current setting with its 95 % interval, then the running total."""
    n, k = d.get("setting_shown", 0), d.get("setting_correct", 0)
    where = f"at {d['setting']}" if d.get("setting") else "accuracy"
    if n:
        lo, hi = wilson(k, n)
        first = f"{where}: {100 * k / n:.0f}% of {n} frames (95% CI {100 * lo:.0f}-{100 * hi:.0f}%)"
    else:
        first = f"{where}: waiting for frames sent since the change"
    total = f"all: {d['shown']} frames received" + (f", {100 * d['correct'] / d['shown']:.0f}% right" if d["shown"] else "")
    snr = d.get("snr")
    return first + "\n" + total + (f", SNR est. {float(snr):.1f} dB" if snr is not None else "")
