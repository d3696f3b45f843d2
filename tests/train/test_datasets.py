import numpy as np
import pytest

from ecg_edge.firmware_bridge.errors import RecordError
from ecg_edge.train.datasets import load_arff, load_beat_csv, load_beats, load_ecg5000, load_ucr_tsv
from tests.conftest import DATA


def test_ecg5000_is_complete():
    b = load_ecg5000(DATA / "ecg5000")
    assert b.x.shape == (5000, 140)
    assert np.bincount(b.y).tolist() == [0, 2919, 1767, 96, 194, 24]


def test_arff_and_csv_give_the_same_beats_as_tsv(tmp_path):
    tsv = load_ucr_tsv(DATA / "ecg200" / "ECG200_TRAIN.tsv")
    rows = [list(x) + [int(y)] for x, y in zip(tsv.x[:20], tsv.y[:20])]
    arff = ["% ECG200 excerpt", "@relation ecg200"]
    arff += [f"@attribute t{i} numeric" for i in range(96)] + ["@attribute target {-1,1}", "@data"]
    arff += [",".join(f"{v:.8g}" for v in r[:-1]) + f",{r[-1]}" for r in rows]
    (tmp_path / "e.arff").write_text("\n".join(arff))
    a = load_arff(tmp_path / "e.arff")
    np.testing.assert_allclose(a.x, tsv.x[:20], rtol=1e-6)
    assert a.y.tolist() == tsv.y[:20].tolist()
    csv_lines = ["label," + ",".join(f"t{i}" for i in range(96))]
    csv_lines += [f"{r[-1]}," + ",".join(f"{v:.8g}" for v in r[:-1]) for r in rows]
    (tmp_path / "e.csv").write_text("\n".join(csv_lines))
    c = load_beat_csv(tmp_path / "e.csv", label_column="label")
    np.testing.assert_allclose(c.x, tsv.x[:20], rtol=1e-6)
    assert load_beats(tmp_path / "e.csv").y.tolist() == c.y.tolist()


@pytest.mark.parametrize("name, content, message", [
    ("a.tsv", "", "empty"),
    ("b.tsv", "1\t0.1\t0.2\n1\t0.3\n", "different lengths"),
    ("c.tsv", "1\t0.1\tx\n", "line 1 is not numeric"),
    ("d.arff", "@relation x\n1,2,3\n", "no @data"),
    ("e.csv", "label,a\n1.5,2\n", "non-integer"),
    ("f.json", "{}", "unknown beat-set format"),
])
def test_malformed_beat_files(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(RecordError, match=message):
        load_beats(p)
