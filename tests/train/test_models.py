"""Model builders: sizes, MAC counts, the TCN's causality and receptive field, int8-able layers."""

import numpy as np
import pytest

from ecg_edge.train.datasets import load_ecg5000
from tests.conftest import DATA

pytestmark = pytest.mark.tensorflow

keras = pytest.importorskip("keras")

from ecg_edge.train.models import (  # noqa: E402
    ModelConfig,
    build_model,
    count_params,
    errors,
    macs_per_window,
    receptive_field,
    targets,
)

#: Layers whose TFLite int8 lowering runs in LiteRT, tflite-micro and on the Edge TPU (plus the
#: graph's input). Not UpSampling1D: TFLite lowers it to TILE, which neither target has.
INT8_LAYERS = {"InputLayer", "Conv1D", "Dense", "ReLU", "Add", "Reshape", "Flatten",
               "ZeroPadding1D", "Cropping1D"}


@pytest.fixture(scope="module")
def beats():
    b = load_ecg5000(DATA / "ecg5000")
    return b.x[:8, :, None]


@pytest.mark.parametrize("arch", ["cnn_ae", "tcn"])
def test_compact_and_int8_layers(arch):
    m = build_model(ModelConfig(arch=arch), 140)
    assert {type(layer).__name__ for layer in m.layers} <= INT8_LAYERS
    assert 1000 < count_params(m) < 40_000  # tens of KB at int8 at most
    assert m.output.shape[1:] == (140, 1)


@pytest.mark.parametrize("length,channels", [(140, 1), (96, 2), (100, 1)])
def test_cnn_ae_decodes_sub_pixel(length, channels):
    m = build_model(ModelConfig(arch="cnn_ae"), length, channels)
    kinds = [type(layer).__name__ for layer in m.layers]
    assert "UpSampling1D" not in kinds and "Conv1DTranspose" not in kinds
    assert sum(layer.name.endswith("_interleave") for layer in m.layers) == len(
        ModelConfig().filters)
    assert m.output.shape[1:] == (length, 1)  # padding and cropping still line up


def test_sub_pixel_reshape_interleaves_channel_groups():
    import keras

    from ecg_edge.train.models import _upsample

    inp = keras.Input((3, 1))
    m = keras.Model(inp, _upsample(inp, 2, 1, None, "up"))
    # A 1x1 conv with identity-like weights: channels (a, b, c, d) = (x, 10x, 100x, 1000x).
    m.get_layer("up").set_weights([np.array([[[1, 10, 100, 1000]]], np.float32),
                                   np.zeros(4, np.float32)])
    y = m.predict_on_batch(np.array([[[1.0], [2.0], [3.0]]], np.float32))[0]
    # Step t's groups (a, b) and (c, d) become steps 2t and 2t+1.
    np.testing.assert_allclose(y, [[1, 10], [100, 1000], [2, 20], [200, 2000],
                                   [3, 30], [300, 3000]])


def test_macs_of_the_cnn_ae_by_hand():
    cfg = ModelConfig(arch="cnn_ae", filters=(4, 8), kernel=3, bottleneck=5)
    m = build_model(cfg, 96, 2)
    by_hand = (48 * 3 * 2 * 4 + 24 * 3 * 4 * 8  # strided encoder convs
               + 24 * 8 * 5 + 5 * 24 * 8  # bottleneck and expansion
               + 24 * 3 * 8 * 8 + 48 * 3 * 4 * 2)  # sub-pixel convs: twice the channels out
    assert macs_per_window(m) == by_hand
    lstm = build_model(ModelConfig(arch="lstm_ae", lstm_units=4, bottleneck=3), 20)
    assert macs_per_window(lstm) == 20 * 4 * (1 + 4) * 4 + 4 * 3 + 20 * 4 * (3 + 4) * 4 + 20 * 4
    # an ensemble (members as models inside the model, as `ds1-cv --ensemble` builds it)
    # costs its members' MACs, not 0
    import keras

    inp = keras.Input((96, 2))
    members = [build_model(cfg, 96, 2) for _ in range(2)]
    for i, member in enumerate(members):
        member.name = f"member_{i}"
    pair = keras.Model(inp, keras.layers.Average()([member(inp) for member in members]))
    assert macs_per_window(pair) == 2 * by_hand


def test_tcn_is_causal_with_the_stated_receptive_field(beats):
    cfg = ModelConfig(arch="tcn", tcn_filters=6, tcn_dilations=(1, 2, 4))
    rf = receptive_field(cfg)
    assert rf == 1 + 2 * 2 * (1 + 2 + 4)
    m = build_model(cfg, 140)
    # Positive kernels and a large bias keep every ReLU open, so the test sees the graph's
    # connectivity; random weights can leave the path to one output dead and the check flaky.
    for layer in m.layers:
        if layer.get_weights():
            kernel, bias = layer.get_weights()
            layer.set_weights([np.full_like(kernel, 0.1), np.full_like(bias, 20.0)])
    x = beats[:1].astype(np.float32)
    y0 = m.predict_on_batch(x)[0, :, 0]
    t = 40
    x2 = x.copy()
    x2[0, t, 0] += 5.0
    diff = np.abs(m.predict_on_batch(x2)[0, :, 0] - y0) > 1e-6
    assert not diff[:t].any()  # nothing before the change moves: causal
    assert diff[t + rf - 1]  # the last output that still sees it
    assert not diff[t + rf:].any()  # nothing beyond the receptive field


def test_targets_and_errors_for_forecasts(beats):
    x = beats.astype(np.float32)
    y = targets(x, "tcn")
    np.testing.assert_array_equal(y[:, :-1, 0], x[:, 1:, 0])
    np.testing.assert_array_equal(targets(x, "cnn_ae"), x[..., :1])
    # A perfect one-step forecast scores zero; copying the input (no forecast) does not.
    assert np.allclose(errors(x, y, "tcn"), 0.0)
    assert (errors(x, x, "tcn") > 0).all()
    y8 = targets(x, "tcn", horizon=8)
    np.testing.assert_array_equal(y8[:, :-8, 0], x[:, 8:, 0])
    assert np.allclose(errors(x, y8, "tcn", horizon=8), 0.0)
    assert (errors(x, y, "tcn", horizon=8) > 0).all()


def test_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        ModelConfig(arch="transformer")
