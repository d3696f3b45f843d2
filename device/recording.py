"""A monitored session kept for review: ``ecg-device run --record BASE``.

A Holter is read afterwards: a cardiologist pages through the day's ECG with the monitor's
calls beside it. Without the signal a live session leaves events only, and its report has no
strips to draw. The recorder writes what the front-end sent as a WFDB record (``BASE.hea``,
``BASE.dat``, format 32, samples lost on the link or in lead-off written invalid, so a replay
of the recording sees the same gaps) and, when the session ends, the calls as its annotation
file (``BASE.ecg``, :mod:`device.annotations`). Replaying the record with the same bundle
gives the session's beats again; ``ecg-device report EVENTS BASE`` draws its strips.

One record holds one sample rate, gain and channel count: if the front-end changes any of
them the recording stops there (one line on stderr) and the monitor goes on.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ecg_edge.device.annotations import AnnotationCollector, write_annotations
from ecg_edge.firmware_bridge.blocks import SampleBlock
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.wfdb_io import RecordWriter


class SessionRecorder:
    """Feed it every stream item before the monitor sees it, and every event the monitor
    emits (:meth:`event`); :meth:`close` ends the record and writes its annotations."""

    def __init__(self, base: str | Path, channel: int = 0, warn: Callable[[str], None] = print):
        self.base = Path(base)
        if self.base.suffix in (".hea", ".dat"):
            self.base = self.base.with_suffix("")
        if not self.base.parent.is_dir():
            raise UserError(f"{self.base.parent}: no such folder for --record; create it first")
        self.channel, self.warn = channel, warn
        self.writer: RecordWriter | None = None
        self.shape: tuple[float, float, int] | None = None  # fs, gain, channels
        self.collect = AnnotationCollector()
        self.stopped = False
        self.failed = False  # a write failed (a full card): said once

    def feed(self, item) -> None:
        if self.stopped or not isinstance(item, SampleBlock) or not item.n:
            return
        shape = (item.fs, item.uv_per_count, item.counts.shape[1])
        if self.writer is None:
            names = [("ECG" if i == self.channel else f"ch{i}") for i in range(shape[2])]
            try:
                self.writer = RecordWriter(self.base, item.fs, item.uv_per_count, names,
                                           datetime.datetime.now().astimezone())
            except UserError as exc:  # the folder went away or turned read-only
                self._failed(exc, item.start)
                return
            self.shape = shape
        elif shape != self.shape:
            self.warn(f"warning: {self.base}: the front-end changed its sample rate, gain or "
                      f"channels at sample {item.start}; the recording ends there, the "
                      "monitoring goes on")
            self.stopped = True
            return
        # Lead-off samples carry no ECG: left invalid, as samples that never came.
        if not item.lead_off:
            try:
                self.writer.write(item.start, item.counts)
                self.writer.flush()
            except OSError as exc:  # a full card must not end the monitoring
                self._failed(exc, item.start)

    def _failed(self, exc: OSError | UserError, at: int) -> None:
        self.failed = True
        self.warn(f"warning: {self.base}: cannot write the recording at sample {at} "
                  f"({getattr(exc, 'strerror', None) or exc}); it ends there, the monitoring "
                  "goes on")
        self.stopped = True

    def event(self, ev: dict) -> None:
        if not self.stopped:
            self.collect(ev)

    def close(self) -> Path | None:
        """End the record (its header gets the length and start time) and write its
        annotations; the record's path, or None when no sample ever came."""
        if self.writer is None:
            return None
        end = self.collect.end
        try:
            if end is not None and not self.stopped:  # lost or lead-off samples at the end
                self.writer.write(max(end, self.writer.n), np.zeros((0, self.shape[2]),
                                                                    np.int64))
            self.writer.close()
        except (OSError, UserError) as exc:  # the header still gets what the file holds
            if not self.failed:
                self._failed(exc, self.writer.n)
        try:
            if self.collect.fs is not None:
                write_annotations(self.base.with_suffix(".ecg"), self.collect.annotations())
        except (OSError, UserError) as exc:
            self.warn(f"warning: {self.base}.ecg: the annotations could not be written "
                      f"({getattr(exc, 'strerror', None) or exc}); `ecg-device annotate` makes "
                      "them from the events file")
        return self.base
