"""A monitoring session as one self-contained HTML file a wearer can send to a doctor.

Everything comes from the events file the monitor wrote (summary, beats, episodes, rhythm,
quality, gaps) and, when the recording is given, strips of the ECG as the device filtered it
(the same signal path, through its tap). No script, no external file: inline CSS and SVG, so
the report opens offline, prints, and can be mailed. It holds health data, so it is written
readable by its owner only.
"""

from __future__ import annotations

import datetime
import html
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.ectopy_patterns import PATTERNS
from ecg_edge.device.events import iter_events
from ecg_edge.device.signal_path import SignalPath
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.private_files import open_private
from ecg_edge.firmware_bridge.records import Record

CLASS_COLORS = {"N": "#607d8b", "S": "#1565c0", "V": "#c62828", "F": "#ef6c00", "Q": "#6a1b9a"}
STRIP_S = 6.0


@dataclass
class Session:
    """The events of one monitoring session, grouped by kind."""

    start: dict = field(default_factory=dict)
    summary: dict | None = None
    beats: list[dict] = field(default_factory=list)
    episodes: list[dict] = field(default_factory=list)  # start events, each with its end merged
    gaps: list[dict] = field(default_factory=list)
    quality: list[dict] = field(default_factory=list)
    status: list[dict] = field(default_factory=list)


def read_events(path: str | Path) -> Session:
    """Parse an events file; a line that is not a JSON object is an error with its number."""
    s = Session()
    open_eps: dict[tuple, dict] = {}
    for k, ev in iter_events(path):
        if not isinstance(ev, dict):
            raise UserError(f"{path}: line {k} is not an event object")
        kind = ev.get("type")
        if kind == "start":
            s.start = ev
        elif kind == "summary":
            s.summary = ev
        elif kind == "beat" and _num(ev.get("t")) is not None:
            s.beats.append(ev)
        elif kind in ("episode_start", "rhythm_start", "pattern_start"):
            what = ev.get("rhythm") or "anomalous beats"
            ep = {"what": what, "t": _num(ev.get("t")), "sample": ev.get("sample"), "end": None,
                  "detail": ev}
            open_eps[what, ev.get("episode")] = ep  # numbered per rhythm
            s.episodes.append(ep)
        elif kind in ("episode_end", "rhythm_end", "pattern_end"):
            key = (ev.get("rhythm") or "anomalous beats", ev.get("episode"))
            if key in open_eps:
                open_eps.pop(key)["end"] = _num(ev.get("t"))
        elif kind == "gap":
            s.gaps.append(ev)
        elif kind == "quality":
            s.quality.append(ev)
        elif kind == "status":
            s.status.append(ev)
    if not s.beats and s.summary is None:
        raise UserError(f"{path}: no beat or summary events; is this an events file?")
    return s


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and np.isfinite(v) else None


def session_stats(s: Session) -> dict:
    """The figures of the summary table (from the summary event where it has them)."""
    summ = s.summary or {}
    rhythm = summ.get("rhythm") or {}
    t = np.array([b["t"] for b in s.beats], dtype=float)
    learning = np.array([bool(b.get("learning")) for b in s.beats], dtype=bool)
    trend = rate_trend(s)
    classes: dict[str, int] = {}
    for b in s.beats:
        if b.get("class"):
            classes[b["class"]] = classes.get(b["class"], 0) + 1
    n = len(s.beats)
    duration = _num(summ.get("duration_s")) or (float(t.max()) if n else 0.0)
    unreadable = _num(summ.get("unreadable_s"))
    if unreadable is None and s.quality:  # no summary (power cut): from the quality changes
        unreadable = sum(b - a for a, b in unreadable_spans(s, duration))
    out = {
        "duration_s": duration,
        "monitored_s": _num(summ.get("monitored_s")) or (
            duration - (unreadable or 0.0)
            - sum(_num(g.get("lost_s")) or 0.0 for g in s.gaps)),
        "unreadable_s": unreadable,
        "beats": n,
        "learning_beats": int(learning.sum()),
        "flagged": int(sum(bool(b.get("flag")) for b in s.beats)),
        "hr_min": float(trend[1].min()) if len(trend[1]) else None,
        "hr_mean": float(np.mean(trend[1])) if len(trend[1]) else None,
        "hr_max": float(trend[1].max()) if len(trend[1]) else None,
        "classes": classes,
        "pvc_burden_pct": 100.0 * classes.get("V", 0) / n if classes and n else None,
        "pac_burden_pct": 100.0 * classes.get("S", 0) / n if classes and n else None,
        "af_burden_pct": _num(summ.get("af_burden_pct")),
        "gaps": len(s.gaps),
        "samples_lost": int(sum(int(g.get("lost_samples") or 0) for g in s.gaps)),
        "episodes": len(s.episodes),
        # the rhythm analysis's own tallies, where the summary has them
        "ectopy_runs": rhythm.get("ectopy_runs"),
        "heart_rate": rhythm.get("heart_rate") or {},
    }
    if out["af_burden_pct"] is None and out["monitored_s"]:
        af = sum((e["end"] or duration) - e["t"] for e in s.episodes
                 if e["what"] == "AF" and e["t"] is not None)
        if any(e["what"] == "AF" for e in s.episodes):
            out["af_burden_pct"] = 100.0 * af / out["monitored_s"]
    return out


def hourly(s: Session, duration: float,
           trend: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """The Holter report's hour-by-hour table: for each hour of the session, its beats (after
    the learning period) and ectopic beats, the rate (min / mean / max of 30 s medians), the
    pauses that began in it and its minutes of AF and of unreadable signal. A doctor reads a
    day this way: when the PVCs came, whether the AF was at night. ``trend``: the session's
    :func:`rate_trend`, where the caller has it already."""
    t = np.array([b["t"] for b in s.beats], dtype=float)
    cls = np.array([b.get("class") or "" for b in s.beats])
    learning = np.array([bool(b.get("learning")) for b in s.beats], dtype=bool)
    tt, th = rate_trend(s) if trend is None else trend
    af = [(e["t"], e["end"] if e["end"] is not None else duration) for e in s.episodes
          if e["what"] == "AF" and e["t"] is not None]
    unreadable = unreadable_spans(s, duration)
    rows = []
    for h in range(max(1, int(np.ceil(duration / 3600.0)))):
        lo, hi = 3600.0 * h, 3600.0 * (h + 1)
        here = (t >= lo) & (t < hi) & ~learning
        rate = th[(tt >= lo) & (tt < hi)]

        def minutes(spans, lo=lo, hi=hi):
            return sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in spans) / 60.0

        rows.append({
            "hour": h, "beats": int(here.sum()), "V": int((here & (cls == "V")).sum()),
            "S": int((here & (cls == "S")).sum()),
            "hr_min": float(rate.min()) if len(rate) else None,
            "hr_mean": float(rate.mean()) if len(rate) else None,
            "hr_max": float(rate.max()) if len(rate) else None,
            "pauses": sum(1 for e in s.episodes
                          if e["what"] == "PAUSE" and e["t"] is not None and lo <= e["t"] < hi),
            "af_min": minutes(af), "unreadable_min": minutes(unreadable),
        })
    return rows


def unreadable_spans(s: Session, duration: float) -> list[tuple[float, float]]:
    """(start, end) seconds of the unreadable stretches, from the quality changes."""
    marks = [(_num(q.get("t")) or 0.0, q.get("level")) for q in s.quality] + [(duration, "")]
    return [(a[0], b[0]) for a, b in zip(marks, marks[1:]) if a[1] == "unreadable"]


def _hour_label(start: dict, h: int) -> str:
    """Clock time of the hour's start where the session knows when it began (``run``),
    else hours since the start."""
    try:
        began = datetime.datetime.fromisoformat(str(start["started"]))
    except (KeyError, ValueError):
        return f"{h}-{h + 1} h"
    return (began + datetime.timedelta(hours=h)).strftime("%d %b %H:%M")


def rate_trend(s: Session) -> tuple[np.ndarray, np.ndarray]:
    """The session's heart-rate trend (:func:`hr_trend`) from its beats' plausible rates."""
    t = np.array([b["t"] for b in s.beats], dtype=float)
    hr = np.array([_num(b.get("hr_bpm")) or np.nan for b in s.beats], dtype=float)
    ok = np.isfinite(hr) & (hr >= 20) & (hr <= 300)
    return hr_trend(t[ok], hr[ok])


def hr_trend(t: np.ndarray, hr: np.ndarray, bin_s: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Median heart rate per bin: one ectopic beat's RR does not make a rate."""
    if not len(t):
        return np.zeros(0), np.zeros(0)
    idx = (t // bin_s).astype(int)
    bins = np.unique(idx)
    med = np.array([np.median(hr[idx == b]) for b in bins])
    return (bins + 0.5) * bin_s, med


def filtered_signal(record: Record, cfg: SignalConfig, lead=None) -> tuple[np.ndarray, np.ndarray]:
    """(time s, mV) of the record as the device's signal path filtered it (its tap)."""
    ch = record.channel_index(lead)
    path = SignalPath(cfg, record.fs)
    parts: list[tuple[float, np.ndarray]] = []
    path.on_output = lambda y, i: parts.append((path.input_sample(i) / path.fs_in, y.copy()))
    x = record.counts[:, ch] * (float(record.uv_per_count[ch]) / 1000.0)
    path.push(x)
    path.flush()
    if not parts:
        return np.zeros(0), np.zeros(0)
    t = np.concatenate([t0 + np.arange(len(y)) / cfg.fs for t0, y in parts])
    return t, np.concatenate([y for _, y in parts])


# -- rendering ------------------------------------------------------------------------------
def _svg_line(xs, ys, x0, x1, y0, y1, w, h, color="#1d2b3a", extra="") -> str:
    if not len(xs):
        return f'<svg width="{w}" height="{h}"></svg>'
    px = (np.asarray(xs) - x0) / max(x1 - x0, 1e-9) * (w - 50) + 40
    py = h - 20 - (np.asarray(ys) - y0) / max(y1 - y0, 1e-9) * (h - 35)
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))
    return (f'<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">'
            f'<rect x="40" y="5" width="{w - 50}" height="{h - 25}" fill="#fff" stroke="#ddd"/>'
            f'<polyline fill="none" stroke="{color}" stroke-width="1" points="{pts}"/>{extra}'
            "</svg>")


def trend_svg(t: np.ndarray, hr: np.ndarray, w: int = 900, h: int = 180) -> str:
    if not len(t):
        return "<p>No heart rate (no beats).</p>"
    lo, hi = float(min(40, hr.min() - 5)), float(max(120, hr.max() + 5))
    labels = "".join(
        f'<text x="2" y="{h - 20 - (v - lo) / (hi - lo) * (h - 35) + 4:.0f}" font-size="10">'
        f"{v:.0f}</text>" for v in np.linspace(lo, hi, 5))
    hours = t[-1] > 7200
    end = f"{t[-1] / (3600 if hours else 60):.1f} {'h' if hours else 'min'}"
    labels += (f'<text x="40" y="{h - 4}" font-size="10">0</text>'
               f'<text x="{w - 60}" y="{h - 4}" font-size="10">{end}</text>')
    return _svg_line(t, hr, 0.0, float(t[-1]), lo, hi, w, h, "#c62828", labels)


def strip_svg(ts: np.ndarray, ys: np.ndarray, beats: list[dict], centre: float,
              w: int = 900, h: int = 160) -> str:
    a, b = centre - STRIP_S / 2, centre + STRIP_S / 2
    m = (ts >= a) & (ts < b)
    if not m.any():
        return "<p>(no signal here)</p>"
    y = ys[m]
    lo, hi = float(y.min()), float(y.max())
    span = max(hi - lo, 0.5)
    lo, hi = lo - 0.1 * span, hi + 0.25 * span
    marks = []
    for bt in beats:
        if a <= bt["t"] < b:
            x = (bt["t"] - a) / STRIP_S * (w - 50) + 40
            c = CLASS_COLORS.get(bt.get("class") or ("V" if bt.get("flag") else "N"))
            ring = (f'<circle cx="{x:.1f}" cy="14" r="8" fill="none" stroke="#c62828" '
                    'stroke-width="2"/>') if bt.get("flag") else ""
            label = html.escape(str(bt.get("class") or ""))
            marks.append(f'<circle cx="{x:.1f}" cy="14" r="4" fill="{c}"/>{ring}'
                         f'<text x="{x + 10:.1f}" y="18" font-size="10">{label}</text>')
    scale = (f'<text x="2" y="{h - 4}" font-size="10">{a:.1f} s</text>'
             f'<text x="{w - 60}" y="{h - 4}" font-size="10">{b:.1f} s</text>')
    return _svg_line(ts[m], y, a, b, lo, hi, w, h, extra="".join(marks) + scale)


def _fmt_t(t: float | None) -> str:
    if t is None:
        return "-"
    t = int(t)
    return f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}"


def _duration(ep: dict) -> str:
    if ep["end"] is None or ep["t"] is None:
        return "-"
    return f"{ep['end'] - ep['t']:.1f} s"


def _bpm(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} %"


def render(s: Session, record: Record | None = None, cfg: SignalConfig | None = None,
           lead=None, max_strips: int = 10) -> str:
    st = session_stats(s)
    tt, th = rate_trend(s)
    source = s.start.get("source") or (s.summary or {}).get("source") or "?"
    try:
        version = metadata.version("ecg-edge")
    except metadata.PackageNotFoundError:
        version = "unknown"
    rows = [
        ("Recording", source),
        ("Duration", _fmt_t(st["duration_s"])),
        ("Monitored time", _fmt_t(st["monitored_s"])),
        ("Unreadable signal", _fmt_t(st["unreadable_s"]) if st["unreadable_s"] is not None
         else "not measured by this monitor"),
        ("Signal lost (gaps)", f"{st['gaps']} gaps, {st['samples_lost']} samples"),
        ("Heart rate min / mean / max", " / ".join(
            "-" if v is None else f"{v:.0f}" for v in (st["hr_min"], st["hr_mean"], st["hr_max"]))
         + " bpm (of 30 s medians: one ectopic RR is not a rate)"),
        ("Beats", f"{st['beats']} ({st['learning_beats']} in the learning period)"),
        ("Beats flagged anomalous", f"{st['flagged']}"),
        ("PVC burden (V beats)", _pct(st["pvc_burden_pct"])),
        ("PAC burden (S beats)", _pct(st["pac_burden_pct"])),
        ("AF burden", _pct(st["af_burden_pct"])),
        ("Episodes", str(st["episodes"])),
    ]
    runs = st["ectopy_runs"] or {}
    for cls, name in (("V", "Ventricular"), ("S", "Supraventricular")):
        if isinstance(runs.get(cls), dict):
            r = runs[cls]
            rows.append((f"{name} ectopy: single / couplets / runs of 3+",
                         f"{r.get('single')} / {r.get('couplets')} / {r.get('runs')} "
                         f"(the longest run of {r.get('longest')})"))
    hr_stats = st["heart_rate"]
    if _num(hr_stats.get("slowest_bpm")) is not None and _num(hr_stats.get("fastest_bpm")):
        rows.append(("Slowest / fastest rate (8-beat median)",
                     f"{hr_stats['slowest_bpm']:.0f} bpm at {_fmt_t(hr_stats.get('slowest_t'))}"
                     f" / {hr_stats['fastest_bpm']:.0f} bpm at "
                     f"{_fmt_t(hr_stats.get('fastest_t'))}"))
    if _num(hr_stats.get("sdnn_ms")) is not None:
        rows.append(("SDNN (normal-to-normal intervals)", f"{hr_stats['sdnn_ms']:.0f} ms"))
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    ep_rows = "".join(
        f"<tr><td>{_fmt_t(e['t'])}</td><td>{html.escape(e['what'])}</td>"
        f"<td>{_duration(e)}</td></tr>" for e in s.episodes) or "<tr><td colspan=3>none</td></tr>"
    hour_rows = "".join(
        f"<tr><td>{html.escape(_hour_label(s.start, r['hour']))}</td><td>{r['beats']}</td>"
        f"<td>{r['V']}</td><td>{r['S']}</td><td>{_bpm(r['hr_min'])} / "
        f"{_bpm(r['hr_mean'])} / {_bpm(r['hr_max'])}</td><td>{r['pauses']}</td>"
        f"<td>{r['af_min']:.1f}</td><td>{r['unreadable_min']:.1f}</td></tr>"
        for r in hourly(s, st["duration_s"], (tt, th)))
    strips = ""
    if record is not None:
        ts, ys = filtered_signal(record, cfg or SignalConfig(), lead)
        picks = [(f"{e['what']} at {_fmt_t(e['t'])}", e["t"])
                 for e in sorted(s.episodes, key=lambda e: e["what"] in PATTERNS)
                 if e["t"] is not None][:max_strips]
        scored = sorted((b for b in s.beats if _num(b.get("score")) is not None
                         and not b.get("learning")), key=lambda b: -b["score"])[:max_strips // 2]
        picks += [(f"most anomalous beats: score {b['score']:.3g} at {_fmt_t(b['t'])}", b["t"])
                  for b in scored]
        strips = "".join(f"<h4>{html.escape(title)}</h4>{strip_svg(ts, ys, s.beats, c)}"
                         for title, c in picks) or "<p>No episodes or scored beats.</p>"
    else:
        strips = "<p>Give the recording to see ECG strips (ecg-device report EVENTS RECORD).</p>"
    prov = {k: s.start.get(k) for k in ("scorer", "bundle_sha256", "runtime", "delegate",
                                        "threshold", "fs", "model_fs") if s.start.get(k)}
    prov["ecg-edge"] = version
    prov_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                        for k, v in prov.items())
    note = "" if s.summary else ("<p class=warn>The stream ended without a summary event "
                                 "(power cut or crash): figures come from the beats.</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ECG session report: {html.escape(source)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 960px; margin: 1rem auto; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1rem; }}
th, td {{ text-align: left; padding: .2rem .8rem; border-bottom: 1px solid #eee; }}
.warn {{ color: #c62828; }} small {{ color: #666; }}
</style></head><body>
<h1>ECG monitoring session</h1>
<p><small>Generated {time.strftime('%Y-%m-%d %H:%M')} by ecg-edge {html.escape(version)}.
Automated analysis, not a diagnosis: a clinician should review the strips.</small></p>
{note}
<h2>Summary</h2><table>{table}</table>
<h2>Heart rate trend</h2>{trend_svg(tt, th)}
<h2>Hour by hour</h2><table><tr><th>from</th><th>beats</th><th>V</th><th>S</th>
<th>rate min / mean / max (bpm)</th><th>pauses</th><th>AF (min)</th><th>unreadable (min)</th>
</tr>{hour_rows}</table>
<h2>Episodes</h2><table><tr><th>start</th><th>what</th><th>duration</th></tr>{ep_rows}</table>
<h2>Strips</h2>{strips}
<h2>Analysis</h2><table>{prov_rows}</table>
</body></html>
"""


def write_report(events: str | Path, out: str | Path, record: Record | None = None,
                 cfg: SignalConfig | None = None, lead=None) -> Path:
    doc = render(read_events(events), record, cfg, lead)
    out = Path(out)
    with open_private(out, "w", "the report", "a file name such as report.html") as fh:
        fh.write(doc)
    return out
