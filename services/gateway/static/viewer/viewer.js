// Timbr results page: plain JS, canvas and media elements; everything from this origin.
// Data: <this page>/data?<the signed query> -> {job, input, tracks, report, manifest, diarization}.
"use strict";
(function () {
  const COLORS = ["#4fa3ff", "#ff8a4f", "#5fd38d", "#d36fe0", "#f2c94c", "#56ccf2", "#eb5757",
    "#9b9bff", "#6fcf97", "#f2994a"];
  const app = document.getElementById("app");
  const summary = document.getElementById("summary");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "style") Object.assign(node.style, v);   // CSSOM: allowed by the page's CSP
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c != null) node.append(c);
    return node;
  }

  function clock(s) {
    if (!isFinite(s)) return "–";
    const m = Math.floor(s / 60);
    return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
  }

  // Speaker colours follow the speaker's number, so SPEAKER_2 has one colour everywhere, every time.
  function speakerColor(id, fallbackIndex) {
    const n = parseInt(String(id).split("_").pop(), 10);
    return COLORS[((isNaN(n) ? fallbackIndex + 1 : n) - 1 + COLORS.length) % COLORS.length];
  }

  // ------------------------------------------------------------------ waveform + player
  function drawWave(canvas, peaks, color, position) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, canvas.clientWidth), h = Math.max(1, canvas.clientHeight);
    if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr);
    if (canvas.height !== Math.round(h * dpr)) canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const mid = h / 2, n = peaks && peaks.max ? peaks.max.length : 0;
    for (let x = 0; x < w && n; x++) {
      const a = Math.floor((x / w) * n), b = Math.max(a + 1, Math.floor(((x + 1) / w) * n));
      let lo = 1, hi = -1;
      for (let i = a; i < b && i < n; i++) { lo = Math.min(lo, peaks.min[i]); hi = Math.max(hi, peaks.max[i]); }
      const top = mid - Math.min(1, hi) * mid, bottom = mid - Math.max(-1, lo) * mid;
      ctx.fillStyle = x / w <= position ? color : color + "88";
      ctx.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(Math.min(w - 2, position * w), 0, 2, h);
  }

  // One audio file: label, waveform (click to seek), native player. Returns {root, audio, redraw}.
  function Track(label, sub, item, color) {
    const canvas = el("canvas", { class: "wave", "data-name": item.name });
    const audio = el("audio", { controls: "", preload: "auto", src: item.url, "data-name": item.name });
    const duration = () => (isFinite(audio.duration) && audio.duration > 0 ? audio.duration
      : (item.peaks ? item.peaks.duration : 0));
    const redraw = () => drawWave(canvas, item.peaks, color, duration() ? audio.currentTime / duration() : 0);
    canvas.addEventListener("click", (ev) => {
      const r = canvas.getBoundingClientRect();
      audio.currentTime = ((ev.clientX - r.left) / r.width) * duration();
      redraw();
    });
    let raf = 0;
    const tick = () => { redraw(); raf = audio.paused ? 0 : requestAnimationFrame(tick); };
    audio.addEventListener("play", () => { if (!raf) raf = requestAnimationFrame(tick); });
    for (const ev of ["timeupdate", "seeked", "loadedmetadata", "pause"]) audio.addEventListener(ev, redraw);
    window.addEventListener("resize", redraw);
    const root = el("div", { class: "track" },
      el("div", { class: "label" }, label, sub ? el("small", { text: sub }) : null),
      el("div", {}, canvas, audio));
    return { root, audio, redraw, canvas };
  }

  function play(audio) {
    const p = audio.play();
    if (p && p.catch) p.catch((e) => { summary.textContent = `Playback refused: ${e.message}`; });
  }

  // ------------------------------------------------------------------ job types
  function renderSeparate(data) {
    const stems = data.tracks;
    const section = el("section", {}, el("h2", { text: `Stems (${stems.length})` }));
    const rows = stems.map((t, i) => {
      const meta = (data.manifest && data.manifest.stems || []).find((s) => s.file === t.name) || {};
      const sub = meta.rms_dbfs != null ? `RMS ${meta.rms_dbfs} dBFS` : "";
      return { track: Track(meta.name || t.name.replace(/\.[^.]+$/, ""), sub, t, COLORS[i % COLORS.length]),
        solo: false, mute: false };
    });
    const apply = () => {
      const anySolo = rows.some((r) => r.solo);
      for (const r of rows) {
        r.track.audio.muted = r.mute || (anySolo && !r.solo);
        r.soloBtn.classList.toggle("on", r.solo);
        r.muteBtn.classList.toggle("on", r.mute);
      }
    };
    for (const r of rows) {
      r.soloBtn = el("button", { class: "solo", text: "Solo", onclick: () => { r.solo = !r.solo; apply(); } });
      r.muteBtn = el("button", { class: "mute", text: "Mute", onclick: () => { r.mute = !r.mute; apply(); } });
      r.track.root.querySelector(".label").append(el("div", { class: "controls" }, r.soloBtn, r.muteBtn));
    }
    const all = rows.map((r) => r.track.audio);
    const transport = el("div", { class: "controls" },
      el("button", { id: "play-all", text: "Play all", onclick: () => {
        const t = all[0] ? all[0].currentTime : 0;
        for (const a of all) { a.currentTime = t; play(a); }
      } }),
      el("button", { id: "pause-all", text: "Pause", onclick: () => all.forEach((a) => a.pause()) }),
      el("button", { text: "Stop", onclick: () => all.forEach((a) => { a.pause(); a.currentTime = 0; }) }));
    section.append(transport, ...rows.map((r) => r.track.root));
    app.append(section);
    rows.forEach((r) => r.track.redraw());
  }

  const LOUDNESS = [["integrated_lufs", "Integrated loudness", "LUFS"], ["true_peak_dbtp", "True peak", "dBTP"],
    ["noise_floor_dbfs", "Noise floor", "dBFS"], ["signal_level_dbfs", "Signal level", "dBFS"],
    ["snr_estimate_db", "SNR estimate", "dB"], ["duration_s", "Duration", "s"], ["sample_rate", "Sample rate", "Hz"],
    ["channels", "Channels", ""]];

  function renderEnhance(data, input) {
    const after = data.tracks[0];
    const section = el("section", {}, el("h2", { text: "Before / after" }));
    if (input) section.append(input.root);
    if (after) {
      const t = Track("After", after.name, after, "#5fd38d");
      section.append(t.root);
      requestAnimationFrame(t.redraw);
    }
    app.append(section);
    const report = data.report;
    if (!report || !report.input || !report.output) return;
    const table = el("table", { id: "loudness" },
      el("tr", {}, el("th", { text: "" }), el("th", { text: "Before" }), el("th", { text: "After" })));
    for (const [key, label, unit] of LOUDNESS) {
      if (!(key in report.input) && !(key in report.output)) continue;
      const cell = (v) => el("td", { class: "num", text: v == null ? "–" : `${v} ${unit}`.trim() });
      table.append(el("tr", { "data-key": key }, el("td", { text: label }), cell(report.input[key]),
        cell(report.output[key])));
    }
    const settings = el("details", {}, el("summary", { text: "Settings" }),
      el("pre", { text: JSON.stringify(report.settings || {}, null, 2) }));
    app.append(el("section", {}, el("h2", { text: "Loudness report" }), table, settings));
  }

  function renderDiarize(data, input) {
    const d = data.diarization || {};
    const audio = input ? input.audio : null;
    const duration = d.duration || (data.input && data.input.peaks ? data.input.peaks.duration : 0) || 1;
    const speakers = (d.speakers || []).map((s) => s.id);
    for (const t of (d.turns || []).concat(d.segments || [])) {
      if (t.speaker && !speakers.includes(t.speaker)) speakers.push(t.speaker);
    }
    const spans = (d.turns && d.turns.length ? d.turns : d.segments) || [];
    const seek = (t) => { if (audio) { audio.currentTime = t; play(audio); } };

    const timeline = el("div", { class: "timeline", id: "timeline" });
    const heads = [];
    speakers.forEach((id, i) => {
      const color = speakerColor(id, i);
      const info = (d.speakers || []).find((s) => s.id === id);
      const lane = el("div", { class: "lane", "data-speaker": id, onclick: (ev) => {
        const r = lane.getBoundingClientRect();
        seek(((ev.clientX - r.left) / r.width) * duration);
      } }, el("span", { class: "name", style: { color }, text: id }));
      if (info && info.speech_time != null) lane.title = `${id}: ${info.speech_time} s of speech`;
      for (const t of spans.filter((s) => s.speaker === id)) {
        lane.append(el("div", { class: "turn", title: `${clock(t.start)}–${clock(t.end)}`,
          style: { left: `${(100 * t.start) / duration}%`, background: color,
            width: `${Math.max(0.2, (100 * (t.end - t.start)) / duration)}%` } }));
      }
      const head = el("div", { class: "playhead", style: { left: "0" } });
      heads.push(head);
      lane.append(head);
      timeline.append(lane);
    });

    const transcript = el("div", { id: "transcript" });
    const words = [];
    for (const seg of d.segments || []) {
      const color = speakerColor(seg.speaker, speakers.indexOf(seg.speaker));
      const cue = el("p", { class: "cue", "data-speaker": seg.speaker || "" },
        el("span", { class: "who", style: { color }, text: `${seg.speaker || "?"}` }),
        el("span", { class: "time", text: `${clock(seg.start)} ` }));
      const items = seg.words && seg.words.length ? seg.words : [{ start: seg.start, end: seg.end, word: seg.text }];
      for (const w of items) {
        const span = el("span", { class: "word", "data-start": w.start, "data-end": w.end, text: w.word,
          onclick: () => seek(w.start) });
        words.push(span);
        cue.append(span, " ");
      }
      transcript.append(cue);
    }
    if (audio) {
      audio.addEventListener("timeupdate", () => {
        const t = audio.currentTime;
        for (const h of heads) h.style.left = `${Math.min(100, (100 * t) / duration)}%`;
        for (const w of words) w.classList.toggle("now", t >= +w.dataset.start && t < +w.dataset.end);
      });
    }
    const lang = d.language ? ` · language ${d.language}` : "";
    app.append(el("section", {}, el("h2", { text: `Speakers (${speakers.length})${lang}` }), timeline),
      el("section", {}, el("h2", { text: "Transcript" }),
        words.length ? transcript : el("p", { text: "No words were transcribed." })));
  }

  // ------------------------------------------------------------------ page
  function render(data) {
    const job = data.job;
    document.getElementById("job-type").textContent = `${job.job_type} · ${job.job_id}`;
    document.title = `Timbr · ${job.job_type} · ${job.status}`;
    const dur = data.input && data.input.peaks ? ` · ${clock(data.input.peaks.duration)}` : "";
    summary.textContent = `${job.status}${dur} · ${job.credits_reserved} credits`;
    summary.dataset.status = job.status;
    app.replaceChildren();
    let input = null;
    if (data.input) {
      input = Track(job.job_type === "enhance" ? "Before" : "Input", data.input.name, data.input, "#4fa3ff");
      if (job.job_type !== "enhance" || job.status !== "completed") {
        app.append(el("section", { id: "input" }, input.root));
      }
    }
    if (job.status === "failed" || job.status === "cancelled") {
      const err = job.error || {};
      app.append(el("section", {}, el("p", { class: "error", text: `${job.status}: ${err.code || ""} ${err.message || ""}` })));
    } else if (job.results_removed) {
      app.append(el("section", { id: "removed" }, el("p", { text: `The results were removed (${job.results_removed}).` })));
    } else if (job.status !== "completed") {
      app.append(el("section", {}, el("p", { text: `${job.status} · ${job.stage || ""} · ${Math.round(job.progress * 100)}%` })));
      setTimeout(load, 2000);
    } else if (job.job_type === "separate") renderSeparate(data);
    else if (job.job_type === "enhance") renderEnhance(data, input);
    else if (job.job_type === "diarize") renderDiarize(data, input);
    if (input) requestAnimationFrame(input.redraw);
    document.body.dataset.ready = "1";
  }

  function load() {
    fetch(`${location.pathname.replace(/\/$/, "")}/data${location.search}`, { cache: "no-store" })
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        if (!ok) throw new Error(body && body.error ? `${body.error.code}: ${body.error.message}` : "error");
        render(body);
      })
      .catch((e) => { summary.textContent = `Could not load the job: ${e.message}`; summary.className = "error"; });
  }

  load();
})();
