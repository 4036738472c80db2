"use strict";
// Live operation on the dashboard: open alerts as they happen (with acknowledgement), the freshness of the
// observations, and a replay of the maps the live cycles stored. Loaded before dashboard.js, whose helpers
// ($, el, api, levelChip, fetchMap, ...) it calls once the page has started.

// --- replay: the maps the live cycles stored over the last 24 hours ------------------------------------
const replay = { domain: null, steps: [], seq: 0 };

async function loadReplay() {
  const domain = $("domain").value, seq = ++replay.seq;
  replay.domain = domain;
  replay.steps = [];
  fillReplay(null);
  try {
    const data = await api("GET", `/replay?domain=${encodeURIComponent(domain)}&hours=24`);
    if (seq !== replay.seq) return;
    replay.steps = data.steps;
  } catch (e) {
    if (seq === replay.seq) $("replay-at").textContent = `replay unavailable: ${e.message}`;
    return;
  }
  const leads = [...new Set(replay.steps.map((s) => s.lead_hours))].sort((a, b) => a - b);
  $("replay-lead").replaceChildren(...leads.map((l) => el("option", { value: String(l), textContent: `lead +${l} h` })));
  $("replay-lead").hidden = leads.length < 2 && !leads.some((l) => l > 0);
  fillReplay(leads.length ? leads[0] : null);
}

// The steps of the chosen lead, oldest first; the slider starts at the newest.
function replaySteps() {
  const lead = Number($("replay-lead").value);
  return replay.steps.filter((s) => $("replay-lead").value === "" || s.lead_hours === lead);
}

function fillReplay(lead) {
  if (lead !== null) $("replay-lead").value = String(lead);
  const steps = replaySteps(), slider = $("replay-step");
  Object.assign(slider, { min: 0, max: Math.max(steps.length - 1, 0), disabled: steps.length === 0 });
  slider.value = String(Math.max(steps.length - 1, 0));
  showReplayLabel();
}

function showReplayLabel() {
  const steps = replaySteps(), step = steps[Number($("replay-step").value)];
  if (!step) { $("replay-at").textContent = "no stored cycles in the last 24 h"; return; }
  const counts = LEVELS.map((l) => step.levels[l.ko] ?? step.levels[l.en]).map((n, i) => n ? `${LEVELS[i].ko} ${n}` : null)
    .filter(Boolean).join(", ");
  $("replay-at").textContent = `${step.at.replace("T", " ")} · cycle ${step.cycle}${counts ? ` · ${counts}` : ""}` +
    ` (${Number($("replay-step").value) + 1}/${steps.length})`;
}

function showReplay() {
  const step = replaySteps()[Number($("replay-step").value)], domain = replay.domain;
  if (!step || domain !== $("domain").value) return;
  $("replay-live").disabled = false;
  return fetchMap(() => api("GET", `/replay/${step.cycle}/${encodeURIComponent(domain)}?lead_hours=${step.lead_hours}`), step);
}

function leaveReplay() {
  state.replay = null;
  $("replay-live").disabled = true;
}

// --- live alerts ----------------------------------------------------------------------------------------
// GET /alerts gives the open alerts and the newest event id; /alerts/stream then sends every later event.
// The stream is read with fetch, not EventSource: EventSource cannot send the Authorization header a
// service with an API key needs (and a key in the URL would end up in logs). On any break the page
// reconnects with Last-Event-ID, as EventSource would, so no event is missed.
const alerts = { open: new Map(), last: null, reader: null, retry: null, officer: "" };
const STREAM_RETRY_MS = 2000;

async function startAlerts() {
  try {
    const data = await api("GET", "/alerts?status=open");
    alerts.open = new Map(data.alerts.map((a) => [a.id, a]));
    alerts.last = data.last_event_id;
    renderAlerts();
  } catch (e) {
    $("alerts-status").textContent = `unavailable: ${e.message}`;
    clearTimeout(alerts.retry);
    alerts.retry = setTimeout(startAlerts, 5 * STREAM_RETRY_MS);
    return;
  }
  streamAlerts();
}

async function refreshAlerts() {
  try {
    const data = await api("GET", "/alerts?status=open");
    alerts.open = new Map(data.alerts.map((a) => [a.id, a]));
    renderAlerts();
  } catch (e) {
    $("alerts-status").textContent = `unavailable: ${e.message}`;
  }
}

async function streamAlerts() {
  const headers = { Accept: "text/event-stream" };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  if (alerts.last !== null) headers["Last-Event-ID"] = String(alerts.last);
  try {
    const res = await fetch("/alerts/stream", { headers, cache: "no-store" });
    if (!res.ok) {
      let data = null;
      try { data = await res.json(); } catch { /* not JSON */ }
      if (res.status === 401) askForKey();
      throw new Error(data && data.error ? data.error : `HTTP ${res.status}`);
    }
    $("alerts-status").textContent = "live";
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
      buffer = blocks.pop();
      blocks.forEach(onStreamBlock);
    }
  } catch (e) {
    $("alerts-status").textContent = `reconnecting (${e.message})`;
  }
  clearTimeout(alerts.retry);
  alerts.retry = setTimeout(streamAlerts, STREAM_RETRY_MS);
}

// One server-sent event: "field: value" lines; a line starting with ":" is a keep-alive comment.
function onStreamBlock(block) {
  const fields = { data: [] };
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (!line || line.startsWith(":")) continue;
    const at = line.indexOf(":");
    const name = at < 0 ? line : line.slice(0, at), value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
    if (name === "data") fields.data.push(value); else fields[name] = value;
  }
  if (fields.event === "reset") { // our id was never issued (the store was reset): re-read the open alerts
    alerts.last = Number(fields.id);
    refreshAlerts();
    return;
  }
  if (fields.event !== "alert" || !fields.data.length) return;
  const event = JSON.parse(fields.data.join("\n"));
  if (fields.id) alerts.last = Number(fields.id);
  applyAlertEvent(event);
}

function applyAlertEvent(event) {
  const a = event.alert;
  if (a.status === "open") alerts.open.set(a.id, a); else alerts.open.delete(a.id);
  renderAlerts(a.id, event.kind);
}

function renderAlerts(changedId, kind) {
  const list = [...alerts.open.values()].sort((x, y) => levelRank(y.level) - levelRank(x.level) ||
    y.opened_at.localeCompare(x.opened_at));
  $("alerts").replaceChildren(...list.map((a) => alertItem(a, a.id === changedId ? kind : null)));
  $("no-alerts").hidden = list.length > 0;
  $("alerts").dataset.count = String(list.length);
  $("alerts").dataset.last = String(alerts.last ?? "");
}

const levelRank = (ko) => LEVELS.findIndex((l) => l.ko === ko);

function alertItem(a, kind) {
  const title = state.catalogue?.domains[a.domain]?.title || a.domain;
  const handled = a.acknowledged
    ? el("span", { className: "handled", textContent: `${a.acknowledged.action === "ack" ? "acknowledged" : "dismissed"} by ` +
      `${a.acknowledged.by} at ${a.acknowledged.at.replace("T", " ")}${a.acknowledged.note ? ` (${a.acknowledged.note})` : ""}` })
    : null;
  const item = el("li", { className: kind ? "fresh-event" : "", style: `border-left-color:${levelOf(a.level).color}` },
    levelChip(a.level, a.level_en),
    // lead -1: an input-quality alert (a domain's inputs, or a silent feed named by its source): no cells.
    // An alert with an impact (lead -2) is one quake's rapid impact assessment (live/impact.py).
    el("span", { className: "what", textContent: a.impact ? `${title} · impact` : a.lead_hours < 0 ? `${title} · inputs`
      : `${title}${a.lead_hours > 0 ? ` · +${a.lead_hours} h` : ""}`, title: a.domain }),
    a.lead_hours < 0 && !a.impact ? null : el("span", { className: "cells", textContent: `${a.cell_count} cell${a.cell_count === 1 ? "" : "s"}` }),
    a.cause ? el("span", { className: "cause", textContent: a.cause }) : null,
    a.impact ? el("span", { className: "impact", textContent: impactLine(a.impact) }) : null,
    el("span", { className: "hint", textContent: `data ${a.data_time.replace("T", " ")} · since ${a.opened_at.replace("T", " ")}` }),
    handled,
    el("span", { className: "actions" },
      el("button", { type: "button", className: "ack", textContent: "Acknowledge", onclick: () => acknowledge(a.id, "ack") }),
      el("button", { type: "button", className: "dismiss", textContent: "Dismiss", onclick: () => acknowledge(a.id, "dismiss") })));
  item.dataset.alertId = String(a.id);
  if (kind) item.dataset.event = kind;
  return item;
}

// One line of a quake's impact: expected deaths and loss with their 5-95% ranges and PAGER colours, damaged
// buildings, the most affected districts.
function impactLine(m) {
  const n = (v, d = 0) => Number(v).toLocaleString("ko-KR", { maximumFractionDigits: d });
  const eok = (krw) => `${n(krw / 1e8)}억원`;
  return `deaths ${n(m.deaths.mean, 1)} (${n(m.deaths.p05, 1)}-${n(m.deaths.p95, 1)}, ${m.deaths.colour}) · ` +
    `loss ${eok(m.loss.mean)} (${eok(m.loss.p05)}-${eok(m.loss.p95)}, ${m.loss.colour}) · ` +
    `damaged buildings ${n(m.damaged_buildings.mean)} · ${m.districts.slice(0, 3).map((d) => d.district).join(", ")}` +
    (m.stations ? ` · ${m.stations} station record${m.stations === 1 ? "" : "s"}` : "");
}

async function acknowledge(id, action) {
  const by = window.prompt(`${action === "ack" ? "Acknowledge" : "Dismiss"} alert ${id}: your name`, alerts.officer);
  if (by === null) return; // cancelled
  if (!by.trim()) { showError("by: the name of who acknowledges must not be empty"); return; }
  alerts.officer = by.trim();
  try {
    const event = await api("POST", `/alerts/${id}/ack`, { by: by.trim(), action });
    clearError();
    applyAlertEvent(event); // the stream brings the same event; applying it twice changes nothing
  } catch (e) {
    showError(e.message);
  }
}

// --- data freshness: GET /readyz carries {observations: {source: {newest, age_s, stale}}} when the
// service has a live store; without it the line stays hidden.
async function loadFreshness() {
  let body = null;
  try { body = await (await fetch("/readyz", { cache: "no-store" })).json(); } catch { /* no line */ }
  showFreshness(body);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "no data";
  if (seconds < 90) return `${Math.round(seconds)} s old`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min old`;
  if (seconds < 48 * 3600) return `${Math.round(seconds / 3600)} h old`;
  return `${Math.round(seconds / 86400)} days old`;
}

function showFreshness(body) {
  const line = $("freshness"), obs = body && body.observations;
  if (!obs || typeof obs !== "object" || !Object.keys(obs).length) { line.hidden = true; return; }
  line.replaceChildren("Data: ", ...Object.entries(obs).flatMap(([source, o], i) => [i ? " · " : "",
    el("span", { className: o.stale ? "stale" : "fresh", title: o.newest ? `newest ${o.newest}` : "",
      textContent: `${source} ${age(o.age_s)}${o.stale ? " (stale)" : ""}` })]));
  line.hidden = false;
}
