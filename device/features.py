"""What goes into a model and how its output becomes a beat score: one definition, TF-free.

Training builds its inputs and scores with these functions and the device does the same from
the bundle's ``score`` section (:class:`ScoreSpec`), so the two cannot drift apart.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import numpy as np

from ecg_edge.device import reference
from ecg_edge.device.arrays import finite
from ecg_edge.device.scaling import Scaling
from ecg_edge.device.signal_path import Beats

#: The wearer-relative channels (beat − template, template) at the front of every ``wearer*``
#: input: the only ones an inverted lead changes.
WEARER_CHANNELS = 2
#: A ``wearer*`` mode with this suffix turns each beat's wearer channels upright
#: (:func:`upright_sign`): the model sees every lead's QRS pointing the same way.
UPRIGHT = "+upright"
_WEARER_INPUTS = ("wearer", "wearer+rr", "wearer+rr+shape", "wearer+rr+atrial")
INPUTS = (*_WEARER_INPUTS, "absolute", *(m + UPRIGHT for m in _WEARER_INPUTS))
COMBINE = ("model", "model+rr", "model+template+rr")
#: ``classifier``: the model outputs class probabilities (:data:`device.classes.LABELS`), not a
#: reconstruction; its score is their abnormal part (see :func:`classifier_score`).
SCORING = ("reconstruction", "forecast", "classifier")


@dataclass(frozen=True)
class ScoreSpec:
    """How a model's windows are built and its error turned into a beat score (in the bundle)."""

    inputs: str = "wearer"
    combine: str = "model+rr"
    scoring: str = "reconstruction"
    horizon: int = 1  # forecast: steps ahead
    skip: int = 0  # forecast: leading steps left out of the error (receptive-field warm-up)
    baseline_beats: int = 0  # > 0: subtract the median shape term of the previous K beats
    # > 0: divide that difference by max(1, spread / spread_floor), the spread being the median
    # absolute deviation of the same K beats (noise damping; units of the shape term)
    spread_floor: float = 0.0

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.inputs, INPUTS, "inputs"),
                                     (self.combine, COMBINE, "score combination"),
                                     (self.scoring, SCORING, "scoring")):
            if value not in allowed:
                raise ValueError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}")

    def to_dict(self) -> dict:
        return asdict(self)

    def score(self, beats: Beats, x: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """Beat scores of a whole record from model inputs ``x`` and the model's output."""
        return self.score_stream(beats, x, pred, None)[0]

    def score_stream(self, beats: Beats, x: np.ndarray, pred: np.ndarray,
                     history: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """One block of a stream: (scores, the local-baseline state to pass to the next)."""
        if self.scoring == "classifier":
            return classifier_score(pred), np.zeros(0)
        mse = window_errors(x, pred, self.scoring, self.skip, self.horizon)
        return beat_scores_stream(mse, beats, self.combine, self.baseline_beats, history,
                                  self.spread_floor)


def model_inputs(beats: Beats, mode: str, trend: np.ndarray | None = None,
                 rr_neutral_above: float = 1.0, classes=None, signal=None) -> np.ndarray:
    """(n, W, C) float32 model input.

    ``wearer``: channel 0 = beat − template, channel 1 = template, both in the wearer's units
    (centred, divided by the wearer's running QRS amplitude). Beats before the first template get
    a zero template (they are inside the learning period).
    ``absolute``: the beat alone, robust-scaled (median/IQR), as a global model sees it.
    ``wearer+rr``: the two wearer channels plus one constant channel per rhythm feature
    (:func:`device.classes.rr_features`: prematurity against the local and the long-term RR,
    following pause, template distance, amplitude, RR irregularity before the beat), so a
    single input tensor carries shape and rhythm and the model converts like any other.
    ``trend`` is the per-beat output of :class:`device.classes.RRTrend` (a stream passes its
    carried one; None computes it over ``beats`` as one whole record); ``rr_neutral_above``
    (the bundle's ``classes``) reaches the rhythm features.
    ``wearer+rr+shape``: ``wearer+rr`` plus one constant channel per shape feature against the
    wearer's template (:func:`device.morphology.shape_features`: correlation, QRS width, area
    and main-deflection ratios), after the rhythm features.
    ``wearer+rr+atrial``: ``wearer+rr`` plus one constant channel per supraventricular feature
    (:func:`device.classes.atrial_features`: local and next RR against the long-term RR, the
    P-wave region against the template's), after the rhythm features.
    Any ``wearer*`` mode + :data:`UPRIGHT`: the same, each beat's wearer channels times
    :func:`upright_sign`, so an inverted lead gives the very inputs of the lead as recorded.
    ``classes`` (a :class:`device.classes.ClassSpec`, the bundle's) sets the RR trend's lengths,
    ``rr_neutral_above`` and the P-wave region; ``signal`` (the bundle's SignalConfig) the
    window's rate and R position. Training passes the same (:func:`train.classifier.
    record_inputs`).
    """
    if mode.endswith(UPRIGHT):
        x = model_inputs(beats, mode[: -len(UPRIGHT)], trend, rr_neutral_above, classes, signal)
        x[..., :WEARER_CHANNELS] *= upright_sign(beats, signal)[:, None, None]
        return x
    if classes is not None:
        rr_neutral_above = classes.rr_neutral_above
        if trend is None and mode.startswith("wearer+rr"):
            from ecg_edge.device.classes import RRTrend

            trend = RRTrend(classes.irregular_beats, classes.long_rr_beats)(beats.rr_prev)
    if mode == "wearer+rr+atrial":
        from ecg_edge.device.classes import ClassSpec, RRTrend, atrial_features
        from ecg_edge.device.config import SignalConfig

        spec, sig = classes or ClassSpec(), signal or SignalConfig()
        if trend is None:
            trend = RRTrend(spec.irregular_beats, spec.long_rr_beats)(beats.rr_prev)
        x = model_inputs(beats, "wearer+rr", trend, rr_neutral_above)
        f = atrial_features(beats, trend, sig.fs, sig.window_before_s, spec.p_region_s)
        out = np.empty((*x.shape[:2], x.shape[2] + f.shape[1]), np.float32)
        out[..., : x.shape[2]] = x
        out[..., x.shape[2] :] = f[:, None, :]
        return out
    if mode == "wearer+rr+shape":
        from ecg_edge.device.morphology import shape_features

        x = model_inputs(beats, "wearer+rr", trend, rr_neutral_above)
        f = shape_features(beats)
        return np.concatenate([x, np.repeat(f[:, None, :], x.shape[1], axis=1)], axis=2)
    if mode == "wearer+rr":
        from ecg_edge.device.classes import RRTrend, rr_features

        if trend is None:
            trend = RRTrend()(beats.rr_prev)
        rr = rr_features(beats, trend, rr_neutral_above)
        w = model_inputs(beats, "wearer")
        x = np.empty((*w.shape[:2], w.shape[2] + rr.shape[1]), np.float32)
        x[..., : w.shape[2]] = w
        x[..., w.shape[2] :] = rr[:, None, :]  # constant along the window
        return x
    if mode == "wearer":
        amp = np.maximum(beats.amplitude.astype(np.float32), 1e-6)[:, None]
        beat = Scaling("wearer").apply(beats.window, beats.amplitude)
        tpl = finite(beats.template.astype(np.float32)) / amp
        out = np.empty((*tpl.shape, 2), np.float32)  # np.stack, without its wrapper
        out[..., 0] = beat - tpl
        out[..., 1] = tpl
        return out
    if mode == "absolute":
        return Scaling("robust").apply(beats.window)[..., None].astype(np.float32)
    raise ValueError(f"unknown input mode {mode!r}; use one of {', '.join(INPUTS)}")


def upright_sign(beats: Beats, signal=None) -> np.ndarray:
    """Per beat, -1 where the wearer's template points down at the fiducial (the R peak sits
    ``signal.window_before_s`` into the window; default: SignalConfig's), else 1; before the
    first template, the beat's own fiducial decides. The detector's fiducial is the QRS's
    largest deflection whatever its sign, so this is the lead's polarity as this wearer's QRS
    shows it; inverting the lead flips both the beat and this sign, and their product stays."""
    if signal is None:
        from ecg_edge.device.config import SignalConfig

        signal = SignalConfig()
    r = int(round(signal.window_before_s * signal.fs))
    t = beats.template[:, r]
    return np.where(np.where(np.isnan(t), beats.window[:, r], t) < 0, -1.0, 1.0).astype(
        np.float32)


def inverted_lead(x: np.ndarray, mode: str) -> np.ndarray:
    """The ``wearer*`` model inputs ``x`` (n, W, C; input ``mode``) of the same beats on an
    inverted lead (electrodes swapped, or a lead whose QRS points down): the band-pass is
    linear and the detector's fiducial is the largest deflection whatever its sign, so the
    windows and the template change sign and nothing else does; the RR features, the template
    distance, the amplitude ratio and the P-wave correlations are the same. A ``+upright``
    mode turns them back: its inputs are the same on either lead."""
    out = np.array(x, dtype=np.float32, copy=True)
    if not mode.endswith(UPRIGHT):
        out[..., :WEARER_CHANNELS] *= -1.0
    return out


def classifier_score(pred: np.ndarray) -> np.ndarray:
    """Abnormal probability 1 − p(N) of a classifier's (n, 4) logits (ranking before the class
    thresholds; :func:`device.classes.calls_from_probs` makes the calls)."""
    from ecg_edge.device.classes import softmax

    return 1.0 - softmax(pred)[:, 0]


def targets(x: np.ndarray, scoring: str, horizon: int = 1) -> np.ndarray:
    """Training target for windows ``x`` (n, L, C): channel 0, shifted ``horizon`` steps for
    forecasts. The last ``horizon`` forecast targets repeat the last sample (nothing follows
    it); :func:`window_errors` leaves those steps out of the score."""
    beat = x[..., :1]
    if scoring == "forecast":
        return np.concatenate([beat[:, horizon:]] + [beat[:, -1:]] * horizon, axis=1)
    return beat


def window_errors(x: np.ndarray, pred: np.ndarray, scoring: str, skip: int = 0,
                  horizon: int = 1) -> np.ndarray:
    """Per-window mean squared error between prediction and target."""
    y = targets(x, scoring, horizon)[..., 0]
    p = np.asarray(pred)[..., 0]
    if scoring == "forecast":
        y, p = y[:, skip:-horizon], p[:, skip:-horizon]
    return np.mean((y - p) ** 2, axis=1)


def rms_error(mse: np.ndarray, beats: Beats) -> np.ndarray:
    """RMS model error (on the scale of the template distance); NaN before the wearer has a
    template (learning period)."""
    err = np.sqrt(np.maximum(np.asarray(mse, dtype=np.float64), 0.0))
    err[np.isnan(beats.template).any(axis=1)] = np.nan
    return err


def shape_term(mse: np.ndarray, beats: Beats, combine: str) -> np.ndarray:
    """The shape part of a score (NaN-free): the model error, or for ``model+template+rr`` its
    mean with the shift-tolerant template distance (both RMS in the wearer's amplitude units;
    weights fixed a priori)."""
    err = finite(rms_error(mse, beats))
    if combine == "model+template+rr":
        return 0.5 * (err + finite(reference.template_distance(beats)))
    return err


def local_baseline(values: np.ndarray, k: int, history: np.ndarray | None = None,
                   valid: np.ndarray | None = None, with_spread: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and median absolute deviation of the previous ``k`` valid values for each beat
    (0 before any), causally.

    A stretch of noise raises every beat's shape term and scatters it; an ectopic beat still
    stands out above its neighbours by more than their scatter. ``history`` is the last (up to
    k) values before this block; returns (baseline, spread, new history) per beat, so
    block-by-block calls equal one whole-array call. Without ``with_spread`` the spread stays 0
    (a score with no noise damping need not pay for it).
    """
    v = np.asarray(values, dtype=np.float64)
    ok = (np.isfinite(v) if valid is None else np.asarray(valid, bool) & np.isfinite(v)).tolist()
    vals = v.tolist()
    buf = [] if history is None else [float(h) for h in np.asarray(history)[-k:]]
    out, spread = np.zeros(len(v)), np.zeros(len(v))
    median = statistics.median  # same value as np.median, far cheaper on a dozen floats
    for i in range(len(v)):
        if buf:
            out[i] = m = median(buf)
            if with_spread:
                spread[i] = median([abs(b - m) for b in buf])
        if ok[i]:
            buf.append(vals[i])
            if len(buf) > k:
                del buf[0]
    return out, spread, np.asarray(buf, dtype=np.float64)


def beat_scores_stream(mse: np.ndarray, beats: Beats, combine: str, baseline_beats: int = 0,
                       history: np.ndarray | None = None, spread_floor: float = 0.0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Final beat scores (higher = more abnormal) and the local-baseline state.

    ``model``: RMS model error; ``model+rr``: plus max(0, RR prematurity), so either shape or
    rhythm can flag a beat, as in the ``combined`` reference; ``model+template+rr``: the mean of
    model error and template distance, plus RR. ``baseline_beats`` > 0 subtracts the local
    baseline of the shape term first, and ``spread_floor`` > 0 then divides by the local spread
    where it exceeds that floor (in noise a beat must stand out by more).
    """
    if combine not in COMBINE:
        raise ValueError(f"unknown score combination {combine!r}; use one of "
                         f"{', '.join(COMBINE)}")
    err = rms_error(mse, beats)
    if combine == "model" and not baseline_beats:
        return err, np.zeros(0)
    shape = shape_term(mse, beats, combine)
    new_history = np.zeros(0)
    if baseline_beats:
        has_template = ~np.isnan(beats.template).any(axis=1)
        base, spread, new_history = local_baseline(shape, baseline_beats, history,
                                                   valid=has_template,
                                                   with_spread=spread_floor > 0)
        shape = shape - base
        if spread_floor > 0:
            shape = shape / np.maximum(1.0, spread / spread_floor)
    if combine == "model":
        return np.where(np.isnan(err), np.nan, shape), new_history
    return (shape + np.maximum(finite(reference.rr_prematurity(beats)), 0.0),
            new_history)


def beat_scores(mse: np.ndarray, beats: Beats, combine: str, baseline_beats: int = 0,
                spread_floor: float = 0.0) -> np.ndarray:
    """Beat scores of a whole record (see :func:`beat_scores_stream`)."""
    return beat_scores_stream(mse, beats, combine, baseline_beats, None, spread_floor)[0]
