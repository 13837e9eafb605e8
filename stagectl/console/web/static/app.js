// stagectl web console: live status, stage map, output previews and the operator commands over one WebSocket.
//
// Protocol (stagectl/console/web/server.py): the server sends a snapshot {type: "snapshot", seq, state, status,
// stage, log, operator}, then hub events ({type: "state", seq, command, who, frame, state, log} and
// {type: "status", status}); the page sends {id, command, args} and gets {id, ack}. Units as the commands take
// them (docs/console.md): wall UV for cards, linear-light RGB for card and pattern colours, 8-bit sRGB codes for
// the chroma key, percent for overscan, frames for delays; the map is the stage frame seen from above (metres,
// +X right, +Y toward the main wall, up on the screen).
//
// Honest status: a camera's tracking badge is green live, amber stale / waiting, red lost, with the reason the
// stage gives (status.cameras[c].tracking_why) under it and its bad-packet count; a frozen camera or output says
// "frozen" and why. Every live value (top bar, cameras, genlock, cluster, graph, map, previews: class "live") is
// greyed out while the connection is down or no status came for STATUS_TIMEOUT_MS (body.offline).
"use strict";

(function () {
  const S = {
    ws: null, nextId: 1, waiting: new Map(), seq: -1, state: null, stage: null, status: null,
    operator: null, frameTimes: [], lastStatusFrame: null, log: [], selectedCard: null, mapBounds: null,
    previewTimer: null, retry: 0, built: false, connected: false, lastStatusAt: 0, offlineSince: null,
    previewSeen: {},
  };
  const STATUS_TIMEOUT_MS = 3000;  // no status for this long while connected: the values are not live either
  const PREVIEW_STALL_S = 3;  // a preview whose frame is this many seconds behind the status: not updating
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ small helpers
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const safe = (k) => String(k).replace(/\//g, "_");
  const fmt = (v, digits = 1) => (typeof v === "number" && isFinite(v) ? v.toFixed(digits) : "–");
  const short = (v) => (typeof v === "number" ? String(+v.toFixed(4)) : String(v));
  function srgbToLinear(c) { return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }
  function linearToSrgb(c) {
    c = Math.min(1, Math.max(0, c));
    return c <= 0.0031308 ? 12.92 * c : 1.055 * Math.pow(c, 1 / 2.4) - 0.055;
  }
  function hexToCodes(hex) {
    const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex || "");
    return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : [255, 255, 255];
  }
  function codesToHex(c) {
    return "#" + c.map((v) => Math.round(Math.min(255, Math.max(0, v))).toString(16).padStart(2, "0")).join("");
  }
  // a colour picker shows sRGB; card and pattern colours are linear light: convert at this edge
  const hexToLinear = (hex) => hexToCodes(hex).map((v) => +srgbToLinear(v / 255).toFixed(6));
  const linearToHex = (rgb) => codesToHex((rgb || [1, 1, 1]).map((v) => linearToSrgb(v) * 255));

  class InputError extends Error {}
  function num(input, label, { optional = false } = {}) {
    const raw = String(input.value).trim();
    if (raw === "") {
      if (optional) return undefined;
      input.classList.add("invalid");
      throw new InputError(`${label}: enter a number`);
    }
    const v = Number(raw);
    if (!isFinite(v)) {
      input.classList.add("invalid");
      throw new InputError(`${label}: "${raw}" is not a number`);
    }
    input.classList.remove("invalid");
    return v;
  }
  function markDirty(form) {
    form.addEventListener("input", (e) => { if (e.target.matches("input,select")) e.target.dataset.dirty = "1"; });
    form.addEventListener("change", (e) => { if (e.target.matches("input,select")) e.target.dataset.dirty = "1"; });
  }
  function clean(form) { form.querySelectorAll("[data-dirty]").forEach((i) => delete i.dataset.dirty); }
  function setValue(input, value) {  // refresh a field from the state unless the operator is editing it
    if (input.dataset.dirty || document.activeElement === input) return;
    if (input.type === "checkbox") input.checked = !!value;
    else input.value = value === null || value === undefined ? "" : String(value);
  }

  // ------------------------------------------------------------------ the stage description, tolerant of shape
  function points(f) {
    if (Array.isArray(f)) return f.filter((p) => Array.isArray(p) && p.length >= 2);
    if (f && typeof f === "object") {
      for (const k of ["corners", "corners_m", "points", "outline"]) if (Array.isArray(f[k])) return points(f[k]);
    }
    return [];
  }
  function normStage(st) {
    st = st || {};
    const list = (v) => (Array.isArray(v) ? v : v && typeof v === "object" ?
      Object.entries(v).map(([k, x]) => (x && typeof x === "object" ? { name: k, key: k, ...x } : { name: k })) : []);
    const walls = list(st.walls).map((w) => ({
      name: w.name, type: w.type, raster: w.raster || w.raster_px || w.size_px || null,
      facets: (w.facets || []).map(points).filter((p) => p.length >= 2),
    }));
    const outputs = list(st.outputs).map((o) => (typeof o === "string" ? { key: o } :
      { key: o.key || (o.processor ? `${o.processor}/${o.name}` : o.name), canvas: o.canvas || o.size || null }));
    const names = (v) => list(v).map((c) => (typeof c === "string" ? c : c.name));
    let fps = null;  // the stage's nominal rate ("24000/1001"): the frame period line of the graph
    const m = /^(\d+)(?:\/(\d+))?$/.exec(String(st.frame_rate || ""));
    if (m) fps = Number(m[1]) / Number(m[2] || 1);
    return { name: st.name || "", path: st.path || "", walls, outputs, cameras: names(st.cameras),
             tracking: names(st.tracking || st.tracking_sources), fps };
  }

  // ------------------------------------------------------------------ connection
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    S.ws = ws;
    setConn("connecting", "state-other");
    ws.onopen = () => { S.retry = 0; S.connected = true; setConn("live", "state-live"); updateLive(); };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      try { handle(msg); } catch (err) { console.error(err); }
    };
    ws.onclose = () => {
      S.connected = false;
      setConn("disconnected", "state-lost");
      updateLive();
      for (const [, w] of S.waiting) w.reject(new Error("connection lost before the answer came"));
      S.waiting.clear();
      S.retry = Math.min(S.retry + 1, 5);
      // a session the server no longer knows (it restarted): back to the login page
      fetch("/api/snapshot", { cache: "no-store" }).then((r) => {
        if (r.status === 401) location.reload();
        else setTimeout(connect, 400 * S.retry);
      }).catch(() => setTimeout(connect, 1000 * S.retry));
    };
  }
  function setConn(text, cls) { const c = $("conn"); c.textContent = text; c.className = "badge " + cls; }

  // Live values are only live while connected and while status keeps coming: otherwise grey them all out and
  // say since when (body.offline; the values stay readable but are plainly not current).
  function updateLive() {
    const fresh = S.lastStatusAt > 0 && Date.now() - S.lastStatusAt <= STATUS_TIMEOUT_MS;
    const live = S.connected && fresh;
    const was = !document.body.classList.contains("offline");
    document.body.classList.toggle("offline", !live);
    document.body.dataset.live = live ? "true" : "false";
    if (!live && (was || S.offlineSince === null)) S.offlineSince = new Date();
    if (live) S.offlineSince = null;
    const note = $("offline-note");
    if (note) {
      note.hidden = live;
      if (!live) {
        const since = S.offlineSince ? S.offlineSince.toLocaleTimeString() : "";
        note.textContent = S.connected ? `no status from the stage since ${since}: the values shown are old`
          : S.lastStatusAt === 0 ? "not connected to the stage yet"
          : `connection lost at ${since}: the values shown are old`;
      }
    }
    if (S.connected && !fresh && S.lastStatusAt > 0) setConn("no status", "state-stale");
    else if (S.connected && fresh && $("conn").textContent !== "live") setConn("live", "state-live");
  }
  setInterval(() => { updateLive(); checkPreviews(); }, 500);

  function handle(msg) {
    if (msg.ack !== undefined && "id" in msg) {
      const w = S.waiting.get(msg.id);
      if (w) { S.waiting.delete(msg.id); w.resolve(msg.ack); } else if (!msg.ack.ok) showAck(msg.ack);
      return;
    }
    if (msg.type === "snapshot") {
      S.operator = msg.operator;
      S.stage = normStage(msg.stage);
      S.seq = msg.seq;
      S.state = msg.state;
      S.log = (msg.log || []).slice();
      buildStatic();
      renderState();
      renderLog();
      if (msg.status) renderStatus(msg.status);
    } else if (msg.type === "state") {
      if (typeof msg.seq === "number" && msg.seq <= S.seq) return;  // already in the snapshot
      S.seq = msg.seq;
      S.state = msg.state;
      if (msg.log) { S.log.push(msg.log); if (S.log.length > 300) S.log.splice(0, S.log.length - 300); }
      renderState();
      renderLog();
    } else if (msg.type === "status") {
      renderStatus(msg.status);
    }
  }

  function send(command, args) {
    return new Promise((resolve, reject) => {
      if (!S.ws || S.ws.readyState !== WebSocket.OPEN) { reject(new Error("not connected to the stage")); return; }
      const id = S.nextId++;
      const timer = setTimeout(() => {
        if (S.waiting.delete(id)) reject(new Error("no answer from the stage within 6 s"));
      }, 6000);
      S.waiting.set(id, { resolve: (a) => { clearTimeout(timer); resolve(a); },
                          reject: (e) => { clearTimeout(timer); reject(e); } });
      S.ws.send(JSON.stringify({ id, command, args: args || {} }));
    });
  }

  // Send a command and show its acknowledgement (or error) on the ack line and in the history.
  async function run(command, args, form) {
    showBusy(command);
    let ack;
    try {
      ack = await send(command, args);
    } catch (err) {
      ack = { ok: false, command, error: `${command}: ${err.message}` };
    }
    showAck(ack);
    if (ack.ok && form) clean(form);
    return ack;
  }
  function guarded(fn) {  // form handlers: client-side input errors show as errors, nothing is sent
    return async (e) => {
      if (e) e.preventDefault();
      try { await fn(e); } catch (err) {
        if (err instanceof InputError) showAck({ ok: false, command: null, error: err.message });
        else throw err;
      }
    };
  }
  function resultText(r) {
    if (!r || typeof r !== "object") return "";
    const parts = Object.entries(r).filter(([, v]) => typeof v !== "object").map(([k, v]) => `${k} ${v}`);
    return parts.join(", ");
  }
  function showBusy(command) {
    const a = $("ack");
    a.className = "ack busy";
    a.dataset.state = "busy";
    a.textContent = `${command}: sent, waiting for the frame loop…`;
  }
  function showAck(ack) {
    const a = $("ack");
    const text = ack.ok
      ? `${ack.command} applied at frame ${ack.frame}` + (resultText(ack.result) ? ` (${resultText(ack.result)})` : "")
      : ack.error || `${ack.command}: failed`;
    a.className = "ack " + (ack.ok ? "ok" : "err");
    a.dataset.state = ack.ok ? "ok" : "error";
    a.dataset.ok = ack.ok ? "true" : "false";
    a.dataset.command = ack.command || "";
    a.dataset.frame = ack.ok && ack.frame !== undefined ? String(ack.frame) : "";
    const warning = ack.warning ? ` (warning: ${ack.warning})` : "";
    a.textContent = (ack.ok ? "✓ " : "✗ ") + text + warning;
    const li = el("li", { class: ack.ok ? "ok" : "err", "data-ok": ack.ok ? "true" : "false",
                          "data-frame": ack.ok ? ack.frame : null },
      el("span", { class: "t", text: new Date().toLocaleTimeString() + " " }), text);
    const h = $("ack-history");
    h.prepend(li);
    while (h.children.length > 30) h.lastChild.remove();
  }

  // ------------------------------------------------------------------ confirmation (dangerous actions)
  function confirmAction(text) {
    return new Promise((resolve) => {
      const m = $("confirm");
      $("confirm-text").textContent = text;
      m.hidden = false;
      const done = (v) => { m.hidden = true; ok.onclick = cancel.onclick = null; resolve(v); };
      const ok = $("confirm-ok"), cancel = $("confirm-cancel");
      ok.onclick = () => done(true);
      cancel.onclick = () => done(false);
      cancel.focus();
    });
  }

  // ------------------------------------------------------------------ static parts built from the stage
  function buildStatic() {
    const st = S.stage;
    $("stage-name").textContent = st.name || "stage";
    document.title = `stagectl console: ${st.name || "stage"}`;
    $("operator").textContent = S.operator || "–";
    // selects of walls
    const wallSel = $("card-add-wall");
    const prevWall = wallSel.value;
    wallSel.replaceChildren(...st.walls.map((w) => el("option", { value: w.name, text: w.name })));
    if (st.walls.some((w) => w.name === prevWall)) wallSel.value = prevWall;
    const ccSel = $("cc-target");
    const prevCc = ccSel.value;
    ccSel.replaceChildren(...st.walls.map((w) => el("option", { value: w.name, text: `wall ${w.name}` })),
      el("option", { value: "inner", text: "inner frusta" }));
    if ([...ccSel.options].some((o) => o.value === prevCc)) ccSel.value = prevCc;
    buildPreviews();
    buildOutputs();
    buildCameras();
    S.mapBounds = null;
    S.built = true;
    applySpecs();
  }

  // ------------------------------------------------------------------ limits from the command declarations
  // The pattern kinds and the limits of the number fields are not copied here: they come from the stage's
  // `help` answer, generated from the one declaration of every command (docs/console.md).
  const LIMITED = {  // input id (or id prefix) -> [command, argument]
    "card-add-intensity": ["card.add", "intensity"], "card-edit-intensity": ["card.set", "intensity"],
    "card-add-feather": ["card.add", "feather_px"], "card-edit-feather": ["card.set", "feather_px"],
    "cam-delay-": ["camera.set", "delay_frames"], "cam-softedge-": ["camera.set", "soft_edge"],
    "cam-ov-": ["camera.set", "overscan_percent"], "record-take": ["record.start", "take"],
  };
  const SLATE = ["scene", "roll", "camera", "notes"];  // record.start's slate texts: their lengths from `help`
  function declaredRange(type) {  // "number 0..1000" -> [0, 1000]
    const m = /(-?[\d.]+)\.\.(-?[\d.]+)/.exec(type || "");
    return m ? [+m[1], +m[2]] : null;
  }
  function applySpecs() {
    send("help", {}).then((ack) => {
      if (!ack.ok) return;
      const specs = {};
      for (const c of ack.result.commands) specs[c.name] = Object.fromEntries(c.args.map((a) => [a.name, a]));
      S.patternKinds = specs["pattern.set"].kind.type.split(" | ");
      for (const sel of document.querySelectorAll("select[id^='pattern-kind-']")) {
        const keep = sel.value;
        sel.replaceChildren(...S.patternKinds.map((x) => el("option", { value: x, text: x.replace("_", " ") })));
        sel.value = keep;
      }
      for (const [prefix, [command, arg]] of Object.entries(LIMITED)) {
        const a = specs[command] && specs[command][arg];
        const r = a && declaredRange(a.type);
        if (!r) continue;
        for (const input of document.querySelectorAll(`input[id^='${prefix}']`)) {
          input.min = r[0]; input.max = r[1]; input.title = `${a.type}: ${a.help}`;
        }
      }
      for (const k of SLATE) {  // "text, 1..32 characters" -> at most 32 characters
        const a = specs["record.start"] && specs["record.start"][k];
        const r = a && declaredRange(a.type);
        if (!r) continue;
        const input = $(`record-${k}`);
        input.maxLength = r[1]; input.title = `${a.type}: ${a.help}`;
      }
      if (S.state) renderState();  // the pattern selects show the state's kinds again
    }).catch(() => {});  // offline: the fields keep their plain number inputs; the stage checks every value
  }

  function buildPreviews() {
    const box = $("previews");
    box.replaceChildren(...S.stage.outputs.map((o) => el("figure", { "data-output": o.key, id: `fig-${safe(o.key)}` },
      el("img", { id: `preview-${safe(o.key)}`, "data-test": `preview-${safe(o.key)}`, alt: `preview of ${o.key}`,
                  width: o.canvas ? o.canvas[0] : null, height: o.canvas ? o.canvas[1] : null }),
      el("figcaption", {}, el("span", { text: o.key }),
        el("span", { id: `preview-frame-${safe(o.key)}`, "data-test": `preview-frame-${safe(o.key)}`, class: "muted",
                     text: "no preview yet" })),
      el("div", { class: "frozen-note", id: `preview-frozen-${safe(o.key)}`, "data-test": `preview-frozen-${safe(o.key)}`,
                  hidden: true }),
      el("div", { class: "patches-note", id: `preview-patches-${safe(o.key)}`,
                  "data-test": `preview-patches-${safe(o.key)}`, hidden: true }))));
    if (!S.previewTimer) S.previewTimer = setInterval(refreshPreviews, 500);
  }

  const inflight = new Set();
  function refreshPreviews() {
    if (document.hidden || !S.stage) return;
    for (const o of S.stage.outputs) {
      const k = safe(o.key);
      if (inflight.has(k)) continue;
      inflight.add(k);
      fetch(`/preview/${encodeURIComponent(k)}.jpg`, { cache: "no-store" }).then(async (r) => {
        if (r.status === 401) { location.reload(); return; }
        if (!r.ok) return;
        const frame = r.headers.get("X-Stagectl-Frame");
        const blob = await r.blob();
        const img = $(`preview-${k}`);
        if (!img) return;
        const url = URL.createObjectURL(blob);
        const old = img.dataset.url;
        img.onload = () => { if (old) URL.revokeObjectURL(old); };
        img.dataset.url = url;
        img.dataset.frame = frame || "";
        if (frame) S.previewSeen[k] = Number(frame);
        img.src = url;
        const cap = $(`preview-frame-${k}`);
        if (cap) cap.textContent = frame ? `frame ${frame}` : "";
      }).catch(() => {}).finally(() => inflight.delete(k));
    }
  }

  function buildOutputs() {
    const kinds = S.patternKinds || ["none"];  // all of them once the stage's help answered (applySpecs)
    $("outputs-list").replaceChildren(...S.stage.outputs.map((o) => {
      const k = safe(o.key);
      const kind = el("select", { id: `pattern-kind-${k}`, "data-test": `pattern-kind-${k}` },
        ...kinds.map((x) => el("option", { value: x, text: x.replace("_", " ") })));
      const color = el("input", { type: "color", id: `pattern-color-${k}`, "data-test": `pattern-color-${k}`,
                                  value: "#ffffff", title: "colour of the solid pattern" });
      const bFrame = el("input", { type: "checkbox", id: `pattern-burn-frame-${k}` });
      const bTc = el("input", { type: "checkbox", id: `pattern-burn-tc-${k}` });
      const set = el("button", { type: "button", id: `pattern-set-${k}`, "data-test": `pattern-set-${k}`, text: "Set pattern",
        onclick: guarded(() => {
          const args = { output: o.key, kind: kind.value };
          if (kind.value === "solid") args.color = hexToLinear(color.value);
          const burn = [];
          if (bFrame.checked) burn.push("frame");
          if (bTc.checked) burn.push("timecode");
          args.burn_in = burn;
          return run("pattern.set", args, box);
        }) });
      const black = el("button", { type: "button", id: `blackout-${k}`, "data-test": `blackout-${k}`,
        "aria-pressed": "false", text: "Black",
        onclick: guarded(() => run("output.blackout", { output: o.key, on: black.getAttribute("aria-pressed") !== "true" })) });
      const box = el("div", { class: "camform", "data-output": o.key },
        el("h3", {}, o.key, o.canvas ? el("span", { class: "muted small", text: `  ${o.canvas[0]} × ${o.canvas[1]}` }) : null),
        el("div", { class: "fields" }, el("label", {}, "pattern", kind), el("label", {}, "solid colour", color),
          el("label", { class: "check" }, bFrame, "frame"), el("label", { class: "check" }, bTc, "timecode"),
          set, black));
      markDirty(box);
      return box;
    }));
  }

  function buildCameras() {
    const box = $("camera-forms");
    box.replaceChildren(...S.stage.cameras.map((name) => {
      const k = safe(name);
      const f = (id, label, attrs) => el("label", {}, label,
        el("input", { type: "number", step: "any", id: `cam-${id}-${k}`, "data-test": `cam-${id}-${k}`, ...attrs }));
      const tracking = el("select", { id: `cam-tracking-${k}`, "data-test": `cam-tracking-${k}` },
        ...S.stage.tracking.map((t) => el("option", { value: t, text: t })));
      const smooth = el("select", { id: `cam-smoothing-${k}`, "data-test": `cam-smoothing-${k}` },
        el("option", { value: "off", text: "off" }), el("option", { value: "on", text: "One Euro" }));
      const freeze = el("input", { type: "checkbox", id: `cam-freeze-${k}`, "data-test": `cam-freeze-${k}` });
      const form = el("form", { class: "camform", id: `camform-${k}`, "data-camera": name, autocomplete: "off", novalidate: true },
        el("h3", { text: `Camera ${name}` }),
        el("div", { class: "fields" }, el("label", {}, "tracking", tracking),
          f("delay", "delay (frames)", { min: 0 }), f("softedge", "soft edge", { min: 0 }),
          el("label", { class: "check" }, freeze, "freeze")),
        el("div", { class: "fields" }, el("span", { class: "vlabel", text: "overscan % (left right bottom top)" }),
          f("ov-l", "l", { min: 0, class: "narrow" }), f("ov-r", "r", { min: 0, class: "narrow" }),
          f("ov-b", "b", { min: 0, class: "narrow" }), f("ov-t", "t", { min: 0, class: "narrow" })),
        el("div", { class: "fields" }, el("label", {}, "smoothing", smooth),
          f("cutoff", "min cutoff (Hz)", { min: 0 }), f("beta", "beta", { min: 0 }),
          el("button", { type: "submit", class: "primary", id: `cam-apply-${k}`, "data-test": `cam-apply-${k}`,
                         text: "Apply changed values" })));
      markDirty(form);
      freeze.addEventListener("change", guarded(() => run("camera.set", { camera: name, freeze: freeze.checked })));
      form.addEventListener("submit", guarded(() => {
        const d = (id) => !!$(`cam-${id}-${k}`).dataset.dirty;
        const args = { camera: name };
        if (tracking.dataset.dirty) args.tracking = tracking.value;
        if (d("delay")) args.delay_frames = num($(`cam-delay-${k}`), "delay_frames");
        if (d("softedge")) args.soft_edge = num($(`cam-softedge-${k}`), "soft_edge");
        if (["ov-l", "ov-r", "ov-b", "ov-t"].some(d)) {
          args.overscan_percent = ["l", "r", "b", "t"].map((s) => num($(`cam-ov-${s}-${k}`), `overscan ${s}`));
        }
        if (smooth.dataset.dirty || d("cutoff") || d("beta")) {
          args.smoothing = smooth.value === "off" ? "off" : {
            min_cutoff_hz: num($(`cam-cutoff-${k}`), "smoothing min cutoff"),
            beta: num($(`cam-beta-${k}`), "smoothing beta") };
        }
        if (Object.keys(args).length === 1) throw new InputError(`camera ${name}: change a value first`);
        return run("camera.set", args, form);
      }));
      return form;
    }));
  }

  // ------------------------------------------------------------------ operator state -> controls
  function renderState() {
    const st = S.state;
    if (!st) return;
    renderCards(st.light_cards || []);
    renderColor();
    // outputs
    const blackAll = !!st.blackout_all;
    $("banner-blackout").hidden = !blackAll;
    const blackSet = new Set(st.blackout || []);
    for (const o of S.stage.outputs) {
      const k = safe(o.key);
      const b = $(`blackout-${k}`);
      if (!b) continue;
      const on = blackSet.has(o.key);
      b.setAttribute("aria-pressed", on ? "true" : "false");
      b.textContent = on ? "Black (on)" : "Black";
      const fig = $(`fig-${k}`);
      if (fig) fig.classList.toggle("black", on || blackAll);
      const p = (st.patterns || {})[o.key];
      setValue($(`pattern-kind-${k}`), p ? p.kind : "none");
      if (p) setValue($(`pattern-color-${k}`), linearToHex(p.color));
      setValue($(`pattern-burn-frame-${k}`), p && (p.burn_in || []).includes("frame"));
      setValue($(`pattern-burn-tc-${k}`), p && (p.burn_in || []).includes("timecode"));
    }
    $("blackout-all").setAttribute("aria-pressed", blackAll ? "true" : "false");
    // cameras
    for (const [name, c] of Object.entries(st.cameras || {})) {
      const k = safe(name);
      if (!$(`camform-${k}`)) continue;
      setValue($(`cam-tracking-${k}`), c.tracking);
      setValue($(`cam-delay-${k}`), c.delay_frames);
      setValue($(`cam-softedge-${k}`), c.soft_edge);
      setValue($(`cam-freeze-${k}`), c.freeze);
      const ov = c.overscan_percent || [];
      ["l", "r", "b", "t"].forEach((s, i) => setValue($(`cam-ov-${s}-${k}`), ov[i]));
      const sm = c.smoothing;
      setValue($(`cam-smoothing-${k}`), sm && sm !== "off" ? "on" : "off");
      if (sm && sm !== "off") { setValue($(`cam-cutoff-${k}`), sm.min_cutoff_hz); setValue($(`cam-beta-${k}`), sm.beta); }
    }
    // stage tab
    const ck = st.chroma_key;
    setValue($("chroma-enabled"), ck ? ck.enabled : false);
    if (ck && ck.color) { setValue($("chroma-color"), codesToHex(ck.color)); }
    $("chroma-codes").textContent = ck && ck.color ? `codes ${ck.color.map((v) => Math.round(v)).join(", ")}` : "";
    setValue($("inner-enabled"), st.inner_enabled !== false);
    $("content-current").textContent = st.content || "–";
    $("record-current").textContent = st.recording ? st.recording : "no";
    $("banner-record").hidden = !st.recording;
  }

  function renderCards(cards) {
    const tbody = $("card-list").tBodies[0];
    $("card-none").hidden = cards.length > 0;
    tbody.replaceChildren(...cards.map((c) => {
      const tr = el("tr", { "data-test": "card-row", "data-card-id": c.id, class: c.id === S.selectedCard ? "selected" : "" },
        el("td", {}, el("span", { class: "swatch", style: `background:${linearToHex(c.color.map((v) => v * c.intensity))}` })),
        el("td", { text: c.id }), el("td", { text: c.wall }),
        el("td", { class: "num", text: c.rect.map((v) => v.toFixed(3)).join(" ") }),
        el("td", { class: "num", text: short(c.intensity) }), el("td", { text: c.layer }));
      tr.addEventListener("click", () => { selectCard(c.id, true); });
      return tr;
    }));
    if (S.selectedCard && !cards.some((c) => c.id === S.selectedCard)) S.selectedCard = null;
    selectCard(S.selectedCard, false);
  }

  function cardById(id) { return ((S.state && S.state.light_cards) || []).find((c) => c.id === id) || null; }

  function selectCard(id, fresh) {
    const form = $("card-edit-form");
    const c = id ? cardById(id) : null;
    S.selectedCard = c ? c.id : null;
    for (const tr of $("card-list").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.cardId === S.selectedCard);
    form.hidden = !c;
    if (!c) return;
    if (fresh) clean(form);
    $("card-edit-id").textContent = c.id;
    const [u0, v0, u1, v1] = c.rect;
    setValue($("card-edit-u"), +((u0 + u1) / 2).toFixed(4));
    setValue($("card-edit-v"), +((v0 + v1) / 2).toFixed(4));
    setValue($("card-edit-w"), +(u1 - u0).toFixed(4));
    setValue($("card-edit-h"), +(v1 - v0).toFixed(4));
    setValue($("card-edit-color"), linearToHex(c.color));
    setValue($("card-edit-intensity"), c.intensity);
    setValue($("card-edit-layer"), c.layer);
    setValue($("card-edit-feather"), c.feather_px);
  }

  function ccOf(target) {
    const col = (S.state && S.state.color) || {};
    return target === "inner" ? col.inner : (col.walls || {})[target];
  }
  function renderColor(fresh) {
    const target = $("cc-target").value;
    const form = $("cc-form");
    if (fresh) clean(form);
    const cc = ccOf(target);
    $("cc-current").textContent = cc ? "correction active" : "no correction";
    const v = cc || { exposure: 0, temperature: null, tint: 0, gains: null, slope: [1, 1, 1], offset: [0, 0, 0],
                      power: [1, 1, 1], saturation: 1, lut: null };
    for (const k of ["exposure", "temperature", "tint", "saturation", "lut"]) setValue($(`cc-${k}`), v[k]);
    for (const k of ["gains", "slope", "offset", "power"]) {
      for (let i = 0; i < 3; i++) setValue($(`cc-${k}-${i}`), v[k] ? v[k][i] : "");
    }
  }

  // ------------------------------------------------------------------ status
  function stateClass(s) {
    s = String(s || "").toLowerCase();
    if (s === "frozen") return "state-frozen";
    if (s === "live" || s === "locked" || s === "ok" || s === "member" || s === "true") return "state-live";
    if (s === "stale" || s === "late" || s === "waiting" || s === "joining") return "state-stale";
    if (s === "lost" || s === "silent" || s === "dead" || s === "none" || s === "error" || s === "dropped") return "state-lost";
    return "state-other";
  }
  // the take being recorded (status.recording): the REC badge and the slate line "12A T01 · roll A001 · cam A ·
  // 00:00:12 · TC 10:00:00:00–10:00:12:05 · 301 frames"; while not recording, which tracker starts takes
  function renderRecording(r) {
    const line = $("rec-slate");
    if (!r) { line.hidden = true; return; }
    const banner = $("banner-record");
    if (r.rec) banner.hidden = false;
    else if (!(S.state && S.state.recording)) banner.hidden = true;
    let text = "";
    if (r.rec) {
      const s = r.slate || {};
      const parts = [];
      const head = [s.scene, s.take !== undefined ? `T${String(s.take).padStart(2, "0")}` : null].filter((v) => v);
      if (head.length) parts.push(head.join(" "));
      if (s.roll) parts.push(`roll ${s.roll}`);
      if (s.camera) parts.push(`cam ${s.camera}`);
      const t = Math.max(0, Math.floor(r.elapsed_s || 0));
      parts.push([Math.floor(t / 3600), Math.floor(t / 60) % 60, t % 60].map((v) => String(v).padStart(2, "0")).join(":"));
      if (r.timecode_in) parts.push(`TC ${r.timecode_in}–${r.timecode || r.timecode_in}`);
      parts.push(`${r.frames ?? 0} frames`);
      text = parts.join(" · ");
      line.title = r.path || "";
    } else if (r.follow) {
      text = `takes follow ${r.follow}`;
      line.title = "record.follow: the tracker's recording flag starts and stops takes";
    }
    line.textContent = text;
    line.hidden = !text;
    line.dataset.rec = r.rec ? "1" : "0";
  }
  function renderStatus(status) {
    if (!status) return;
    S.status = status;
    S.lastStatusAt = Date.now();
    updateLive();
    $("st-frame").textContent = status.frame ?? "–";
    $("st-timecode").textContent = status.timecode ?? "–";
    $("st-fps").textContent = fmt(status.fps, 2);
    $("st-phase").textContent = typeof status.phase_error_us === "number" ? `${status.phase_error_us.toFixed(0)} µs` : "–";
    $("st-render").textContent = typeof status.render_ms === "number" ? `${status.render_ms.toFixed(1)} ms` : "–";
    for (const k of ["late", "dropped", "failed"]) {
      const e = $(`st-${k}`);
      e.textContent = status[k] ?? "–";
      e.className = status[k] > 0 ? (k === "failed" ? "bad" : "warn") : "";
    }
    // cameras
    const tbody = $("cameras-table").tBodies[0];
    const cams = status.cameras || {};
    tbody.replaceChildren(...Object.entries(cams).map(([name, c]) => {
      const p = c.position_m;
      const k = safe(name);
      const reasons = Object.entries(c.bad_by_reason || {}).map(([r, n]) => `${r} ${n}`).join(", ");
      const bad = typeof c.bad === "number" ? c.bad : null;
      return el("tr", { "data-camera": name, "data-test": `camera-row-${k}`, "data-tracking": c.tracking ?? "",
                        class: c.frozen ? "frozen" : null },
        el("td", { text: name }),
        el("td", {}, el("span", { class: "badge " + stateClass(c.tracking), "data-test": `camera-tracking-${k}`,
                                  title: c.tracking_why || null, text: c.tracking ?? "–" }),
          c.frozen ? el("span", { class: "badge state-frozen", "data-test": `camera-frozen-${k}`,
                                  title: "the operator froze this camera's inner frustum: the wall keeps its image",
                                  text: "frozen" }) : null,
          c.tracking_why ? el("div", { class: "why small", "data-test": `camera-why-${k}`, text: c.tracking_why }) : null),
        el("td", { class: "num", text: typeof c.rate_hz === "number" ? `${c.rate_hz.toFixed(1)} Hz` : "–" }),
        el("td", { class: "num" + (bad ? " bad" : ""), "data-test": `camera-bad-${k}`,
                   title: reasons ? `bad packets: ${reasons}` + (c.other_source ? `; ${c.other_source} from other cameras` : "")
                                  : (c.other_source ? `${c.other_source} packets from other cameras` : null),
                   text: bad === null ? "–" : String(bad) }),
        el("td", { class: "num", text: typeof c.sample_age_ms === "number" ? `${c.sample_age_ms.toFixed(1)} ms` : "–" }),
        el("td", { class: "num", text: Array.isArray(p) ? p.map((v) => fmt(v, 2)).join(" ") : "–" }),
        el("td", { class: "num", text: [c.pan_deg, c.tilt_deg, c.roll_deg].map((v) => fmt(v, 1)).join(" ") }),
        el("td", { class: "num", text: typeof c.focal_mm === "number" ? `${c.focal_mm.toFixed(1)} mm` : "–" }));
    }));
    renderRecording(status.recording);
    renderKv($("genlock"), status.genlock);
    renderCluster(status.cluster);
    renderOutputsStatus(status.outputs || {});
    // frame-time graph: append the frames since the last status
    const ft = Array.isArray(status.frame_times_ms) ? status.frame_times_ms : [];
    if (typeof status.frame === "number") {
      let n = ft.length;
      if (S.lastStatusFrame !== null && status.frame >= S.lastStatusFrame) n = Math.min(ft.length, status.frame - S.lastStatusFrame);
      if (n > 0) S.frameTimes.push(...ft.slice(ft.length - n));
      S.lastStatusFrame = status.frame;
    }
    const keep = Math.max(50, Math.round(10 * nominalFps()));
    if (S.frameTimes.length > keep) S.frameTimes.splice(0, S.frameTimes.length - keep);
    drawGraph();
    drawMap();
  }
  // frozen outputs: what the stage says (an operator freeze, a failed render) or a preview that stopped
  function renderOutputsStatus(outs) {
    if (!S.stage) return;
    for (const o of S.stage.outputs) {
      const k = safe(o.key);
      const st = outs[o.key] || {};
      const fig = $(`fig-${k}`);
      if (!fig) continue;
      fig.dataset.frozenStage = st.frozen ? String(st.frozen) : "";
      // color.patches: the calibration patch sequence playing on this output (frame k of N, the patch)
      const pn = $(`preview-patches-${k}`), pp = st.patches;
      if (pn) {
        pn.hidden = !pp;
        pn.textContent = pp ? `PATCHES frame ${pp.frame + 1} of ${pp.frames}: ${pp.patch}` +
          (pp.calibration === "on" ? " (calibrated)" : "") : "";
      }
    }
    checkPreviews();
  }
  function checkPreviews() {
    if (!S.stage) return;
    const fps = nominalFps();
    const frame = S.status && typeof S.status.frame === "number" ? S.status.frame : null;
    for (const o of S.stage.outputs) {
      const k = safe(o.key);
      const fig = $(`fig-${k}`), note = $(`preview-frozen-${k}`);
      if (!fig || !note) continue;
      let why = fig.dataset.frozenStage || "";
      const seen = S.previewSeen[k];
      if (!why && frame !== null && typeof seen === "number" && frame - seen > PREVIEW_STALL_S * fps) {
        why = `preview not updated since frame ${seen}`;
      }
      fig.classList.toggle("frozen", !!why);
      fig.dataset.frozen = why ? "true" : "false";
      note.hidden = !why;
      note.textContent = why ? `FROZEN: ${why}` : "";
    }
  }
  function renderKv(box, obj) {
    if (obj === null || obj === undefined) { box.textContent = "–"; return; }
    if (typeof obj !== "object") { box.textContent = String(obj); return; }
    box.replaceChildren(...Object.entries(obj).map(([k, v]) => el("div", {}, el("span", { class: "k", text: k }),
      el("span", { text: typeof v === "number" ? short(v) : typeof v === "object" ? JSON.stringify(v) : String(v) }))));
  }
  function renderCluster(cl) {
    const box = $("cluster");
    if (!cl) { box.textContent = "single node"; return; }
    const nodes = cl.nodes;
    if (nodes && typeof nodes === "object") {
      const entries = Array.isArray(nodes) ? nodes.map((n) => [n.name || n.node || "?", n]) : Object.entries(nodes);
      const rest = Object.fromEntries(Object.entries(cl).filter(([k]) => k !== "nodes"));
      renderKv(box, rest);
      for (const [name, n] of entries) {
        const st = typeof n === "object" ? (n.state || n.status || (n.in_barrier === false ? "dropped" : "ok")) : n;
        box.append(el("div", { "data-node": name }, el("span", { class: "k", text: name }),
          el("span", { class: "badge " + stateClass(st), text: String(st) })));
      }
      return;
    }
    renderKv(box, cl);
  }

  function nominalFps() { return (S.stage && S.stage.fps) || (S.status && S.status.fps) || 25; }
  function fitCanvas(c) {
    const r = window.devicePixelRatio || 1;
    const w = Math.max(10, Math.round(c.clientWidth * r)), h = Math.max(10, Math.round(c.clientHeight * r));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    return r;
  }
  function drawGraph() {
    const c = $("frame-graph");
    const r = fitCanvas(c);
    const g = c.getContext("2d");
    const W = c.width, H = c.height;
    g.clearRect(0, 0, W, H);
    const data = S.frameTimes;
    const fps = nominalFps();
    const period = 1000 / fps;
    const top = Math.max(period * 1.6, ...data.filter((v) => typeof v === "number" && isFinite(v)));
    const y = (v) => H - (v / top) * (H - 4 * r);
    g.strokeStyle = "#f85149";
    g.setLineDash([4 * r, 4 * r]);
    g.beginPath(); g.moveTo(0, y(period)); g.lineTo(W, y(period)); g.stroke();
    g.setLineDash([]);
    g.fillStyle = "#8b949e";
    g.font = `${11 * r}px system-ui, sans-serif`;
    g.fillText(`${period.toFixed(1)} ms frame`, 4 * r, y(period) - 3 * r);
    const keep = Math.max(50, Math.round(10 * fps));
    const dx = W / keep;
    const x0 = W - data.length * dx;
    g.fillStyle = "#58a6ff";
    data.forEach((v, i) => {
      if (typeof v !== "number" || !isFinite(v)) return;
      g.fillStyle = v > period ? "#f85149" : "#58a6ff";
      g.fillRect(x0 + i * dx, y(v), Math.max(1, dx - r * 0.5), H - y(v));
    });
    c.dataset.samples = String(data.length);
  }

  // ------------------------------------------------------------------ the stage map (top view)
  function drawMap() {
    const c = $("map");
    if (!S.stage) return;
    const r = fitCanvas(c);
    const g = c.getContext("2d");
    const W = c.width, H = c.height;
    g.fillStyle = "#0b0f14";
    g.fillRect(0, 0, W, H);
    const cams = (S.status && S.status.cameras) || {};
    // bounds: the walls, the origin, every camera seen so far (only ever grow, so the map stays still)
    let b = S.mapBounds;
    const grow = (x, y) => {
      if (!isFinite(x) || !isFinite(y)) return;
      if (!b) b = { x0: x, x1: x, y0: y, y1: y };
      b.x0 = Math.min(b.x0, x); b.x1 = Math.max(b.x1, x); b.y0 = Math.min(b.y0, y); b.y1 = Math.max(b.y1, y);
    };
    if (!b) { grow(0, 0); for (const w of S.stage.walls) for (const f of w.facets) for (const p of f) grow(p[0], p[1]); }
    for (const cam of Object.values(cams)) if (Array.isArray(cam.position_m)) grow(cam.position_m[0], cam.position_m[1]);
    S.mapBounds = b;
    const m = 0.8;  // metres of margin
    const bx0 = b.x0 - m, bx1 = b.x1 + m, by0 = b.y0 - m, by1 = b.y1 + m;
    const s = Math.min(W / (bx1 - bx0), H / (by1 - by0));
    const ox = (W - s * (bx1 - bx0)) / 2, oy = (H - s * (by1 - by0)) / 2;
    const X = (x) => ox + (x - bx0) * s;
    const Y = (y) => H - oy - (y - by0) * s;  // +Y up on the screen
    c.dataset.scale = String(s / r);
    // 1 m grid
    g.strokeStyle = "#161b22";
    g.lineWidth = 1;
    for (let x = Math.ceil(bx0); x <= bx1; x++) { g.beginPath(); g.moveTo(X(x), 0); g.lineTo(X(x), H); g.stroke(); }
    for (let y = Math.ceil(by0); y <= by1; y++) { g.beginPath(); g.moveTo(0, Y(y)); g.lineTo(W, Y(y)); g.stroke(); }
    g.strokeStyle = "#30363d";
    g.beginPath(); g.moveTo(X(0), Y(0) - 8 * r); g.lineTo(X(0), Y(0) + 8 * r);
    g.moveTo(X(0) - 8 * r, Y(0)); g.lineTo(X(0) + 8 * r, Y(0)); g.stroke();
    // cameras' frusta first (the walls are drawn over them), then walls, then the camera dots and names
    const drawn = [];
    const colour = (cam) => ({ "state-live": "#3fb950", "state-stale": "#d29922", "state-lost": "#f85149" }[stateClass(cam.tracking)]
                              || "#8b949e");
    for (const cam of Object.values(cams)) {
      const p = cam.position_m;
      const fr = Array.isArray(cam.frustum) ? cam.frustum.filter((q) => Array.isArray(q) && q.length >= 2) : [];
      if (!Array.isArray(p) || !fr.length) continue;
      g.strokeStyle = colour(cam);
      g.globalAlpha = 0.8;
      g.lineWidth = 1.5 * r;
      g.beginPath();
      for (const q of fr) { g.moveTo(X(p[0]), Y(p[1])); g.lineTo(X(q[0]), Y(q[1])); }
      fr.forEach((q, i) => (i ? g.lineTo(X(q[0]), Y(q[1])) : g.moveTo(X(q[0]), Y(q[1]))));
      g.closePath();
      g.stroke();
      g.globalAlpha = 1;
    }
    // walls: each facet's outline seen from above (a vertical facet is a line, a ceiling a rectangle)
    g.font = `${11 * r}px system-ui, sans-serif`;
    for (const w of S.stage.walls) {
      g.strokeStyle = "#9ecbff";
      g.fillStyle = "rgba(158, 203, 255, 0.12)";
      g.lineWidth = 3 * r;
      let lx = 0, ly = 0, n = 0;
      for (const f of w.facets) {
        g.beginPath();
        f.forEach((p, i) => (i ? g.lineTo(X(p[0]), Y(p[1])) : g.moveTo(X(p[0]), Y(p[1]))));
        g.closePath();
        g.fill();
        g.stroke();
        for (const p of f) { lx += p[0]; ly += p[1]; n++; }
      }
      if (n) { g.fillStyle = "#c9d1d9"; g.fillText(w.name, X(lx / n) + 4 * r, Y(ly / n) - 6 * r); }
    }
    for (const [name, cam] of Object.entries(cams)) {
      const p = cam.position_m;
      if (!Array.isArray(p)) continue;
      g.fillStyle = colour(cam);
      g.beginPath(); g.arc(X(p[0]), Y(p[1]), 6 * r, 0, 2 * Math.PI); g.fill();
      g.fillStyle = "#e6edf3";
      g.fillText(name, X(p[0]) + 9 * r, Y(p[1]) + 4 * r);
      drawn.push({ name, x: X(p[0]) / r, y: Y(p[1]) / r });
    }
    c.dataset.cameras = JSON.stringify(drawn);  // CSS-pixel positions of the camera dots (tests, tooling)
  }

  // ------------------------------------------------------------------ wiring of the static forms
  function wire() {
    // tabs
    document.querySelectorAll(".tabs button").forEach((b) => b.addEventListener("click", () => {
      document.querySelectorAll(".tabs button").forEach((x) => x.classList.toggle("active", x === b));
      document.querySelectorAll(".tabpanel").forEach((p) => { p.hidden = p.dataset.panel !== b.dataset.tab; });
    }));
    // colour vectors
    document.querySelectorAll("[data-ccvec]").forEach((box) => {
      const k = box.dataset.ccvec;
      for (let i = 0; i < 3; i++) {
        box.append(el("label", {}, "rgb"[i], el("input", { type: "number", step: "any", id: `cc-${k}-${i}`,
                                                            "data-test": `cc-${k}-${i}` })));
      }
    });
    // cards
    const add = $("card-add-form");
    add.addEventListener("submit", guarded(() => {
      const args = {
        wall: $("card-add-wall").value,
        rect: [num($("card-add-u0"), "u0"), num($("card-add-v0"), "v0"), num($("card-add-u1"), "u1"),
               num($("card-add-v1"), "v1")],
        color: hexToLinear($("card-add-color").value),
        intensity: num($("card-add-intensity"), "intensity"),
        layer: $("card-add-layer").value,
        feather_px: num($("card-add-feather"), "feather px"),
      };
      const id = $("card-add-id").value.trim();
      if (id) args.id = id;
      return run("card.add", args).then((ack) => {
        if (ack.ok) { $("card-add-id").value = ""; if (ack.result && ack.result.id) { S.selectedCard = ack.result.id; } }
      });
    }));
    const edit = $("card-edit-form");
    markDirty(edit);
    edit.addEventListener("submit", (e) => e.preventDefault());
    $("card-move").addEventListener("click", guarded(() => run("card.move", { id: S.selectedCard,
      u: num($("card-edit-u"), "centre u"), v: num($("card-edit-v"), "centre v") }, edit)));
    $("card-resize").addEventListener("click", guarded(() => run("card.resize", { id: S.selectedCard,
      width: num($("card-edit-w"), "width"), height: num($("card-edit-h"), "height") }, edit)));
    $("card-set").addEventListener("click", guarded(() => {  // only what the operator changed
      const args = { id: S.selectedCard };
      if ($("card-edit-color").dataset.dirty) args.color = hexToLinear($("card-edit-color").value);
      if ($("card-edit-intensity").dataset.dirty) args.intensity = num($("card-edit-intensity"), "intensity");
      if ($("card-edit-layer").dataset.dirty) args.layer = $("card-edit-layer").value;
      if ($("card-edit-feather").dataset.dirty) args.feather_px = num($("card-edit-feather"), "feather px");
      if (Object.keys(args).length === 1) throw new InputError(`card ${S.selectedCard}: change a value first`);
      return run("card.set", args, edit);
    }));
    $("card-remove").addEventListener("click", guarded(() => run("card.remove", { id: S.selectedCard })));
    edit.querySelectorAll("[data-nudge]").forEach((b) => b.addEventListener("click", guarded(() => {
      const c = cardById(S.selectedCard);
      if (!c) return undefined;
      const [du, dv] = b.dataset.nudge.split(",").map(Number);
      const [u0, v0, u1, v1] = c.rect;
      return run("card.move", { id: c.id, u: +((u0 + u1) / 2 + du * 0.01).toFixed(5),
                                v: +((v0 + v1) / 2 + dv * 0.01).toFixed(5) }, edit);
    })));
    // colour correction
    const cc = $("cc-form");
    markDirty(cc);
    $("cc-target").addEventListener("change", () => { delete $("cc-target").dataset.dirty; renderColor(true); });
    cc.addEventListener("submit", guarded(() => {
      const args = { target: $("cc-target").value };
      for (const k of ["exposure", "temperature", "tint", "saturation"]) {
        const i = $(`cc-${k}`);
        if (!i.dataset.dirty) continue;
        args[k] = k === "temperature" && i.value.trim() === "" ? null : num(i, k);
      }
      for (const k of ["gains", "slope", "offset", "power"]) {
        const ins = [0, 1, 2].map((j) => $(`cc-${k}-${j}`));
        if (!ins.some((i) => i.dataset.dirty)) continue;
        args[k] = k === "gains" && ins.every((i) => i.value.trim() === "") ? null : ins.map((i, j) => num(i, `${k} ${"rgb"[j]}`));
      }
      const lut = $("cc-lut");
      if (lut.dataset.dirty) args.lut = lut.value.trim() === "" ? null : lut.value.trim();
      if (Object.keys(args).length === 1) throw new InputError("colour: change a value first");
      return run("color.set", args, cc);
    }));
    $("cc-reset").addEventListener("click", guarded(() => run("color.reset", { target: $("cc-target").value }, cc)));
    // outputs
    $("blackout-all").addEventListener("click", guarded(async () => {
      if (!(await confirmAction("Black out every output? The LED wall goes dark until you restore it."))) {
        showAck({ ok: false, command: "output.blackout", error: "blackout all: cancelled, nothing changed" });
        return undefined;
      }
      return run("output.blackout", { output: "all", on: true });
    }));
    $("blackout-all-off").addEventListener("click", guarded(() => run("output.blackout", { output: "all", on: false })));
    // stage tab
    const chroma = $("chroma-form");
    markDirty(chroma);
    chroma.addEventListener("submit", guarded(() => run("chroma.set", { enabled: $("chroma-enabled").checked,
      color: hexToCodes($("chroma-color").value) }, chroma)));
    $("inner-enabled").addEventListener("change", guarded(() => run("inner.set", { enabled: $("inner-enabled").checked })));
    $("content-form").addEventListener("submit", guarded(() => {
      const v = $("content-input").value.trim();
      if (!v) throw new InputError("content: enter \"procedural\" or a scene file path");
      return run("content.select", { content: v });
    }));
    $("content-procedural").addEventListener("click", guarded(() => run("content.select", { content: "procedural" })));
    $("record-form").addEventListener("submit", guarded(() => {
      // the slate as typed (left empty: not sent; take empty: the next take of the scene); the stage checks it
      const args = {};
      for (const k of SLATE) {
        const v = $(`record-${k}`).value;
        if (v.trim() !== "") args[k] = v;
      }
      const take = num($("record-take"), "take", { optional: true });
      if (take !== undefined) args.take = take;
      const p = $("record-path").value.trim();
      if (p) args.path = p;
      return run("record.start", args);
    }));
    $("record-stop").addEventListener("click", guarded(() => run("record.stop", {})));
    $("stage-reload").addEventListener("click", guarded(async () => {
      if (!(await confirmAction("Reload the stage file now? Walls, outputs and cameras change to what the file says."))) {
        showAck({ ok: false, command: "stage.reload", error: "stage reload: cancelled, nothing changed" });
        return undefined;
      }
      const ack = await run("stage.reload", {});
      if (ack.ok) {  // the stage description may have changed: take a fresh snapshot
        const r = await fetch("/api/snapshot", { cache: "no-store" });
        if (r.ok) { const snap = await r.json(); snap.type = "snapshot"; S.seq = -1; handle(snap); }
      }
      return ack;
    }));
    window.addEventListener("resize", () => { drawGraph(); drawMap(); });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !$("confirm").hidden) $("confirm-cancel").click(); });
  }

  function renderLog() {
    const box = $("change-log");
    const items = S.log.slice(-100).reverse().map((r) => {
      const t = r.time_utc ? String(r.time_utc).replace(/^.*T(\d\d)(\d\d)(\d\d).*$/, "$1:$2:$3").replace(/^.*T(\d\d:\d\d:\d\d).*$/, "$1") : "";
      const args = r.args && Object.keys(r.args).length ? " " + JSON.stringify(r.args) : "";
      return el("li", { "data-seq": r.seq }, el("span", { class: "t", text: `${t} #${r.seq} f${r.frame} ` }),
        el("b", { text: r.who || "?" }), ` ${r.command}${args}`);
    });
    box.replaceChildren(...items);
  }

  // expose a read-only view for tooling and tests
  window.stagectlConsole = { get state() { return S.state; }, get status() { return S.status; },
                             get stage() { return S.stage; }, get seq() { return S.seq; }, send };

  document.addEventListener("DOMContentLoaded", () => { wire(); connect(); });
})();
