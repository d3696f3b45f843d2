import io

from firmware_bridge.progress import Progress, progress


def test_progress_lines_count_steps_and_give_an_eta_after_the_first():
    out = io.StringIO()
    p = Progress(3, "fold", stream=out)
    for name in ("a", "b", "c"):
        p.step(name)
    p.finish()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[fold 1/3] a  (0:00 elapsed)")
    assert "ETA" not in lines[0] and "ETA 0:00" in lines[1] and lines[2].startswith("[fold 3/3] c")
    assert lines[3].startswith("[fold] 3 done in")


def test_progress_iterator_yields_every_item_and_can_be_silent(capsys):
    assert list(progress([1, 2], "record", enabled=False)) == [1, 2]
    assert capsys.readouterr().err == ""
    assert list(progress(iter([5]), "seed", total=1)) == [5]
    assert "[seed 1/1] 5" in capsys.readouterr().err


def test_many_short_steps_print_first_and_last_only_within_the_interval():
    out = io.StringIO()
    p = Progress(1000, "strip", stream=out, every_s=3600)
    for k in range(1000):
        p.step(str(k))
    lines = out.getvalue().splitlines()
    assert [ln.split("]")[0] for ln in lines] == ["[strip 1/1000", "[strip 1000/1000"]
