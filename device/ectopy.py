"""The wearer's own ectopic beats as V evidence.

A Holter analyst labels one PVC of a morphology and every beat of that shape follows. The
classifier cannot: trained on other patients, it gives some of this wearer's PVCs a p(V) just
under its bar while it calls others of the same shape with confidence (DS1: 223, 106, 215;
train/RESULTS.md, tenth pass). So the beats it does call V with confidence, in good signal and
away from the wearer's normal template, become the wearer's ectopic templates (a few, one per
morphology), and a later beat that matches one of them closely carries V evidence of its own.
Causal and carried across blocks: a beat is compared with the templates made before it.
"""

from __future__ import annotations

import numpy as np

from ecg_edge.device.arrays import mean_last

#: How far a template moves towards each new beat of its morphology (exponential average).
ALPHA = 0.2
#: A confidently called V beat joins the template it correlates with at least this well;
#: otherwise it starts a new one (the oldest is dropped beyond ``templates``).
JOIN = 0.9


class EctopicTemplates:
    """Per wearer: the templates of confidently called V beats and, per beat, how closely it
    matches the nearest one before it. ``region`` (start, stop) indexes the beat window."""

    def __init__(self, templates: int, region: tuple[int, int]):
        self.k = templates
        self.a, self.b = region
        self.bank = np.zeros((0, self.b - self.a))
        self.count = np.zeros(0, np.int64)  # beats that made each template

    def __call__(self, window: np.ndarray, template: np.ndarray, enter: np.ndarray
                 ) -> np.ndarray:
        """(n, 4): each beat's correlation with its nearest ectopic template, the RMS
        difference to that one over its RMS, that difference over the difference to the
        wearer's normal ``template`` (below 1: nearer the ectopic one) and the number of beats
        that made that template (NaN before any ectopic template); then beats where ``enter``
        join the templates."""
        out = np.full((len(window), 4), np.nan)
        if not len(self.bank) and not np.any(enter):
            return out  # most blocks of most wearers: nothing to match, nothing to learn
        x = np.asarray(window, np.float64)[:, self.a:self.b]
        x = x - mean_last(x, keepdims=True)
        t = np.asarray(template, np.float64)[:, self.a:self.b]
        to_normal = _norms(x - (t - mean_last(t, keepdims=True)))
        norm = _norms(x)
        start = 0  # beats between two that join are matched in one pass
        for e in [*(enter & (norm > 0)).nonzero()[0].tolist(), len(x)]:
            stop = min(e + 1, len(x))
            j = self._match(x[start:stop], norm[start:stop], to_normal[start:stop],
                            out[start:stop])
            if e < len(x):  # the entering beat is the last matched: its nearest template
                self._join(x[e], out[e, 0], None if j is None else int(j[-1]))
            start = stop
        return out

    def _match(self, x: np.ndarray, norm: np.ndarray, to_normal: np.ndarray,
               out: np.ndarray) -> np.ndarray | None:
        """Fill ``out`` for beats ``x``; the index of each one's nearest template (None
        before any)."""
        if not len(self.bank) or not len(x):
            return None
        tn = _norms(self.bank)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = (x @ self.bank.T) / (norm[:, None] * tn[None, :] + 1e-12)
        j = c.argmax(axis=1)
        d = _norms(x - self.bank[j])
        m = np.empty((len(x), 4))  # np.stack's columns, without its wrapper
        m[:, 0] = c[np.arange(len(x)), j]
        m[:, 1] = d / (tn[j] + 1e-12)
        m[:, 2] = d / (to_normal + 1e-12)
        m[:, 3] = self.count[j]
        ok = norm > 0
        out[ok] = m[ok]
        return j

    def _join(self, x: np.ndarray, corr: float, j: int | None) -> None:
        if j is not None and corr >= JOIN:
            self.bank[j] += ALPHA * (x - self.bank[j])
            self.count[j] += 1
        else:
            self.bank = np.vstack([self.bank, x])[-self.k:]
            self.count = np.append(self.count, 1)[-self.k:]


def _norms(x: np.ndarray) -> np.ndarray:
    """``np.linalg.norm(x, axis=1)`` of a real 2-D array, as that function computes it
    (sqrt of the add-reduced squares) without its wrapper: a block has a few beats."""
    return np.sqrt(np.add.reduce(x * x, axis=1))


def v_like(match: np.ndarray, distance: np.ndarray, p_v: np.ndarray, corr: float, rel: float,
           min_distance: float, nearer: float = 1.0, floor: float = 0.0, support: int = 1
           ) -> np.ndarray:
    """V evidence from ``match`` (:class:`EctopicTemplates`' output): the correlation over
    ``corr`` where it is above it, the RMS difference is within ``rel``, within ``nearer`` x
    the difference to the normal template, the beat departs from the wearer's normal
    template by more than ``min_distance``, the classifier gives it a p(V) ``p_v`` of at
    least ``floor`` and at least ``support`` beats made the template; else 0 (no evidence).
    The floor keeps out the wearer's own beats after a change of axis, which match templates
    made of the first of them (DS1: 118)."""
    m = np.asarray(match, np.float64)
    with np.errstate(invalid="ignore"):
        ok = ((m[:, 0] > corr) & (m[:, 1] <= rel) & (m[:, 2] <= nearer)
              & (np.asarray(distance) > min_distance) & (np.asarray(p_v) >= floor)
              & (m[:, 3] >= support))
    return np.where(ok, m[:, 0] / corr, 0.0)


__all__ = ["EctopicTemplates", "v_like", "ALPHA", "JOIN"]
