"""A session's calls as a WFDB annotation file, so the tools cardiologists and researchers
already use read them beside the record: ``rdann``, ``bxb`` and ``epicmp`` against the
reference annotations, WAVE or LightWAVE to page through the strips, wfdb-python.

What is written (MIT-BIH conventions wherever MIT-BIH has a name for it):

- every beat at its sample with its class call (``N``, ``S``, ``V``, ``F``, ``Q``; beats of
  the learning period are ``Q``); scores and flags stay in the events file;
- the rhythm as rhythm-change (``+``) annotations whose aux note names the episode open from
  there on (ventricular flutter / fibrillation also between ``[`` and ``]``, as MIT-BIH marks
  it): ``(AFIB``, ``(AFL``, ``(VT``, ``(VF``, ``(SVTA``, ``(B``, ``(T``, and ``(BRADY`` /
  ``(TACHY`` (a rate limit, not necessarily sinus, so not MIT-BIH's ``(SBR``); ``(N`` where no
  episode is open. Where episodes overlap (ventricular flutter is also a tachycardia) the one
  first in ``RHYTHM_ORDER`` names the stretch;
- a pause as a comment (``"``, aux ``PAUSE 3.72 s``) at its first beat, since a pause lies
  inside whatever rhythm is open (AF with a long interval);
- signal quality as noise (``~``) annotations at each change, with MIT-BIH's subtype for the
  one signal: 1 noisy, -1 unreadable, 0 clean again; lost samples (a gap) are unreadable. -1 is
  what ``bxb`` takes for the test annotator's shutdown (beats missed there are tallied apart),
  so a stream that ends unreadable gets the closing ``~`` at its end that bxb asks for.

Samples are at the front-end's rate with lost samples counted, as in the events, so the file
lines up with the record the session was replayed from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ecg_edge.device.events import iter_events
from ecg_edge.device.rhythm_eval import EPISODE_EVENTS
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.private_files import open_private
from ecg_edge.firmware_bridge.wfdb_io import encode_annotations

#: Aux notes of the rhythm-change annotations (MIT-BIH's where it has one).
RHYTHM_NOTES = {"VF": "(VF", "VT": "(VT", "AFL": "(AFL", "AF": "(AFIB", "SVT": "(SVTA",
                "BIGEMINY": "(B", "TRIGEMINY": "(T", "TACHY": "(TACHY", "BRADY": "(BRADY"}
#: Which open episode names a stretch where several overlap: the more urgent first.
RHYTHM_ORDER = tuple(RHYTHM_NOTES)
NO_EPISODE = "(N"
NOISE_SUBTYPES = {"good": 0, "noisy": 1, "unreadable": -1}
# Annotations at one sample: rhythm and noise changes before the beat they describe.
_RANK = {"~": 0, "]": 1, "+": 2, "[": 3, '"': 4}


@dataclass
class Annotations:
    """One stream's annotations, sorted by sample."""

    fs: float
    sample: list[int] = field(default_factory=list)
    symbol: list[str] = field(default_factory=list)
    aux: list[str] = field(default_factory=list)
    subtype: list[int] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        beats = sum(s in "NSVFQ" for s in self.symbol)
        return {"annotations": len(self.symbol), "beats": beats,
                "rhythm_changes": self.symbol.count("+"), "noise_changes": self.symbol.count("~"),
                "comments": self.symbol.count('"')}


def annotations_of_file(path: str | Path, stream: int | None = None) -> Annotations:
    """The annotations of one stream of an events file (a monitor restarted by systemd appends
    a new stream, each beginning with ``start``): the only one, or number ``stream``
    (1-based). Read twice, a line at a time: a day of events is never held whole."""
    streams = sum(1 for _, ev in iter_events(path)
                  if isinstance(ev, dict) and ev.get("type") == "start")
    if stream is None:
        if streams > 1:
            raise UserError(f"{path}: holds {streams} streams (the monitor restarted); "
                            f"choose one with --stream 1..{streams}")
        stream = 1
    elif not 1 <= stream <= max(streams, 1):
        raise UserError(f"{path}: holds {streams} stream(s); --stream {stream} does not exist")
    collect, at = AnnotationCollector(), 0
    for _, ev in iter_events(path):
        if not isinstance(ev, dict):
            continue
        at += ev.get("type") == "start"
        if at == stream or (at == 0 and stream == 1):
            collect(ev)
    if collect.fs is None and not collect.rows:
        raise UserError(f"{path}: no events; is this an events file from ecg-device?")
    return collect.annotations()


class AnnotationCollector:
    """An events sink that keeps what the annotations need, a few numbers per beat, not the
    events: a day-long ``run --record`` collects its annotation file this way."""

    def __init__(self):
        self.fs: float | None = None
        self.rows: list[tuple[int, str, str, int]] = []
        self.opened: dict[tuple[str, int], int] = {}  # (rhythm, episode) -> start sample
        self.spans: list[tuple[int, int | None, str]] = []
        self.quality: list[tuple[int, str]] = []
        self.end: int | None = None
        self.rate_changed = False

    def __call__(self, ev: dict) -> None:
        kind = ev.get("type")
        if kind == "start" and self.fs is None and isinstance(ev.get("fs"), (int, float)):
            self.fs = float(ev["fs"])
        elif kind == "beat":
            self.rows.append((_sample(ev), ev.get("class", "N"), "", 0))
        elif kind == "quality":
            self.quality.append((_sample(ev), ev["level"]))
        elif kind == "summary" and isinstance(ev.get("duration_s"), (int, float)) and self.fs:
            self.end = int(round(ev["duration_s"] * self.fs))
        elif kind == "gap":
            self.quality.append((_sample(ev), "lost"))
            self.quality.append((_sample(ev) + int(ev["lost_samples"]), "restored"))
        elif kind == "status" and ev.get("status") == "rate_change":
            self.rate_changed = True
        elif isinstance(kind, str) and kind.startswith(EPISODE_EVENTS):
            key = (ev["rhythm"], ev.get("episode"))
            if kind.endswith("_start"):
                self.opened[key] = _sample(ev)
            elif key in self.opened:
                begin = self.opened.pop(key)
                if ev["rhythm"] == "PAUSE":
                    self.rows.append((begin, '"', f"PAUSE {ev['duration_s']:.2f} s", 0))
                else:
                    self.spans.append((begin, _sample(ev), ev["rhythm"]))

    def annotations(self) -> Annotations:
        if self.fs is None:
            raise UserError("the events have no start event with the sample rate; give the "
                            "whole events file of a session")
        if self.rate_changed:
            raise UserError("the front-end changed its sample rate during the stream; one "
                            "annotation file holds one rate")
        spans = self.spans + [(a, None, name) for (name, _), a in self.opened.items()
                              if name != "PAUSE"]
        rows = self.rows + _rhythm_rows(spans) + _noise_rows(self.quality, self.end)
        rows += [r for a, b, name in spans if name == "VF"
                 for r in [(a, "[", "", 0)] + ([(b, "]", "", 0)] if b is not None else [])]
        rows.sort(key=lambda r: (r[0], _RANK.get(r[1], 3)))
        out = Annotations(self.fs)
        for sample, symbol, note, sub in rows:
            out.sample.append(sample)
            out.symbol.append(symbol)
            out.aux.append(note)
            out.subtype.append(sub)
        return out


def annotations_of(events: Iterable[dict]) -> Annotations:
    """The annotations of one stream's events (in the order the monitor emitted them: onsets
    it found late come after the beats they date back to)."""
    collect = AnnotationCollector()
    for ev in events:
        collect(ev)
    return collect.annotations()


def _sample(ev: dict) -> int:
    s = ev.get("sample")
    if isinstance(s, bool) or not isinstance(s, (int, float)) or s < 0:
        raise UserError(f"{ev.get('type')} event at t={ev.get('t')} without a valid sample "
                        f"index ({s!r}); the events file is damaged or not from ecg-device")
    return int(s)


def _rhythm_rows(spans: list[tuple[int, int | None, str]]) -> list[tuple[int, str, str, int]]:
    """``+`` annotations wherever the episode that names the stretch changes."""
    cuts = sorted({s for a, b, _ in spans for s in (a, b) if s is not None})
    rows, current = [], NO_EPISODE
    for at in cuts:
        open_here = {name for a, b, name in spans if a <= at and (b is None or at < b)}
        name = next((RHYTHM_NOTES[r] for r in RHYTHM_ORDER if r in open_here), NO_EPISODE)
        if name != current:
            rows.append((at, "+", name, 0))
            current = name
    return rows


def _noise_rows(changes: list[tuple[int, str]], end: int | None
                ) -> list[tuple[int, str, str, int]]:
    """``~`` annotations at each change of the signal's readability (gaps unreadable), and
    one at ``end`` (the stream's last sample) if it ends unreadable."""
    rows, level, lost, shown = [], "good", 0, 0
    for at, what in sorted(changes, key=lambda c: c[0]):
        if what == "lost":
            lost += 1
        elif what == "restored":
            lost -= 1
        else:
            level = what
        sub = -1 if lost else NOISE_SUBTYPES.get(level, 0)
        if sub != shown:
            rows.append((at, "~", "", sub))
            shown = sub
    if shown == -1 and end is not None and (not rows or rows[-1][0] < end):
        rows.append((end, "~", "", 0))
    return rows


def write_annotations(path: str | Path, ann: Annotations) -> Path:
    """Write ``ann`` as an MIT-format annotation file, readable by its owner only (it tells a
    person's heart rhythm)."""
    path = Path(path)
    data = encode_annotations(ann.sample, ann.symbol, ann.aux, ann.subtype, fs=ann.fs)
    with open_private(path, "wb", "annotations", "a file name such as 100.ecg") as fh:
        fh.write(data)
    return path
