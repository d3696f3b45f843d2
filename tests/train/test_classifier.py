import numpy as np
import pytest

from ecg_edge.device.classes import LABELS, RR_FEATURES, ClassSpec, calls_for_inputs
from ecg_edge.device.config import SignalConfig
from ecg_edge.train import classifier as clf
from ecg_edge.train.protocols import load_folder_beats


@pytest.fixture(scope="module")
def beats(mitdb_dir, tmp_path_factory):
    return load_folder_beats(mitdb_dir, SignalConfig(), tmp_path_factory.mktemp("cache"),
                             log=lambda *a: None)


def test_protocol_sets_are_disjoint_and_complete():
    assert len(clf.DS1) == 22 and len(clf.DS2_VISIBLE) == 6
    assert not set(clf.DS1) & set(clf.DS2_VISIBLE)
    folds = clf.folds_by_record(list(clf.DS1), 5)
    assert sorted(sum(folds, [])) == sorted(clf.DS1) and len(folds) == 5


def test_training_labels_are_the_aami_classes(beats):
    inputs = {n: clf.record_inputs(beats[n]) for n in ("106", "119")}
    x, y = clf.training_set(beats, ["106", "119"], inputs)
    cls = np.concatenate([beats[n]["cls"][clf.labelled(beats[n])] for n in ("106", "119")])
    assert len(x) == len(y) == len(cls)
    assert [LABELS[i] for i in y] == cls.tolist()
    assert clf.label_index(np.array(["F", "N", "V", "S"])).tolist() == [3, 0, 2, 1]


def test_augment_shifts_the_beat_not_the_template_or_features(beats):
    x = clf.record_inputs(beats["119"])[:200]
    cfg = clf.ClassifierConfig(max_shift=2, amplitude_jitter=0.2)
    a = clf.augment(x, np.random.default_rng(0), cfg)
    np.testing.assert_array_equal(a[..., 1:], x[..., 1:])
    assert not np.allclose(a[..., 0], x[..., 0])
    # The beat itself (channel 0 + template) is the original, shifted and scaled.
    beat, new = x[..., 0] + x[..., 1], a[..., 0] + a[..., 1]
    for i in range(20):
        fits = []
        for s in range(-2, 3):
            r = np.roll(beat[i], s)
            g = float(r @ new[i] / (r @ r))
            fits.append((np.abs(new[i] - g * r).max(), g))
        err, gain = min(fits)
        assert err < 1e-4 and 0.8 - 1e-6 <= gain <= 1.2 + 1e-6


def test_thresholds_meet_the_ppv_floor_on_the_beats_they_are_chosen_on():
    rng = np.random.default_rng(0)
    cls = np.array(["N"] * 900 + ["V"] * 80 + ["S"] * 20)
    p = np.zeros((1000, 4))
    p[:, 0] = 1
    p[cls == "V", 2] = rng.uniform(0.3, 1.0, 80)
    p[cls == "S", 1] = rng.uniform(0.2, 0.9, 20)
    p[:50, 2] = rng.uniform(0.0, 0.5, 50)  # some normal beats look ventricular
    p /= p.sum(axis=1, keepdims=True)
    x = np.zeros((1000, 1, 2 + len(RR_FEATURES)), np.float32)
    x[:, 0, 2:] = 1.0  # RR ratios 1: on time
    x[:, 0, -1] = 0.0  # regular rhythm
    x[cls == "S", 0, 2] = 0.7  # the S beats come early
    spec = clf.choose_thresholds(x, p, cls, ClassSpec(), "test")
    calls = calls_for_inputs(x, p, spec).classes
    called_v = calls == "V"
    assert (cls[called_v] == "V").mean() >= 0.92 and spec.chosen == "test"
    assert (calls[cls == "S"] == "S").mean() > 0.5
    x[cls == "S", 0, 2] = 1.0  # on time: no S call, whatever the model says
    assert "S" not in calls_for_inputs(x, p, spec).classes.tolist()


@pytest.mark.tensorflow
def test_classifier_learns_v_beats_of_a_record(beats):
    d = beats["119"]  # ventricular bigeminy: ~400 V beats
    x, y = clf.training_set(beats, ["119"], {"119": clf.record_inputs(d)})
    assert set(np.unique(y).tolist()) <= set(range(len(LABELS))) and (y == 2).sum() > 300
    model, hist = clf.fit_classifier(x, y, clf.ClassifierConfig(epochs=2), log=lambda *a: None)
    assert model.output_shape == (None, len(LABELS)) and len(hist["loss"]) == 2
    assert model.count_params() < 64 * 1024  # int8: about one byte per weight
    from ecg_edge.device.classes import softmax

    p = softmax(model.predict_on_batch(x))
    assert (p[y == 2, 2] > p[y == 2, 0]).mean() > 0.9  # in-sample: it learnt the V beats
