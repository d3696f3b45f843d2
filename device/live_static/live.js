// The live view's client: draws what the monitor's events say, nothing more.
"use strict";

const COLORS = { N: "#607d8b", S: "#1565c0", V: "#c62828", F: "#ef6c00", Q: "#6a1b9a" };
const STRIP_S = 10;

const state = {
  strip: [],        // [t, mV] pairs of the last STRIP_S seconds
  beats: [],        // beat events of the last STRIP_S seconds
  nBeats: 0, nFlagged: 0, types: {}, gaps: 0, lost: 0, episodes: 0, ended: false,
  rhythms: new Set(),   // rhythm episodes open now (alarms)
  patterns: new Set(),  // ectopy patterns open now: named, not alarmed (dozens an hour with
                        // frequent PVCs)
};
window.liveState = state;  // read by the browser test

const $ = (id) => document.getElementById(id);

function beatColor(b) {
  return COLORS[b.class] || (b.flag ? COLORS.V : COLORS.N);
}

const plot = new uPlot({
  width: Math.max(600, window.innerWidth - 40), height: 260,
  scales: { x: { time: false } },
  axes: [{ label: "s" }, { label: "mV" }],
  series: [{}, { label: "ECG (filtered)", stroke: "#1d2b3a", width: 1 }],
  legend: { show: false },
  hooks: {
    draw: [(u) => {
      const ctx = u.ctx;
      ctx.save();
      for (const b of state.beats) {
        const x = u.valToPos(b.t, "x", true);
        if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
        const y = u.bbox.top + 12 * devicePixelRatio;
        ctx.fillStyle = beatColor(b);
        ctx.beginPath();
        ctx.arc(x, y, 5 * devicePixelRatio, 0, 2 * Math.PI);
        ctx.fill();
        if (b.flag) {
          ctx.strokeStyle = "#c62828";
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.beginPath();
          ctx.arc(x, y, 9 * devicePixelRatio, 0, 2 * Math.PI);
          ctx.stroke();
        }
        ctx.font = `${10 * devicePixelRatio}px sans-serif`;
        ctx.fillText(b.class || (b.flag ? "!" : ""), x + 8 * devicePixelRatio, y + 4);
      }
      ctx.restore();
    }],
  },
}, [[], []], $("strip"));

function fmtTime(t) {
  if (t == null) return "--";
  const h = Math.floor(t / 3600), m = Math.floor(t / 60) % 60, s = Math.floor(t % 60);
  return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
}

function addEpisode(t, what, detail) {
  const row = document.createElement("tr");
  for (const v of [fmtTime(t), what, detail]) {
    const td = document.createElement("td");
    td.textContent = v;
    row.appendChild(td);
  }
  const body = $("episodes").tBodies[0];
  body.insertBefore(row, body.firstChild);
  while (body.rows.length > 30) body.deleteRow(body.rows.length - 1);
}

function showRhythms() {
  const open = [...state.rhythms, ...state.patterns];
  $("rhythm").textContent = open.length ? open.join(" + ") : "--";
  $("rhythm").className = state.rhythms.size ? "big alert" : "big";
}

function setQuality(level, reason) {
  const q = $("quality");
  q.textContent = level;
  q.className = "big q-" + level;
  q.title = reason || "";
}

function onEvent(ev) {
  switch (ev.type) {
    case "start":
      $("scorer").textContent = ev.scorer || "-";
      $("status").textContent = "monitoring";
      break;
    case "beat":
      state.nBeats += 1;
      if (ev.flag) state.nFlagged += 1;
      if (ev.class) state.types[ev.class] = (state.types[ev.class] || 0) + 1;
      state.beats.push(ev);
      if (ev.hr_bpm != null) $("hr").textContent = Math.round(ev.hr_bpm);
      if (ev.quality) setQuality(ev.quality);
      $("clock").textContent = fmtTime(ev.t);
      break;
    case "quality":
      setQuality(ev.level, ev.reason);
      break;
    case "rhythm_start":
    case "pattern_start":
      (ev.type === "rhythm_start" ? state.rhythms : state.patterns).add(ev.rhythm);
      showRhythms();
      addEpisode(ev.t, `${ev.rhythm} started`, "");
      break;
    case "rhythm_end":
    case "pattern_end":
      (ev.type === "rhythm_end" ? state.rhythms : state.patterns).delete(ev.rhythm);
      showRhythms();
      addEpisode(ev.t, `${ev.rhythm} ended`, ev.duration_s != null ? `${ev.duration_s.toFixed(1)} s` : "");
      break;
    case "episode_start":
      state.episodes += 1;
      addEpisode(ev.t, "anomalous beats", `${ev.flagged} flagged`);
      break;
    case "episode_end":
      addEpisode(ev.t, "anomalous beats ended", `${ev.duration_s.toFixed(1)} s, ${ev.flagged} flagged`);
      break;
    case "gap":
      state.gaps += 1;
      state.lost += ev.lost_samples;
      addEpisode(ev.t, "gap", `${ev.lost_samples} samples lost (${ev.reason})`);
      break;
    case "status":
      $("status").textContent = ev.status;
      if (ev.status !== "lead_on") addEpisode(ev.t, ev.status, ev.message || "");
      break;
    case "summary":
      $("status").textContent = "ended";
      state.ended = true;
      break;
  }
  $("n-beats").textContent = state.nBeats;
  $("n-flagged").textContent = state.nFlagged;
  $("n-types").textContent = Object.entries(state.types).map(([k, v]) => `${k} ${v}`).join(", ") || "-";
  $("n-gaps").textContent = `${state.gaps} (${state.lost})`;
}

function onStrip(s) {
  for (let i = 0; i < s.y.length; i++) state.strip.push([s.t0 + i / s.fs, s.y[i]]);
}

let dirty = false;
function redraw() {
  if (dirty && state.strip.length) {
    const end = state.strip[state.strip.length - 1][0];
    let k = 0;
    while (k < state.strip.length && state.strip[k][0] < end - STRIP_S) k++;
    state.strip.splice(0, k);
    state.beats = state.beats.filter((b) => b.t >= end - STRIP_S);
    plot.setData([state.strip.map((p) => p[0]), state.strip.map((p) => p[1])]);
    dirty = false;
  }
  requestAnimationFrame(redraw);
}
requestAnimationFrame(redraw);

const source = new EventSource("/events");
source.addEventListener("ev", (m) => { onEvent(JSON.parse(m.data)); dirty = true; });
source.addEventListener("strip", (m) => { onStrip(JSON.parse(m.data)); dirty = true; });
source.addEventListener("end", () => { source.close(); $("status").textContent = "ended"; });
source.onerror = () => { if (!state.ended) $("status").textContent = "reconnecting"; };
