"""Beat scorers: the bundle's model (batched TFLite) or a non-learned reference detector."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ecg_edge.device import reference
from ecg_edge.device.aberrancy import onset_similarity
from ecg_edge.device.bundle import Bundle, BundleError, check_quantization
from ecg_edge.device.classes import (
    RR_FEATURES,
    BeatCalls,
    ClassSpec,
    PWaveTrend,
    RRTrend,
    VBaseline,
    baseline_valid,
    calls_for_inputs,
    ectopic_match,
    p_wave_evidence,
    s_p_wave,
    s_rule_rr,
    s_run_rr,
    softmax,
    v_logit,
    v_reversed_corr,
    v_width,
)
from ecg_edge.device.ectopy import EctopicTemplates
from ecg_edge.device.features import ScoreSpec, model_inputs
from ecg_edge.device.interpreter import ModelRunner, RuntimeInfo, make_interpreter
from ecg_edge.device.signal_path import Beats

Scorer = Callable[[Beats], np.ndarray]
#: The template distance among a classifier's input channels (the wide-QRS rule reads it).
DISTANCE = 2 + RR_FEATURES.index("template_distance")


class ModelScorer:
    """Scores beats with the bundle's model in fixed-size batches.

    A fixed batch keeps the interpreter's tensors allocated once (resizing per block would
    re-plan memory every call); the last partial batch is padded, to the next power of two
    (one interpreter per size, made when first needed): a block of a live stream completes
    one to four beats, and padding those to 32 windows made the model cost four to eight times
    what they need (the two-member model, one core: 116 µs a call at 32 against 10-19 µs at
    1-4). The Edge TPU needs batch 1.
    """

    def __init__(self, bundle: Bundle, variant: str = "int8", threads: int = 1,
                 edgetpu: bool = False, runtime: str | None = None, batch: int = 32,
                 xnnpack: bool = True):
        m = bundle.manifest
        model = m.model if variant == m.model.variant else m.float_model
        if model is None or model.variant != variant:
            have = [x.variant for x in (m.model, m.float_model) if x is not None]
            raise BundleError(f"{bundle.root}: no {variant} model in the bundle "
                              f"(it has: {', '.join(have)})")
        self.variant = variant
        self.spec = ScoreSpec(**m.score)
        self.signal = m.signal
        self.batch = 1 if edgetpu else batch
        self._make = lambda: make_interpreter(bundle.path(model.file), threads=threads,
                                              runtime=runtime, edgetpu=edgetpu, xnnpack=xnnpack)
        self.interpreter, self.runtime = self._make()
        if variant == m.model.variant:
            check_quantization(bundle, self.interpreter)
        self.runner = ModelRunner(self.interpreter)
        if self.runner.static > 0:  # a fixed-batch model (Edge TPU, TFLite-Micro) sets it
            self.batch = self.runner.static
        self._runners = {self.batch: self.runner}  # by batch size: the padded sizes
        self.input_shape = tuple(model.input.shape[1:])
        self.classes: ClassSpec | None = None
        if self.spec.scoring == "classifier":
            if m.classes is None:
                raise BundleError(f"{bundle.root}: a classifier bundle without a 'classes' "
                                  "section; re-export it")
            self.classes = m.classes
        self.reset()

    def reset(self) -> None:
        """Forget the wearer: a new stream starts from nothing another stream left behind.

        The scorer carries what it learned of one wearer across blocks (RR trend, V
        baseline, P waves, ectopic templates, the last calls). One scorer serves one stream
        at a time, and :class:`~ecg_edge.device.monitor.Monitor` calls this when it starts,
        so a folder of records scored with one interpreter gives each record the figures it
        gets alone (before, record N inherited record N-1's ectopic templates)."""
        self.history: np.ndarray | None = None  # local-baseline state, carried across blocks
        self.v_base: VBaseline | None = None
        c = self.classes
        if c is not None:
            self.trend = RRTrend.for_spec(c)
            # the wearer's baseline of V evidence, carried across blocks (None: off)
            self.v_base = (VBaseline(c.v_baseline_beats, c.v_baseline_quantile)
                           if c.v_baseline_beats and c.v_baseline_weight else None)
            # the previous beats' P waves (are the wearer's sinus P waves there?)
            self.p_trend = PWaveTrend(c.s_sinus_p_beats)
        self.ectopic: EctopicTemplates | None = None  # the wearer's ectopic templates
        self.v_last = False  # the last beat was a V call (ClassSpec.v_run_rr_s)
        # the last beat's call, the RR before it and its run's (s_runs)
        self.s_last: tuple[str, float, float] = ("", math.nan, math.nan)

    @property
    def info(self) -> RuntimeInfo:
        return self.runtime

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Model outputs for (n, W, C) inputs, in batches of ``self.batch``."""
        n = len(x)
        if self.runner.static > 0 and n:
            return self.runner(x)  # it runs a fixed-batch model in its own batch size
        out = []
        for a in range(0, n, self.batch):
            chunk = x[a : a + self.batch]
            size = min(self.batch, 1 << (len(chunk) - 1).bit_length())
            if len(chunk) < size:
                pad = np.repeat(chunk[-1:], size - len(chunk), axis=0)
                chunk = np.concatenate([chunk, pad])
            out.append(self._runner(size)(chunk)[: min(self.batch, n - a)])
        return np.concatenate(out) if out else np.zeros((0, *self.input_shape[:-1], 1))

    def _runner(self, size: int) -> ModelRunner:
        """The runner whose interpreter keeps its tensors allocated for ``size`` windows."""
        runner = self._runners.get(size)
        if runner is None:
            runner = self._runners[size] = ModelRunner(self._make()[0])
        return runner

    def __call__(self, beats: Beats) -> np.ndarray | BeatCalls:
        if self.classes is not None:
            return self.classify(beats)
        if not len(beats):
            return np.zeros(0)
        x = model_inputs(beats, self.spec.inputs, signal=self.signal)
        scores, self.history = self.spec.score_stream(beats, x, self.predict(x), self.history)
        return scores

    def classify(self, beats: Beats, af: np.ndarray | None = None,
                 trend: np.ndarray | None = None,
                 p_own: np.ndarray | None = None,
                 qrs_corr: np.ndarray | None = None) -> BeatCalls:
        """Class calls of a classifier bundle. The RR irregularity is carried across blocks
        (a model input); ``af`` (AF open in the rhythm analysis, per beat) adds to the
        bundle's own irregularity rule for withholding S calls and raises the V threshold to
        the bundle's AF one. ``trend``: the same RRTrend output computed by the caller (then
        the caller must pass it for every block); ``p_own``: the beats' :func:`s_p_wave`,
        computed by the caller (None: computed here); ``qrs_corr``: the beats' QRS
        correlation with the template (:func:`v_reversed_corr`), if the caller has it."""
        p_wave = (s_p_wave(beats, self.classes, self.signal.fs, self.signal.window_before_s)
                  if p_own is None else p_own)
        if trend is None:
            trend = self.trend(beats.rr_prev, p_wave)
        p_wave = None if p_wave is None else p_wave_evidence(
            p_wave, self.p_trend, onset_similarity(beats, self.classes, self.signal.fs,
                                                   self.signal.window_before_s))
        if not len(beats):
            return BeatCalls(np.zeros(0), np.zeros(0, "<U1"))
        x = model_inputs(beats, self.spec.inputs, trend, classes=self.classes,
                         signal=self.signal)
        probs = softmax(self.predict(x))
        base = (None if self.v_base is None
                else self.v_base(v_logit(probs[:, 2]),
                                 baseline_valid(beats, self.classes.v_baseline_good_only)))
        fs, before_s = self.signal.fs, self.signal.window_before_s
        ectopic, self.ectopic = ectopic_match(beats, probs[:, 2], self.classes, fs, before_s,
                                              self.ectopic, x[:, 0, DISTANCE])
        calls = calls_for_inputs(x, probs, self.classes, beats.learning, af, base,
                                 s_rule_rr(beats.rr_prev, trend, self.classes), p_wave,
                                 v_width(beats, self.classes, fs, before_s, x[:, 0, DISTANCE]),
                                 ectopic, beats.rr_prev, self.v_last,
                                 s_run_rr(beats.rr_prev, trend, self.classes), self.s_last,
                                 v_reversed_corr(beats, self.classes, fs, before_s, af,
                                                 qrs_corr))
        self.v_last, self.s_last = calls.v_last, calls.s_last
        return calls


def reference_scorer(name: str) -> Scorer:
    if name not in reference.DETECTORS:
        raise ValueError(f"unknown reference detector {name!r}")
    return lambda beats: reference.score(beats, name)
