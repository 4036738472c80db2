"use strict";
// City risk-map dashboard. It uses only the public API (GET /domains, GET /models, POST /risk_map,
// POST /risk, GET /alerts, /alerts/stream, POST /alerts/{id}/ack, GET /replay, GET /readyz), so whatever
// it shows is what any client of the service would get.

// Same order as features/registry.py LEVELS; the API sends the Korean name, the colour follows it.
const LEVELS = [
  { ko: "관심", en: "interest", color: "#66bb6a" },
  { ko: "주의", en: "caution", color: "#fdd835" },
  { ko: "경계", en: "alert", color: "#fb8c00" },
  { ko: "심각", en: "serious", color: "#d32f2f" },
];
// A cell answered "unknown" (an essential input missing) has no level: drawn as no data, never as a level.
const NO_DATA = { ko: "자료없음", en: "no data", color: "#9e9e9e" };
const levelOf = (ko) => LEVELS.find((l) => l.ko === ko) || NO_DATA;

const $ = (id) => document.getElementById(id);
const state = { starting: false, catalogue: null, models: {}, map: null, view: null, selected: null, timer: null, mapSeq: 0,
  cellSeq: 0, replay: null };

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// Values span probabilities (0.004) to counts (112): three significant digits suit both.
function fmt(v, digits) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (digits !== undefined) return v.toFixed(digits);
  return Number.isInteger(v) || Math.abs(v) >= 1000 ? v.toFixed(0) : String(Number(v.toPrecision(3)));
}

// Every failure shows the server's own "error" string: the API names the field and the problem.
async function api(method, path, body) {
  const headers = body ? { "Content-Type": "application/json" } : {};
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  } catch (e) {
    throw new Error(`${method} ${path}: service unreachable (${e.message})`);
  }
  let data = null;
  try { data = await res.json(); } catch { /* a non-JSON body (e.g. a proxy page) gets the status below */ }
  if (res.status === 401) askForKey();
  if (!res.ok) throw new Error(data && data.error ? data.error : `${method} ${path}: HTTP ${res.status}`);
  return data;
}

// --- API key ---------------------------------------------------------------------------------------
// A service started with URBAN_SAFETY_API_KEY answers 401 to calls without `Authorization: Bearer <key>`:
// the page then asks for the key and keeps it for this tab's session. Without a key on the server, the
// prompt never shows and no header is sent.
const KEY_STORE = "urbanSafetyApiKey";
let apiKey = (() => { try { return sessionStorage.getItem(KEY_STORE) || ""; } catch { return ""; } })();

function keyPrompt() {
  if ($("key-prompt")) return $("key-prompt");
  const form = el("form", { id: "key-prompt", hidden: true, style: "margin-top:.4rem;font-size:.9rem" },
    el("label", { htmlFor: "api-key", textContent: "This service needs an API key: " }),
    el("input", { id: "api-key", type: "password", autocomplete: "off", placeholder: "API key", size: 28 }), " ",
    el("button", { id: "key-save", type: "submit", textContent: "Save" }));
  form.addEventListener("submit", (e) => { e.preventDefault(); saveKey($("api-key").value.trim()); });
  document.querySelector("header").append(form);
  return form;
}

function askForKey() {
  const form = keyPrompt();
  if (form.hidden) { form.hidden = false; $("api-key").value = ""; $("api-key").focus(); }
}

function saveKey(key) {
  apiKey = key;
  try { if (key) sessionStorage.setItem(KEY_STORE, key); else sessionStorage.removeItem(KEY_STORE); } catch { /* kept in memory */ }
  keyPrompt().hidden = true;
  clearError();
  if (state.catalogue) draw(); else init(); // a 401 before the catalogue arrived stopped init: start again
}

function showError(message) { $("error").textContent = message; $("error").hidden = false; }
function clearError() { $("error").textContent = ""; $("error").hidden = true; }

// --- conditions form ---------------------------------------------------------------------------
function rangeText(c) {
  if (c.minimum !== null && c.maximum !== null) return `${c.minimum} – ${c.maximum}`;
  if (c.minimum !== null) return `≥ ${c.minimum}`;
  if (c.maximum !== null) return `≤ ${c.maximum}`;
  return "";
}

function buildForm(domain) {
  const spec = state.catalogue.domains[domain];
  $("fields").replaceChildren(...spec.conditions.map((c) => {
    let input;
    if (c.type === "bool") {
      input = el("select", {}, el("option", { value: "", textContent: c.required ? "—" : "from observations" }),
        el("option", { value: "true", textContent: "yes" }), el("option", { value: "false", textContent: "no" }));
    } else if (c.choices) {  // e.g. flood's lead time: 1, 3 or 6 hours
      input = el("select", {}, el("option", { value: "", textContent: `default (${c.example})` }),
        ...c.choices.map((v) => el("option", { value: String(v), textContent: `${v} ${c.unit}` })));
    } else {
      // No min/max attributes: the range is shown as text and checked by the server, whose message we show.
      input = el("input", { type: c.type === "date" ? "date" : "number", step: c.type === "int" ? "1" : "any",
        placeholder: c.required ? String(c.example) : "from observations" });
    }
    Object.assign(input, { name: c.name, id: `c-${c.name}`, title: c.description });
    input.dataset.type = c.type;
    input.dataset.default = c.required ? String(c.example) : "";
    const unit = c.unit && c.unit !== "-" ? c.unit : "";
    const hint = [unit, rangeText(c) && `range ${rangeText(c)}`, !c.required && "optional"]
      .filter(Boolean).join(" · ");
    return el("label", { className: "field", htmlFor: input.id },
      el("span", { className: "name", textContent: c.name + (c.required ? " *" : "") }),
      el("span", { className: "desc", textContent: c.description }), input,
      el("span", { className: "hint", textContent: hint }));
  }));
  resetForm();
}

// Required fields start at the API's example, optional ones empty so the service uses its observations.
function resetForm() {
  for (const input of $("fields").querySelectorAll("[name]")) input.value = input.dataset.default;
}

function readConditions() {
  const out = {};
  for (const input of $("fields").querySelectorAll("[name]")) {
    const v = input.value.trim();
    if (v === "") continue;
    const t = input.dataset.type;
    // A non-number goes through unchanged so the server reports it against the field's name.
    out[input.name] = t === "bool" ? v === "true" : t === "date" || Number.isNaN(Number(v)) ? v : Number(v);
  }
  return out;
}

function requestBody() {
  const body = { domain: $("domain").value, conditions: readConditions() };
  const at = $("at").value;
  if (at) body.at = at.length === 16 ? `${at}:00` : at; // datetime-local may omit the seconds
  return body;
}

// Ready scenarios come with each domain's conditions from GET /domains.
function scenarios() {
  return Object.entries(state.catalogue.domains).flatMap(([domain, info]) =>
    (info.scenarios || []).map((s) => ({ domain, label: s.label, values: s.conditions })));
}

function applyScenario(index) {
  const s = scenarios()[index];
  if (!s) return;
  if ($("domain").value !== s.domain) { $("domain").value = s.domain; domainChanged(false); }
  resetForm();
  for (const [name, value] of Object.entries(s.values)) {
    const input = $("fields").querySelector(`[name="${name}"]`);
    if (input) input.value = String(value);
  }
  draw();
}

// --- map ---------------------------------------------------------------------------------------
// Cells are lon/lat rectangles; an equirectangular projection at the mid latitude keeps them square.
function prepare(fc) {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const f of fc.features) for (const [lon, lat] of f.geometry.coordinates[0]) {
    x0 = Math.min(x0, lon); x1 = Math.max(x1, lon); y0 = Math.min(y0, lat); y1 = Math.max(y1, lat);
  }
  const k = Math.cos(((y0 + y1) / 2) * Math.PI / 180);
  const cells = fc.features.map((f) => ({ ring: f.geometry.coordinates[0], p: f.properties }));
  // District outlines: an edge (two rounded vertices) used by one cell is the coast; used by two cells
  // of different districts it is a border. Both get drawn.
  const edges = new Map();
  for (const c of cells) for (let i = 0; i + 1 < c.ring.length; i++) {
    const [a, b] = [c.ring[i], c.ring[i + 1]];
    const key = [a.join(","), b.join(",")].sort().join("|");
    const e = edges.get(key);
    if (e) e.districts.push(c.p.district); else edges.set(key, { a, b, districts: [c.p.district] });
  }
  const borders = [...edges.values()].filter((e) => e.districts.length === 1 || e.districts[0] !== e.districts[1]);
  const labels = new Map();
  for (const c of cells) {
    const [lon, lat] = c.ring.slice(0, -1).reduce(([s, t], [u, v]) => [s + u / 4, t + v / 4], [0, 0]);
    const l = labels.get(c.p.district) || { lon: 0, lat: 0, n: 0 };
    labels.set(c.p.district, { lon: l.lon + lon, lat: l.lat + lat, n: l.n + 1 });
  }
  return { cells, borders, labels, k, box: { x0, y0, x1, y1 } };
}

function render() {
  const v = state.view;
  const canvas = $("map");
  if (!v) return;
  const { x0, y0, x1, y1 } = v.box;
  const box = getComputedStyle(canvas.parentElement); // clientWidth counts the padding too
  const width = canvas.parentElement.clientWidth - parseFloat(box.paddingLeft) - parseFloat(box.paddingRight);
  const ratio = ((y1 - y0) / ((x1 - x0) * v.k));
  const height = Math.min(width * ratio, window.innerHeight * 0.78);
  const pad = 10, dpr = window.devicePixelRatio || 1;
  const scale = Math.min((width - 2 * pad) / ((x1 - x0) * v.k), (height - 2 * pad) / (y1 - y0));
  const ox = (width - (x1 - x0) * v.k * scale) / 2, oy = (height - (y1 - y0) * scale) / 2;
  v.project = ([lon, lat]) => [ox + (lon - x0) * v.k * scale, oy + (y1 - lat) * scale];
  Object.assign(canvas, { width: Math.round(width * dpr), height: Math.round(height * dpr) });
  Object.assign(canvas.style, { width: `${width}px`, height: `${height}px` });
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#dfe9f3"; // the sea and anything outside the land grid
  ctx.fillRect(0, 0, width, height);
  for (const c of v.cells) {
    const pts = c.ring.map(v.project);
    c.rect = [pts[0][0], pts[2][1], pts[2][0], pts[0][1]]; // left, top, right, bottom: for clicks
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.fillStyle = levelOf(c.p.level).color;
    ctx.fill();
    if (c.rect[2] - c.rect[0] > 6) { ctx.strokeStyle = "rgba(255,255,255,0.45)"; ctx.lineWidth = 0.5; ctx.stroke(); }
  }
  ctx.beginPath();
  for (const e of v.borders) { ctx.moveTo(...v.project(e.a)); ctx.lineTo(...v.project(e.b)); }
  Object.assign(ctx, { strokeStyle: "#263238", lineWidth: 1.6, lineCap: "round" });
  ctx.stroke();
  if (state.hotspots && $("domain").value === "traffic") {  // the ranked cells, outlined
    Object.assign(ctx, { strokeStyle: "#6a1b9a", lineWidth: 2 });
    for (const c of v.cells) if (state.hotspots.has(c.p.cell_id)) {
      ctx.strokeRect(c.rect[0] + 1, c.rect[1] + 1, c.rect[2] - c.rect[0] - 2, c.rect[3] - c.rect[1] - 2);
    }
  }
  const sel = v.cells.find((c) => c.p.cell_id === state.selected);
  if (sel) {
    Object.assign(ctx, { strokeStyle: "#000", lineWidth: 3 });
    ctx.strokeRect(sel.rect[0], sel.rect[1], sel.rect[2] - sel.rect[0], sel.rect[3] - sel.rect[1]);
  }
  Object.assign(ctx, { font: 'bold 13px system-ui, "Noto Sans KR", "Malgun Gothic", NanumGothic, sans-serif',
    textAlign: "center", textBaseline: "middle", lineJoin: "round", lineWidth: 3.5, strokeStyle: "rgba(255,255,255,0.9)", fillStyle: "#1a1a1a" });
  for (const [name, l] of v.labels) {
    const [x, y] = v.project([l.lon / l.n, l.lat / l.n]);
    ctx.strokeText(name, x, y);
    ctx.fillText(name, x, y);
  }
  canvas.dataset.cells = String(v.cells.length);
}

function cellAt(x, y) {
  return state.view && state.view.cells.find(({ rect: r }) => r && x >= r[0] && x < r[2] && y >= r[1] && y < r[3]);
}

// The live map: POST /risk_map with the form's conditions. Drawing it ends a replay.
function draw() {
  leaveReplay();
  return fetchMap(() => api("POST", "/risk_map", requestBody()), null);
}

// Fetch a map (live or stored), draw it when it is still the newest asked for; keep the last good one on error.
async function fetchMap(get, replayStep) {
  const seq = ++state.mapSeq, canvas = $("map");
  canvas.dataset.cells = "0"; // tests (and people) can tell a finished draw from one in flight
  $("status").textContent = "loading…";
  try {
    const fc = await get();
    if (seq !== state.mapSeq) return; // a newer draw started; its answer wins
    clearError();
    showMap(fc, replayStep);
  } catch (e) {
    if (seq !== state.mapSeq) return;
    showError(e.message);
    $("status").textContent = "request failed; the map shows the last good answer";
    if (state.view && state.view.cells.length) canvas.dataset.cells = String(state.view.cells.length);
  }
}

function showMap(fc, replayStep) {
  const canvas = $("map"), m = fc.metadata || {}, domain = m.domain || $("domain").value;
  state.map = fc;
  state.replay = replayStep || null;
  state.view = prepare(fc);
  canvas.dataset.domain = domain;
  if (replayStep) canvas.dataset.replay = String(replayStep.cycle); else delete canvas.dataset.replay;
  if (!state.view.cells.some((c) => c.p.cell_id === state.selected)) state.selected = null;
  render();
  showSummary(fc);
  const spec = state.catalogue.domains[domain];
  $("model-version").textContent = m.model_version || "?";
  $("map-at").textContent = (replayStep?.at || m.at || "?").replace("T", " "); // a replay: the cycle's data time
  $("map-title").textContent = `${spec.title}${m.unit ? ` [${m.unit}]` : ""}`;
  $("meaning").textContent = m.value_meaning ? `Value: ${m.value_meaning}` : ""; // can be a paragraph, so not in the title
  $("status").textContent = replayStep
    ? `replay: stored map of cycle ${replayStep.cycle} (data time ${replayStep.at.replace("T", " ")})`
    : `${fc.features.length} cells, drawn ${new Date().toLocaleTimeString()}`;
  if (state.selected) showDetails(state.selected); // a refresh keeps the side panel in step with the map
}

// --- side panel and summary ----------------------------------------------------------------------
function levelChip(ko, en) {
  return el("span", { className: "chip", textContent: `${ko} ${en}`, style: `background:${levelOf(ko).color}` });
}

async function showDetails(cellId) {
  const seq = ++state.cellSeq, body = { ...requestBody(), locations: [{ cell_id: cellId }] };
  state.selected = cellId;
  render();
  if (state.replay) return showStoredCell(cellId); // a stored map's cell, not today's answer
  try {
    const answer = await api("POST", "/risk", body);
    if (seq !== state.cellSeq) return;
    const r = answer.results[0];
    const rows = (obj) => Object.entries(obj || {}).map(([k, v]) =>
      el("tr", {}, el("th", { textContent: k }), el("td", { textContent: typeof v === "object" && v !== null ? JSON.stringify(v) : fmt(v) })));
    const most = Math.max(...r.top_factors.map((f) => Math.abs(f.contribution)), 1e-9);
    $("details").replaceChildren(...[
      el("h2", { textContent: `${r.district} · ${r.cell_id}` }),
      r.status === "unknown"
        ? el("p", { className: "score unknown" }, levelChip(NO_DATA.ko, NO_DATA.en), " ", el("span", { textContent: r.reason }))
        : el("p", { className: "score" }, el("span", { className: "big", textContent: fmt(r.score, 1) }), " / 100 ",
          levelChip(r.level, r.level_en)),
      el("p", { className: "value", title: answer.value_meaning }, "Value: ", el("b", { textContent: `${fmt(r.value)} ${r.unit}` })),
      r.cause ? el("p", { className: "cause" }, "Cause: ", el("b", { textContent: r.cause })) : null,
      r.details ? el("table", { className: "kv" }, ...rows(r.details)) : null,
      ...(r.notes || []).map((n) => el("p", { className: "hint note", textContent: n })),
      el("h3", { textContent: "Top factors" }),
      el("table", { className: "factors" }, ...r.top_factors.map((f) => el("tr", {},
        el("td", { textContent: f.feature }), el("td", { className: "num", textContent: f.contribution.toFixed(3) }),
        el("td", {}, el("span", { className: f.contribution >= 0 ? "bar up" : "bar down",
          style: `width:${Math.round(50 * Math.abs(f.contribution) / most)}px` }))))),
      el("p", { className: "hint", textContent: `lat ${r.lat.toFixed(4)}, lon ${r.lon.toFixed(4)} · at ${answer.at.replace("T", " ")} · ${r.model_version}` }),
    ].filter(Boolean));
    $("details").dataset.cell = cellId;
  } catch (e) {
    if (seq === state.cellSeq) showError(e.message);
  }
}

// In a replay the side panel shows what the stored map holds for the cell.
function showStoredCell(cellId) {
  const f = state.map.features.find((x) => x.properties.cell_id === cellId);
  if (!f) return;
  const p = f.properties;
  $("details").replaceChildren(
    el("h2", { textContent: `${p.district} · ${p.cell_id}` }),
    p.status === "unknown" || p.score === null || p.score === undefined
      ? el("p", { className: "score unknown" }, levelChip(NO_DATA.ko, NO_DATA.en))
      : el("p", { className: "score" }, el("span", { className: "big", textContent: fmt(p.score, 1) }), " / 100 ",
        levelChip(p.level, p.level_en || levelOf(p.level).en)),
    p.value !== undefined ? el("p", { className: "value" }, "Value: ", el("b", { textContent: fmt(p.value) })) : null,
    p.cause ? el("p", { className: "cause" }, "Cause: ", el("b", { textContent: p.cause })) : null,
    el("p", { className: "hint", textContent: `stored map of cycle ${state.replay.cycle}, data time ${state.replay.at.replace("T", " ")}` }));
  $("details").dataset.cell = cellId;
}

function showSummary(fc) {
  const by = new Map();
  for (const f of fc.features) {
    const d = by.get(f.properties.district) || [];
    by.set(f.properties.district, [...d, f.properties]);
  }
  const head = el("tr", {}, el("th", { textContent: "District" }),
    ...[...LEVELS, NO_DATA].map((l) => el("th", {}, levelChip(l.ko, l.en))), el("th", { textContent: "Worst cells (score)" }));
  const body = [...by.keys()].sort((a, b) => a.localeCompare(b, "ko")).map((name) => {
    const cells = by.get(name);
    const worst = cells.filter((c) => c.score !== null).sort((a, b) => b.score - a.score).slice(0, 3);
    return el("tr", {}, el("th", { textContent: `${name} (${cells.length})` }),
      ...LEVELS.map((l) => el("td", { className: "num", textContent: String(cells.filter((c) => c.level === l.ko).length) })),
      el("td", { className: "num", textContent: String(cells.filter((c) => c.status === "unknown").length) }),
      el("td", {}, ...worst.map((c) => el("button", { type: "button", className: "cell-link",
        textContent: `${c.cell_id.split("-").slice(-2).join("-")} ${fmt(c.score, 1)}`, title: c.cell_id, value: String(c.score),
        style: `border-color:${levelOf(c.level).color}`, onclick: () => showDetails(c.cell_id) }))));
  });
  $("summary").replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
}

// --- traffic hotspots: POST /hotspots, listed and outlined on the traffic map ------------------------
function hotspotDefaults() {
  const spec = state.catalogue.domains.traffic;
  if (!spec || !spec.available) return;
  $("hotspots-view").hidden = false;
  const to = new Date(`${spec.default_at.slice(0, 10)}T00:00:00Z`);
  const from = new Date(to.getTime() - 365 * 86400000);
  $("hs-to").value = to.toISOString().slice(0, 10);
  $("hs-from").value = from.toISOString().slice(0, 10);
}

async function rankHotspots() {
  const body = { period: { from: $("hs-from").value, to: $("hs-to").value }, top_n: Number($("hs-top").value),
    by: $("hs-by").value };
  $("hs-status").textContent = "ranking…";
  try {
    const answer = await api("POST", "/hotspots", body);
    clearError();
    state.hotspots = new Set(answer.cells.map((c) => c.cell_id));
    const tier = (t) => `${t.frequency[0]}/${t.severity[0]}/${t.scale[0]}`.toUpperCase();
    const head = el("tr", {}, ...["#", "Cell", "District", "Expected accidents", "Expected ECLO",
      "Tiers F/S/S", "Observed accidents", "Observed ECLO"].map((t) => el("th", { textContent: t })));
    const rows = answer.cells.map((c) => el("tr", {}, el("td", { className: "num", textContent: String(c.rank) }),
      el("td", {}, el("button", { type: "button", className: "cell-link", textContent: c.cell_id, title: "show on the map",
        onclick: () => { if ($("domain").value !== "traffic") { $("domain").value = "traffic"; domainChanged(); }
          showDetails(c.cell_id); } })),
      el("td", { textContent: c.district }), el("td", { className: "num", textContent: fmt(c.expected.accidents, 2) }),
      el("td", { className: "num", textContent: fmt(c.expected.eclo, 1) }), el("td", { textContent: tier(c.tiers.expected) }),
      el("td", { className: "num", textContent: String(c.observed.accidents) }),
      el("td", { className: "num", textContent: fmt(c.observed.eclo, 1) })));
    $("hotspots").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
    $("hs-status").textContent = `${answer.cells.length} cells, ${answer.slots} three-hour slots, ${answer.model_version}`;
    render();
  } catch (e) {
    $("hs-status").textContent = "";
    showError(e.message);
  }
}

// --- wiring ------------------------------------------------------------------------------------------
function domainChanged(redraw = true) {
  const domain = $("domain").value, spec = state.catalogue.domains[domain];
  buildForm(domain);
  $("at").value = "";
  $("at-hint").textContent = `empty = latest observations (${spec.default_at.replace("T", " ")})`;
  const model = state.models[domain];
  $("model-version").textContent = model ? model.model_version || `unavailable: ${model.reason}` : "?";
  $("legend").replaceChildren(...spec.levels.map((l) => el("li", {},
    el("span", { className: "swatch", style: `background:${levelOf(l.level).color}` }),
    el("b", { textContent: l.level }), ` ${l.level_en} · score ${l.score_from}–${l.score_to} · `,
    `${fmt(l.value_from)}–${fmt(l.value_to)} ${spec.unit}`)),
    el("li", {}, el("span", { className: "swatch", style: `background:${NO_DATA.color}` }),
      el("b", { textContent: NO_DATA.ko }), ` ${NO_DATA.en} · an essential input is missing: not scored`));
  $("details").replaceChildren(el("p", { className: "hint", textContent: "Click a cell on the map to see its risk, cause and top factors." }));
  delete $("details").dataset.cell;
  state.selected = null;
  loadReplay();
  if (redraw) draw();
}

async function init() {
  if (state.starting || state.catalogue) return; // one start only, however often the key is saved
  state.starting = true;
  try {
    const [catalogue, models] = await Promise.all([api("GET", "/domains"), api("GET", "/models")]);
    state.catalogue = catalogue;
    state.models = models.domains || {};
  } catch (e) {
    showError(e.message);
    return;
  } finally {
    state.starting = false;
  }
  $("city").textContent = `${state.catalogue.city} · ${state.catalogue.cells} cells of ${state.catalogue.grid_m} m`;
  const names = Object.keys(state.catalogue.domains);
  $("domain").replaceChildren(...names.map((n) => el("option", { value: n,
    textContent: n[0].toUpperCase() + n.slice(1).replace(/_/g, " "), title: state.catalogue.domains[n].title })));
  $("scenario").append(...scenarios().map((s, i) => el("option", { value: String(i), textContent: s.label })));
  $("domain").addEventListener("change", () => { $("scenario").value = ""; domainChanged(); });
  $("hotspots-form").addEventListener("submit", (e) => { e.preventDefault(); rankHotspots(); });
  hotspotDefaults();
  $("scenario").addEventListener("change", (e) => applyScenario(Number(e.target.value === "" ? -1 : e.target.value)));
  $("conditions").addEventListener("submit", (e) => { e.preventDefault(); draw(); });
  $("refresh").addEventListener("change", (e) => {
    clearInterval(state.timer); // a wall display refreshes on one timer only
    const seconds = Number(e.target.value);
    state.timer = seconds ? setInterval(() => { if (!state.replay) draw(); }, seconds * 1000) : null;
  });
  $("map").addEventListener("click", (e) => {
    const box = e.target.getBoundingClientRect();
    const cell = cellAt(e.clientX - box.left, e.clientY - box.top);
    if (cell) showDetails(cell.p.cell_id);
  });
  window.addEventListener("resize", render);
  $("replay-step").addEventListener("input", () => showReplayLabel());
  $("replay-step").addEventListener("change", () => showReplay());
  $("replay-lead").addEventListener("change", () => fillReplay(null));
  $("replay-live").addEventListener("click", () => draw());
  domainChanged();
  startAlerts();
  loadFreshness();
  setInterval(loadFreshness, 30_000);
}

// For tests and the console: where a cell is drawn, in CSS pixels from the canvas's top-left corner.
window.dashboard = {
  cellCentre(cellId) {
    const c = state.view && state.view.cells.find((x) => x.p.cell_id === cellId);
    return c ? { x: (c.rect[0] + c.rect[2]) / 2, y: (c.rect[1] + c.rect[3]) / 2 } : null;
  },
  showFreshness,
};

init();
