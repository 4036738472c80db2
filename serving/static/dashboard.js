"use strict";
// City risk-map dashboard. It uses only the public API (GET /domains, GET /models, GET /grid, POST /risk_map,
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
const state = { starting: false, catalogue: null, models: {}, grid: null, view: null, xf: null, fit: true, selected: null,
  timer: null, mapSeq: 0, cellSeq: 0, replay: null };

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
async function api(method, path, body, cache = "default") {
  const headers = body ? { "Content-Type": "application/json" } : {};
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  let res;
  try {
    res = await fetch(path, { method, headers, cache, body: body ? JSON.stringify(body) : undefined });
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
// The grid (GET /grid) is fetched once and kept; each map is then per-cell arrays in the grid's order
// (POST /risk_map with format "compact"). Cells are squares of a regular grid in a local equirectangular
// projection, so one grid cell is one pixel of an offscreen raster coloured by level: a map of 55,000
// cells is one putImageData, and every pan or zoom one scaled drawImage, with no per-cell path or node.
const RGBA = [...LEVELS, NO_DATA].map((l) => [1, 3, 5].map((i) => parseInt(l.color.slice(i, i + 2), 16)));
const OUTLINE_PX = 6; // cells drawn larger than this get a faint outline

async function loadGrid(revalidate = false) {
  // The browser keeps the grid (ETag, Cache-Control); "no-cache" asks the server whether it changed.
  const g = await api("GET", "/grid", null, revalidate ? "no-cache" : "default");
  const n = g.cells, index = new Int32Array(g.n_rows * g.n_cols).fill(-1);
  const row = Int32Array.from(g.row), col = Int32Array.from(g.col), district = Int32Array.from(g.district);
  for (let i = 0; i < n; i++) index[row[i] * g.n_cols + col[i]] = i;
  const at = (r, c) => (r >= 0 && r < g.n_rows && c >= 0 && c < g.n_cols ? index[r * g.n_cols + c] : -1);
  // District outlines in grid units: a cell edge whose neighbour is no cell (the coast) or a cell of
  // another district. Found once per grid from the neighbours, in one pass.
  const borders = [];
  for (let i = 0; i < n; i++) {
    const r = row[i], c = col[i], d = district[i];
    for (const [dr, dc, x0, y0, x1, y1] of [[0, 1, c + 1, r, c + 1, r + 1], [0, -1, c, r, c, r + 1],
      [1, 0, c, r + 1, c + 1, r + 1], [-1, 0, c, r, c + 1, r]]) {
      const j = at(r + dr, c + dc);
      if (j < 0 || (district[j] !== d && (dr + dc > 0))) borders.push(x0, y0, x1, y1); // a shared edge once
    }
  }
  const sums = g.districts.map(() => [0, 0, 0]);
  for (let i = 0; i < n; i++) { const s = sums[district[i]]; s[0] += col[i] + 0.5; s[1] += row[i] + 0.5; s[2]++; }
  state.grid = { ...g, n, row, col, district, index, at, borders: Float32Array.from(borders),
    byId: new Map(g.cell_id.map((id, i) => [id, i])),
    labels: g.districts.map((name, k) => ({ name, u: sums[k][0] / sums[k][2], v: sums[k][1] / sums[k][2] })) };
  state.fit = true;
  return state.grid;
}

// A map in the grid's order, whatever form it came in: compact arrays (live maps) or a stored GeoJSON
// FeatureCollection (replay), matched to the grid by cell_id. level: 0-3, -1 unknown, -2 not in the map.
function mapView(data) {
  const g = state.grid, level = new Int8Array(g.n).fill(-2);
  if (data.format === "compact") {
    level.set(data.level);
    const prop = (i) => ({ cell_id: g.cell_id[i], district: g.districts[g.district[i]],
      status: data.unknown[i] ? "unknown" : "scored", score: data.score[i], value: data.value[i],
      level: level[i] >= 0 ? data.levels[level[i]][0] : null, level_en: level[i] >= 0 ? data.levels[level[i]][1] : null,
      cause: data.cause[i] >= 0 ? data.causes[data.cause[i]] : null,
      reason: data.reason[i] >= 0 ? data.reasons[data.reason[i]] : null });
    return { meta: data.metadata || {}, level, score: data.score, prop, cells: g.n };
  }
  const props = new Array(g.n).fill(null);
  for (const f of data.features || []) {
    const i = g.byId.get(f.properties.cell_id);
    if (i === undefined) continue; // a stored map of another grid: its other cells are not drawn
    const p = f.properties, known = p.status !== "unknown" && p.level !== null && p.level !== undefined;
    props[i] = { ...p, district: p.district || g.districts[g.district[i]] };
    level[i] = known ? LEVELS.indexOf(levelOf(p.level)) : -1;
  }
  const score = props.map((p) => (p && p.score !== undefined ? p.score : null));
  return { meta: data.metadata || {}, level, score, prop: (i) => props[i], cells: props.filter(Boolean).length };
}

function paintRaster(view) {
  const g = state.grid, raster = document.createElement("canvas");
  Object.assign(raster, { width: g.n_cols, height: g.n_rows });
  const ctx = raster.getContext("2d"), image = ctx.createImageData(g.n_cols, g.n_rows), px = image.data;
  for (let i = 0; i < g.n; i++) {
    const lv = view.level[i];
    if (lv === -2) continue;
    const o = 4 * ((g.n_rows - 1 - g.row[i]) * g.n_cols + g.col[i]), rgb = RGBA[lv >= 0 ? lv : LEVELS.length];
    px[o] = rgb[0]; px[o + 1] = rgb[1]; px[o + 2] = rgb[2]; px[o + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  view.raster = raster;
}

// Screen placement: x = tx + col * s, y = ty + (n_rows - row) * s (CSS pixels), s pixels per cell.
function fitView(width, height) {
  const g = state.grid, pad = 10;
  const s = Math.min((width - 2 * pad) / g.n_cols, (height - 2 * pad) / g.n_rows);
  state.xf = { s, tx: (width - g.n_cols * s) / 2, ty: (height - g.n_rows * s) / 2, s0: s };
}

const toScreen = (u, v) => [state.xf.tx + u * state.xf.s, state.xf.ty + (state.grid.n_rows - v) * state.xf.s];

function cellRect(i) {
  const g = state.grid, [x, y] = toScreen(g.col[i], g.row[i] + 1);
  return [x, y, x + state.xf.s, y + state.xf.s]; // left, top, right, bottom
}

function render() {
  const v = state.view, g = state.grid, canvas = $("map");
  if (!v || !g) return;
  const box = getComputedStyle(canvas.parentElement); // clientWidth counts the padding too
  const width = canvas.parentElement.clientWidth - parseFloat(box.paddingLeft) - parseFloat(box.paddingRight);
  const height = Math.min(width * (g.n_rows / g.n_cols), window.innerHeight * 0.78);
  const dpr = window.devicePixelRatio || 1;
  if (state.fit || !state.xf || state.size !== `${width}x${height}`) { fitView(width, height); state.fit = false; }
  state.size = `${width}x${height}`;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    Object.assign(canvas, { width: Math.round(width * dpr), height: Math.round(height * dpr) });
    Object.assign(canvas.style, { width: `${width}px`, height: `${height}px` });
  }
  const ctx = canvas.getContext("2d"), { s, tx, ty } = state.xf;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#dfe9f3"; // the sea and anything outside the land grid
  ctx.fillRect(0, 0, width, height);
  ctx.imageSmoothingEnabled = false; // one raster pixel is one cell: crisp squares at any zoom
  ctx.drawImage(v.raster, tx, ty, g.n_cols * s, g.n_rows * s);
  if (s > OUTLINE_PX) { // zoomed in: outline the cells on screen only
    const c0 = Math.max(0, Math.floor(-tx / s)), c1 = Math.min(g.n_cols, Math.ceil((width - tx) / s));
    const r0 = Math.max(0, Math.floor(g.n_rows - (height - ty) / s)), r1 = Math.min(g.n_rows, Math.ceil(g.n_rows + ty / s));
    ctx.beginPath();
    for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) {
      const i = g.index[r * g.n_cols + c];
      if (i >= 0 && v.level[i] !== -2) { const [x, y] = toScreen(c, r + 1); ctx.rect(x, y, s, s); }
    }
    Object.assign(ctx, { strokeStyle: "rgba(255,255,255,0.45)", lineWidth: 0.5 });
    ctx.stroke();
  }
  ctx.beginPath();
  const b = g.borders;
  for (let k = 0; k < b.length; k += 4) { ctx.moveTo(...toScreen(b[k], b[k + 1])); ctx.lineTo(...toScreen(b[k + 2], b[k + 3])); }
  Object.assign(ctx, { strokeStyle: "#263238", lineWidth: 1.6, lineCap: "round" });
  ctx.stroke();
  if (state.hotspots && $("domain").value === "traffic") {  // the ranked cells, outlined
    Object.assign(ctx, { strokeStyle: "#6a1b9a", lineWidth: 2 });
    for (const id of state.hotspots) {
      const i = g.byId.get(id);
      if (i === undefined) continue;
      const r = cellRect(i);
      ctx.strokeRect(r[0] + 1, r[1] + 1, r[2] - r[0] - 2, r[3] - r[1] - 2);
    }
  }
  const sel = state.selected !== null ? g.byId.get(state.selected) : undefined;
  if (sel !== undefined) {
    const r = cellRect(sel);
    Object.assign(ctx, { strokeStyle: "#000", lineWidth: 3 });
    ctx.strokeRect(r[0], r[1], r[2] - r[0], r[3] - r[1]);
  }
  Object.assign(ctx, { font: 'bold 13px system-ui, "Noto Sans KR", "Malgun Gothic", NanumGothic, sans-serif',
    textAlign: "center", textBaseline: "middle", lineJoin: "round", lineWidth: 3.5, strokeStyle: "rgba(255,255,255,0.9)", fillStyle: "#1a1a1a" });
  for (const l of g.labels) {
    const [x, y] = toScreen(l.u, l.v);
    ctx.strokeText(l.name, x, y);
    ctx.fillText(l.name, x, y);
  }
  canvas.dataset.cells = String(v.cells);
}

// Panning and zooming redraw at most once per frame.
function renderSoon() {
  if (state.frame) return;
  state.frame = requestAnimationFrame(() => { state.frame = null; render(); });
}

function cellAt(x, y) {
  if (!state.view || !state.grid || !state.xf) return null;
  const g = state.grid, { s, tx, ty } = state.xf;
  const i = g.at(Math.floor(g.n_rows - (y - ty) / s), Math.floor((x - tx) / s));
  return i >= 0 && state.view.level[i] !== -2 ? state.view.prop(i) : null;
}

function wireMap() {
  const canvas = $("map");
  let drag = null; // {x, y, moved}: a press that moves more than a few pixels pans instead of clicking
  canvas.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, moved: false }; });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag || !state.xf || !(e.buttons & 1)) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    if (!drag.moved) canvas.setPointerCapture(e.pointerId);
    drag = { x: e.clientX, y: e.clientY, moved: true };
    state.xf.tx += dx; state.xf.ty += dy;
    renderSoon();
  });
  canvas.addEventListener("pointerup", () => { setTimeout(() => { drag = null; }); });
  canvas.addEventListener("click", (e) => {
    if (drag && drag.moved) return;
    const box = e.target.getBoundingClientRect();
    const cell = cellAt(e.clientX - box.left, e.clientY - box.top);
    if (cell) showDetails(cell.cell_id);
  });
  canvas.addEventListener("wheel", (e) => {
    if (!state.xf) return;
    e.preventDefault();
    const box = canvas.getBoundingClientRect(), mx = e.clientX - box.left, my = e.clientY - box.top;
    const xf = state.xf, s = Math.min(Math.max(xf.s * Math.exp(-e.deltaY * 0.0015), xf.s0), xf.s0 * 64);
    Object.assign(xf, { tx: mx - (mx - xf.tx) * (s / xf.s), ty: my - (my - xf.ty) * (s / xf.s), s });
    renderSoon();
  }, { passive: false });
  canvas.addEventListener("dblclick", () => { state.fit = true; renderSoon(); }); // back to the whole city
  window.addEventListener("resize", renderSoon);
}

// The live map: POST /risk_map in the compact form, with the form's conditions. Drawing it ends a replay.
function draw() {
  leaveReplay();
  return fetchMap(async () => {
    const map = await api("POST", "/risk_map", { ...requestBody(), format: "compact" });
    const grid = map.metadata && map.metadata.grid;
    if (grid && (!state.grid || grid.version !== state.grid.version)) await loadGrid(true); // redeployed on a new grid
    if (grid && grid.version !== state.grid.version) throw new Error(`the map is on grid ${grid.id} ${grid.version}, `
      + `GET /grid gives ${state.grid.version}; reload the page`);
    return map;
  }, null);
}

// Fetch a map (live or stored), draw it when it is still the newest asked for; keep the last good one on error.
async function fetchMap(get, replayStep) {
  const seq = ++state.mapSeq, canvas = $("map");
  canvas.dataset.cells = "0"; // tests (and people) can tell a finished draw from one in flight
  $("status").textContent = "loading…";
  try {
    const map = await get();
    if (!state.grid) await loadGrid();
    if (seq !== state.mapSeq) return; // a newer draw started; its answer wins
    clearError();
    showMap(map, replayStep);
  } catch (e) {
    if (seq !== state.mapSeq) return;
    showError(e.message);
    $("status").textContent = "request failed; the map shows the last good answer";
    if (state.view && state.view.cells) canvas.dataset.cells = String(state.view.cells);
  }
}

function showMap(map, replayStep) {
  const canvas = $("map"), view = mapView(map), m = view.meta, domain = m.domain || $("domain").value;
  const started = performance.now();
  state.replay = replayStep || null;
  paintRaster(view);
  state.view = view;
  canvas.dataset.domain = domain;
  if (replayStep) canvas.dataset.replay = String(replayStep.cycle); else delete canvas.dataset.replay;
  const sel = state.selected !== null ? state.grid.byId.get(state.selected) : undefined;
  if (sel === undefined || view.level[sel] === -2) state.selected = null;
  render();
  canvas.dataset.drawMs = (performance.now() - started).toFixed(1); // raster + first frame, for the benchmark
  showSummary(view);
  const spec = state.catalogue.domains[domain];
  $("model-version").textContent = m.model_version || "?";
  $("map-at").textContent = (replayStep?.at || m.at || "?").replace("T", " "); // a replay: the cycle's data time
  $("map-title").textContent = `${spec.title}${m.unit ? ` [${m.unit}]` : ""}`;
  $("meaning").textContent = m.value_meaning ? `Value: ${m.value_meaning}` : ""; // can be a paragraph, so not in the title
  $("status").textContent = replayStep
    ? `replay: stored map of cycle ${replayStep.cycle} (data time ${replayStep.at.replace("T", " ")})`
    : `${view.cells} cells, drawn ${new Date().toLocaleTimeString()}`;
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
  const i = state.grid.byId.get(cellId), p = i === undefined ? null : state.view.prop(i);
  if (!p) return;
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

function showSummary(view) {
  // One pass over the cells: counts per district and level, and each district's three worst cells.
  const g = state.grid, by = g.districts.map(() => ({ n: 0, counts: [0, 0, 0, 0, 0], worst: [] }));
  for (let i = 0; i < g.n; i++) {
    const lv = view.level[i];
    if (lv === -2) continue;
    const d = by[g.district[i]], score = view.score[i];
    d.n++; d.counts[lv >= 0 ? lv : LEVELS.length]++;
    if (score !== null && score !== undefined && (d.worst.length < 3 || score > d.worst[2].score)) {
      d.worst.push({ i, score });
      d.worst.sort((a, b) => b.score - a.score);
      d.worst.length = Math.min(d.worst.length, 3);
    }
  }
  const head = el("tr", {}, el("th", { textContent: "District" }),
    ...[...LEVELS, NO_DATA].map((l) => el("th", {}, levelChip(l.ko, l.en))), el("th", { textContent: "Worst cells (score)" }));
  const names = g.districts.map((name, k) => [name, by[k]]).filter(([, d]) => d.n)
    .sort(([a], [b]) => a.localeCompare(b, "ko"));
  const body = names.map(([name, d]) => el("tr", {}, el("th", { textContent: `${name} (${d.n})` }),
    ...d.counts.map((k) => el("td", { className: "num", textContent: String(k) })),
    el("td", {}, ...d.worst.map(({ i }) => {
      const c = view.prop(i);
      return el("button", { type: "button", className: "cell-link",
        textContent: `${c.cell_id.split("-").slice(-2).join("-")} ${fmt(c.score, 1)}`, title: c.cell_id, value: String(c.score),
        style: `border-color:${levelOf(c.level).color}`, onclick: () => showDetails(c.cell_id) });
    }))));
  $("summary").replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
}

// --- traffic hotspots: POST /hotspots, listed and outlined on the traffic map ------------------------
function hotspotDefaults() {
  const spec = state.catalogue.domains.traffic;
  if (!spec) return;
  $("hotspots-view").hidden = false;
  // next year, forecast from the record up to the newest data: the question a safety planner asks
  const from = new Date(`${(spec.default_at || new Date().toISOString()).slice(0, 10)}T00:00:00Z`);
  from.setUTCDate(from.getUTCDate() + 1);
  const to = new Date(from);
  to.setUTCFullYear(to.getUTCFullYear() + 1);
  $("hs-from").value = from.toISOString().slice(0, 10);
  $("hs-to").value = to.toISOString().slice(0, 10);
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
    const observed = (c, key, digits) => (c.observed && c.observed[key] !== null ? fmt(c.observed[key], digits) : "–");
    const dominant = (c) => (c.dominant && c.dominant.accident_type ? c.dominant.accident_type.value : "–");
    const head = el("tr", {}, ...["#", "Cell", "District", "동", "Expected accidents", "Expected ECLO",
      "Tiers F/S/S", "Observed accidents", "Observed ECLO", "Dominant type"].map((t) => el("th", { textContent: t })));
    const rows = answer.cells.map((c) => el("tr", {}, el("td", { className: "num", textContent: String(c.rank) }),
      el("td", {}, el("button", { type: "button", className: "cell-link", textContent: c.cell_id, title: "show on the map",
        onclick: () => { if ($("domain").value !== "traffic") { $("domain").value = "traffic"; domainChanged(); }
          showDetails(c.cell_id); } })),
      el("td", { textContent: c.district }), el("td", { textContent: c.dong || "" }),
      el("td", { className: "num", textContent: fmt(c.expected.accidents, 2) }),
      el("td", { className: "num", textContent: fmt(c.expected.eclo, 1) }), el("td", { textContent: tier(c.tiers.expected) }),
      el("td", { className: "num", textContent: observed(c, "accidents", 0) }),
      el("td", { className: "num", textContent: observed(c, "eclo", 1) }), el("td", { textContent: dominant(c) })));
    $("hotspots").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
    $("hs-status").textContent = `${answer.cells.length} cells, forecast as of ${answer.as_of} by ${answer.method}`;
    $("hs-status").title = answer.method_reason;
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
    // The grid comes once per page (and from the browser's cache after the first visit): maps only name its cells.
    const [catalogue, models] = await Promise.all([api("GET", "/domains"), api("GET", "/models"), loadGrid()]);
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
  wireMap();
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
    const i = state.grid && state.view ? state.grid.byId.get(cellId) : undefined;
    if (i === undefined || state.view.level[i] === -2) return null;
    const r = cellRect(i);
    return { x: (r[0] + r[2]) / 2, y: (r[1] + r[3]) / 2 };
  },
  showFreshness,
};

init();
