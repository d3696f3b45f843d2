"""Compact Keras models for beat anomaly scoring: CNN autoencoder, TCN forecaster, LSTM-AE.

Every model takes windows shaped ``(length, channels)`` and outputs ``(length, 1)``: the first
input channel is the beat to score; further channels (e.g. the wearer's template) are context.
Reconstruction models predict channel 0 itself; the TCN *forecasts* it one step ahead, since a
causal model that saw the sample it reconstructs would learn the identity and score nothing.

Only layers TFLite int8 supports (Conv1D, Dense, ReLU, Add, Reshape, padding and cropping) are
used, except in the LSTM-AE, kept as the seeds' baseline and a known quantization trap. The
CNN-AE upsamples sub-pixel style (a Conv1D to twice the channels, then a Reshape that interleaves
them), not with UpSampling1D (TFLite ``TILE``: neither the Edge TPU nor tflite-micro runs it) nor
Conv1DTranspose (``TRANSPOSE_CONV``: XNNPack's int8 kernel made the int8 model 5x slower than
float). No custom layers: the functional graphs load with plain ``keras.models.load_model`` and
convert without custom objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
import numpy as np
from keras import layers

from ecg_edge.device import features

ARCHS = ("cnn_ae", "tcn", "lstm_ae")
#: How each architecture is scored: 'reconstruction' of the input or one-step 'forecast'.
SCORING = {"cnn_ae": "reconstruction", "tcn": "forecast", "lstm_ae": "reconstruction"}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the three architectures; defaults are compact (5-40 thousand weights)."""

    arch: str = "cnn_ae"
    filters: tuple[int, ...] = (24, 24)  # CNN-AE encoder stages (each halves the length)
    kernel: int = 5
    bottleneck: int = 16  # CNN-AE / LSTM-AE latent size
    tcn_filters: int = 16
    tcn_kernel: int = 3
    tcn_dilations: tuple[int, ...] = (1, 2, 4, 8)
    horizon: int = 8  # TCN: samples ahead it forecasts (1 step: ECG5000 AUC 0.94; 8: 0.989)
    lstm_units: int = 16

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; use one of {', '.join(ARCHS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def build_model(cfg: ModelConfig, length: int, channels: int = 1) -> keras.Model:
    """The model for ``cfg.arch`` on windows of ``length`` samples and ``channels`` channels."""
    if length < 8 or channels < 1:
        raise ValueError(f"windows of {length} samples x {channels} channels are too small")
    builder = {"cnn_ae": _cnn_ae, "tcn": _tcn, "lstm_ae": _lstm_ae}[cfg.arch]
    return builder(cfg, length, channels)


def _cnn_ae(cfg: ModelConfig, length: int, channels: int) -> keras.Model:
    """Strided Conv1D encoder -> Dense bottleneck -> Dense -> sub-pixel Conv1D decoder.

    Each decoder stage doubles the length (:func:`_upsample`): ``CONV_2D`` + ``RESHAPE`` in
    TFLite, the two ops every int8 target runs fastest. Measured on this machine (one thread,
    per window): transposed-conv decoder int8 39.5 µs with XNNPack, 19.8 µs builtin; sub-pixel
    7.8 µs with XNNPack, against 6.0 µs for its float32 model.

    24 channels, not 16: XNNPack's int8 convolution costs about 2 µs per op whether it has 16
    or 64 channels at these lengths, while float's cost grows with the MACs. At 16 channels
    int8 was the slower (6.6 vs 5.4 µs); at 24 it is 6.6 vs 10.2 µs (builtin kernels 19.4 vs
    23.7), and accuracy held: ECG5000 0.9922 ± 0.0013 (16: 0.9926 ± 0.0017), MIT-BIH
    recipe-cv int8 V Se 92.8 %, abn +P 90.6 % (16: 92.4 %, 90.4 %).

    The Dense bottleneck is the real one: ``cfg.bottleneck`` numbers per beat, far fewer than
    the samples, so the model can only reproduce shapes it has seen often (normal beats).
    """
    stages = len(cfg.filters)
    step = 2 ** stages
    padded = -(-length // step) * step
    inp = keras.Input((length, channels), name="window")
    x = inp
    if padded != length:
        x = layers.ZeroPadding1D((0, padded - length))(x)
    for i, f in enumerate(cfg.filters):
        x = layers.Conv1D(f, cfg.kernel, strides=2, padding="same", activation="relu",
                          name=f"enc{i}")(x)
    short, last = padded // step, cfg.filters[-1]
    x = layers.Flatten()(x)
    x = layers.Dense(cfg.bottleneck, activation="relu", name="bottleneck")(x)
    x = layers.Dense(short * last, activation="relu", name="expand")(x)
    x = layers.Reshape((short, last))(x)
    for i, f in enumerate(reversed(cfg.filters[:-1])):
        x = _upsample(x, f, cfg.kernel, "relu", f"dec{i}")
    out = _upsample(x, 1, cfg.kernel, None, "out")
    if padded != length:
        out = layers.Cropping1D((0, padded - length))(out)
    return keras.Model(inp, out, name="cnn_ae")


def _upsample(x, filters: int, kernel: int, activation: str | None, name: str):
    """Twice the length: a Conv1D to ``2 * filters`` channels whose pairs of channel groups the
    Reshape lays out as consecutive steps (step 2t gets group 0 of step t, 2t+1 group 1)."""
    steps = x.shape[1]
    x = layers.Conv1D(2 * filters, kernel, padding="same", activation=activation, name=name)(x)
    return layers.Reshape((2 * steps, filters), name=f"{name}_interleave")(x)


def _tcn(cfg: ModelConfig, length: int, channels: int) -> keras.Model:
    """Causal dilated residual blocks (two convs each, 1x1 skip when widths differ)."""
    inp = keras.Input((length, channels), name="window")
    x = inp
    for d in cfg.tcn_dilations:
        y = layers.Conv1D(cfg.tcn_filters, cfg.tcn_kernel, padding="causal", dilation_rate=d,
                          activation="relu", name=f"b{d}_conv1")(x)
        y = layers.Conv1D(cfg.tcn_filters, cfg.tcn_kernel, padding="causal", dilation_rate=d,
                          name=f"b{d}_conv2")(y)
        skip = x if x.shape[-1] == cfg.tcn_filters else layers.Conv1D(
            cfg.tcn_filters, 1, name=f"b{d}_skip")(x)
        x = layers.ReLU()(layers.Add()([skip, y]))
    out = layers.Conv1D(1, 1, name="out")(x)
    return keras.Model(inp, out, name="tcn")


def _lstm_ae(cfg: ModelConfig, length: int, channels: int) -> keras.Model:
    """LSTM encoder -> RepeatVector -> LSTM decoder -> per-step Dense (the seeds' baseline)."""
    inp = keras.Input((length, channels), name="window")
    x = layers.LSTM(cfg.lstm_units, name="enc")(inp)
    x = layers.Dense(cfg.bottleneck, activation="relu", name="bottleneck")(x)
    x = layers.RepeatVector(length)(x)
    x = layers.LSTM(cfg.lstm_units, return_sequences=True, name="dec")(x)
    out = layers.Dense(1, name="out")(x)
    return keras.Model(inp, out, name="lstm_ae")


def receptive_field(cfg: ModelConfig) -> int:
    """Samples of input one TCN output sees: 1 + sum over blocks of 2 (k - 1) d."""
    return 1 + sum(2 * (cfg.tcn_kernel - 1) * d for d in cfg.tcn_dilations)


def count_params(model: keras.Model) -> int:
    return int(model.count_params())


def macs_per_window(model: keras.Model) -> int:
    """Multiply-accumulates for one window, from each weight layer's input/output shapes.

    Elementwise work (bias, ReLU, Add) is left out, as is usual for MAC counts; it is a few
    percent here. Models inside the model (an ensemble's members) count with their layers.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += macs_per_window(layer)
        elif isinstance(layer, layers.Conv1D):
            k, cin, cout = layer.kernel_size[0], layer.input.shape[-1], layer.filters
            total += layer.output.shape[1] * k * cin * cout // max(1, layer.groups)
        elif isinstance(layer, layers.Dense):
            lead = int(np.prod(layer.input.shape[1:-1])) if len(layer.input.shape) > 2 else 1
            total += lead * layer.input.shape[-1] * layer.units
        elif isinstance(layer, layers.LSTM):
            steps, cin, u = layer.input.shape[1], layer.input.shape[-1], layer.units
            total += steps * 4 * (cin + u) * u
    return int(total)


def model_summary(model: keras.Model, cfg: ModelConfig) -> dict:
    """Size figures reported with every run (int8 size ~ one byte per weight)."""
    out = {"arch": cfg.arch, "params": count_params(model), "macs": macs_per_window(model),
           "int8_kb": round(count_params(model) / 1024, 1), "scoring": SCORING[cfg.arch]}
    if cfg.arch == "tcn":
        out["receptive_field"] = receptive_field(cfg)
    return out


def targets(x: np.ndarray, arch: str, horizon: int = 1) -> np.ndarray:
    """Training target of an architecture (the device's definition, :mod:`device.features`)."""
    return features.targets(x, SCORING[arch], horizon)


def errors(x: np.ndarray, pred: np.ndarray, arch: str, skip: int = 0, horizon: int = 1
           ) -> np.ndarray:
    """Per-window MSE of an architecture's output (the device computes the same)."""
    return features.window_errors(x, pred, SCORING[arch], skip, horizon)
