"""Ectopy patterns over the beat types: supraventricular runs (SVT), ventricular bigeminy and
trigeminy, as episodes (``pattern_start`` / ``pattern_end``: told, not alarmed); and the run
lengths of S and V beats (single, couplets, runs).

Why: a Holter report names them, and a wearer's PVC burden alone does not say whether the
ectopic beats come one in two, one in three or in runs. MIT-BIH annotates them as rhythms
(``(SVTA``, ``(B``, ``(T``), so they are evaluated like AF and VT (:mod:`device.rhythm_eval`).
They read only the beat path's class calls, so they are as good as those calls. The
definitions are MIT-BIH's shortest annotated episodes, not tuned: three S beats in a row
faster than a rate (SVTA); three ventricular beats each one beat apart (``VNVNV``, bigeminy)
or two beats apart (``VNNVNNV``, trigeminy). Fusion beats (F) count as ventricular, as the
annotators count them (DS1 208's repeats of ``VNF`` are not trigeminy). A couplet inside an
open bigeminy or trigeminy does not end it (106's bigeminy keeps its episodes through one).

The machines here are pure state: each beat returns what opens or closes, dated at a beat
(time, sample); :class:`device.rhythm.RhythmAnalyzer` turns that into events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Beat = tuple[float, int]  # (time s, sample)
#: The episodes these machines open: named, not alarmed (the live view and the session report
#: keep the alarm colour and the first strips for the rhythms).
PATTERNS = ("SVT", "BIGEMINY", "TRIGEMINY")


@dataclass
class Change:
    """An episode opens (``start``) or closes (``end``) dated at ``at``."""

    what: str  # "start" or "end"
    at: Beat


class EveryKthV:
    """Every ``k``-th beat ventricular (2: bigeminy, 3: trigeminy) for ``cycles`` ventricular
    beats in a row opens an episode at the first of them; a non-ventricular beat where the
    next ventricular one was due ends it at the last beat that kept the pattern. Beats whose
    type noise withheld (Q) keep an open pattern going as the beat it expected; before one
    opens they restart the count (nothing known about them)."""

    def __init__(self, k: int, cycles: int):
        self.k, self.cycles = k, cycles
        self.is_open = False
        self.reset()

    def reset(self) -> None:
        self.n = 0  # ventricular beats in the pattern so far
        self.since: int | None = None  # beats since its last ventricular one
        self.first: Beat | None = None
        self.last_fit: Beat | None = None

    def push(self, beat: Beat, rr: float, cls: str, ok: bool) -> list[Change]:
        """One beat (its RR is not read): what opens or closes. A beat found in unreadable
        signal (``ok`` false) counts as one whose type is unknown (Q)."""
        if cls == "Q" or not ok:
            if not self.is_open:
                self.reset()
                return []
            self.since = 0 if self.since == self.k - 1 else self.since + 1
            self.last_fit = beat
            return []
        out: list[Change] = []
        if cls in ("V", "F"):
            if self.since == self.k - 1:
                self.n += 1
            elif not (self.is_open and self.since == 0):  # a couplet in an open pattern: on
                out += self.close()
                self.n, self.first = 1, beat
            self.since, self.last_fit = 0, beat
            if not self.is_open and self.n >= self.cycles:
                self.is_open = True
                out.append(Change("start", self.first))
            return out
        if self.since is None:
            return out
        self.since += 1
        if self.since > self.k - 1:  # the next ventricular beat was due here
            out += self.close()
            self.reset()
        else:
            self.last_fit = beat
        return out

    def close(self) -> list[Change]:
        """End an open pattern at its last fitting beat (also at a gap or the end)."""
        if not self.is_open:
            return []
        self.is_open = False
        at = self.last_fit
        self.reset()
        return [Change("end", at)]

    def evidence(self) -> dict:
        return {}


class BeatRun:
    """``beats`` beats of one class in a row faster than ``rate_bpm`` (from their known RR)
    open an episode at the first of them; the first beat of another type ends it at the
    run's last beat. Beats whose type noise withheld (Q) or found in unreadable signal hold
    an open run (as VT's hold through noise)."""

    def __init__(self, cls: str, beats: int, rate_bpm: float):
        self.cls, self.beats, self.rate_bpm = cls, beats, rate_bpm
        self.is_open = False
        self.run: list[tuple[float, int, float]] = []

    def reset(self) -> None:
        self.run.clear()

    def push(self, beat: Beat, rr: float, cls: str, ok: bool) -> list[Change]:
        if self.is_open and (cls == "Q" or not ok):
            return []
        if cls == self.cls and ok:
            self.run.append((beat[0], beat[1], rr))
            last = self.run[-self.beats:]
            if not self.is_open and len(last) >= self.beats and run_rate_bpm(last) > self.rate_bpm:
                self.is_open = True
                del self.run[: -self.beats]
                return [Change("start", last[0][:2])]
            return []
        out = self.close()
        self.run.clear()
        return out

    def close(self) -> list[Change]:
        if not self.is_open:
            return []
        self.is_open = False
        at = self.run[-1][:2]
        self.run.clear()
        return [Change("end", at)]

    def evidence(self) -> dict:
        """What a start event carries: the run's rate."""
        return {"hr_bpm": round(run_rate_bpm(self.run), 1)}


def run_rate_bpm(run: list) -> float:
    """Rate of a run of beats (t, sample, RR before) from its known RR intervals (a run may
    begin at a beat whose RR is unknown: a peak lost before it); NaN without any."""
    known = [x[2] for x in run if x[2] == x[2]]
    return 60.0 * len(known) / sum(known) if known else float("nan")


class RunCounts:
    """Runs of one beat type over the stream, as a Holter report counts them: single beats,
    couplets, runs of three or more, and the longest run. A beat of another type ends a run,
    and so does a beat whose type is unknown (Q: learning period, noise) or a gap
    (:meth:`end`): nothing is known of what it hid. Blocks of any size give the same counts."""

    def __init__(self, cls: str):
        self.cls = cls
        self.open = 0  # beats of the run still going at the last beat
        self.tally = {"single": 0, "couplets": 0, "runs": 0, "longest": 0}

    def push(self, classes: np.ndarray) -> None:
        hit = np.asarray(classes) == self.cls
        if not len(hit):
            return
        edges = np.diff(np.concatenate([[0], hit.view(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        lengths = (stops - starts).tolist()
        if lengths and starts[0] == 0:
            lengths[0] += self.open  # the run of the last block goes on
        else:
            self.end()
        self.open = lengths.pop() if lengths and hit[-1] else 0
        for n in lengths:
            self._count(self.tally, n)

    def end(self) -> None:
        """A gap or the end of the stream closes the open run."""
        self._count(self.tally, self.open)
        self.open = 0

    def counts(self) -> dict[str, int]:
        """The tallies with the open run counted as if it ended here."""
        out = dict(self.tally)
        self._count(out, self.open)
        return out

    @staticmethod
    def _count(tally: dict[str, int], n: int) -> None:
        if n:
            tally["single" if n == 1 else "couplets" if n == 2 else "runs"] += 1
            tally["longest"] = max(tally["longest"], n)
