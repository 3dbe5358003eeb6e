// sketchshop mobile web client: draw or snap a garment, then buy it.
// Plain ES module, no build step. Talks to the same-origin API under /v1 (see /docs).
//
// Drawing: Pointer Events (touch, pen and mouse alike) on one visible canvas. Two offscreen
// layers are kept: black strokes (uploaded as the sketch: PNG, white background) and colour
// hints (uploaded as a PNG layer: coloured strokes on transparent). Every stroke is kept as a
// vector so Undo can replay the history; the eraser erases both layers.
//
// Filter chips, per garment found (category, colour, each attribute):
//   ON  = this garment's results must agree with the predicted value.
//   OFF = that value is not required (the ranking still prefers agreeing products).
// Category and colour are enforced by the server: tapping one of them re-runs the search with
// `category` / `colour` sent only while their chip is ON. The API has no attribute filter, so
// attribute chips are enforced here: a match is kept only when its `matched` list names the
// attribute. The first answer arrives before the predictions are known, so it is requested
// unfiltered with a large top_k and filtered here by the same rule; a garment for which fewer
// than a screenful of it agrees is asked again with its filters (agreeing products may lie
// further down the catalogue's ranking).
// Start state: the category chip is ON, the colour chip is ON when the model is fairly sure
// (colour_p >= 0.5; hints make it sure), attribute chips start OFF (the ranking already
// prefers agreeing products; tapping one ON narrows to exact agreement).

// The 13 vocabulary colours with their RGB from sketchshop/vocab.py COLOUR_RGB
// (tests/test_webclient.py checks that this table and the vocabulary agree).
export const PALETTE = {
  black: [20, 20, 20], white: [245, 245, 245], gray: [128, 128, 128], red: [200, 30, 35],
  pink: [240, 150, 180], orange: [240, 130, 30], yellow: [245, 215, 50], green: [40, 140, 60],
  blue: [40, 100, 200], navy: [25, 35, 80], purple: [110, 50, 150], brown: [110, 70, 40],
  beige: [215, 195, 160],
};

const TOP_K = 50;          // asked from the server; plenty left after filtering by chips
const SHOWN = 12;          // product cards shown per garment
const COLOUR_SURE = 0.5;   // the colour chip starts ON from this colour_p up
const PHOTO_MAX_SIDE = 1280;
const WIDTH = { pen: 4, eraser: 26, hint: 12 };
const BOX_COLOURS = ["#e11d48", "#2563eb", "#16a34a", "#d97706", "#7c3aed", "#0891b2"];

const $ = (id) => document.getElementById(id);
const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;

// ------------------------------------------------------------------ API
const apiKey = (() => {
  const k = new URLSearchParams(location.search).get("key");
  if (k) localStorage.setItem("sketchshop.apiKey", k);
  return localStorage.getItem("sketchshop.apiKey");
})();

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function post(path, form) {
  let resp;
  try {
    resp = await fetch(path, { method: "POST", body: form, headers: apiKey ? { "X-API-Key": apiKey } : {} });
  } catch (e) {
    throw new ApiError(0, "unreachable", "Cannot reach the server. Check your connection and try again.");
  }
  if (!resp.ok) {
    let code = "http_error", message = `${resp.status} ${resp.statusText}`;
    try { ({ code, message } = (await resp.json()).error); } catch (e) { /* not our JSON: keep the status */ }
    throw new ApiError(resp.status, code, message);
  }
  return resp;
}

function explain(err) {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err.message || err}`;
  switch (err.status) {
    case 0: return err.message;
    case 413: return "That image is too large to upload. Try a smaller photo.";
    case 415: return "That file is not a picture we can read. Use a JPEG, PNG, WebP or HEIC photo.";
    case 429: return "Too many searches in a short time. Wait a moment and try again.";
    case 503: return `The search service is not ready yet (${err.message}). Try again in a minute.`;
  }
  if (err.status >= 500) return "The server failed on this request. Try again; if it keeps failing, tell us.";
  return `The server could not use this request: ${err.message}`;
}

// ------------------------------------------------------------------ messages and busy state
function showMessage(text, kind = "error") {
  $("message-text").textContent = text;
  $("message").dataset.kind = kind;
  $("message").hidden = false;
}
function hideMessage() { $("message").hidden = true; }

let busy = false;
function setBusy(on, text = "") {
  busy = on;
  $("results").setAttribute("aria-busy", String(on));
  $("status").textContent = text;
  document.body.classList.toggle("busy", on);
  updateButtons();
}

// ------------------------------------------------------------------ drawing
const canvas = $("sketch");
const W = canvas.width, H = canvas.height;
const ctx = canvas.getContext("2d");
const layers = { strokes: offscreen(), hints: offscreen() };
const history = [];           // finished strokes: {tool, colour, width, points: [[x, y], ...]}
let current = null;           // the stroke being drawn
let tool = "pen";
let hintColour = null;

function offscreen() {
  const c = document.createElement("canvas");
  c.width = W; c.height = H;
  c.getContext("2d", { willReadFrequently: true });  // `refreshPainted` reads the layers back
  return c;
}

function trace(g, stroke, style, erase = false) {
  g.save();
  g.globalCompositeOperation = erase ? "destination-out" : "source-over";
  g.strokeStyle = g.fillStyle = style;
  g.lineWidth = stroke.width;
  g.lineCap = g.lineJoin = "round";
  const p = stroke.points;
  g.beginPath();
  if (p.length === 1) {            // a tap: a dot
    g.arc(p[0][0], p[0][1], stroke.width / 2, 0, 2 * Math.PI);
    g.fill();
  } else {
    g.moveTo(p[0][0], p[0][1]);
    for (let i = 1; i < p.length; i++) g.lineTo(p[i][0], p[i][1]);
    g.stroke();
  }
  g.restore();
}

const strokeStyle = (s) => (s.tool === "hint" ? rgb(PALETTE[s.colour]) : "#000");

function paint(stroke) {
  const targets = stroke.tool === "pen" ? [layers.strokes] : stroke.tool === "hint" ? [layers.hints]
    : [layers.strokes, layers.hints];
  for (const layer of targets) trace(layer.getContext("2d"), stroke, strokeStyle(stroke), stroke.tool === "eraser");
}

function render() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, W, H);
  ctx.drawImage(layers.strokes, 0, 0);
  ctx.drawImage(layers.hints, 0, 0);
  // The live stroke is only drawn on screen (white for the eraser, over a white background);
  // it reaches the layers when the finger lifts.
  if (current) trace(ctx, current, current.tool === "eraser" ? "#fff" : strokeStyle(current));
}

function replay() {
  for (const layer of Object.values(layers)) layer.getContext("2d").clearRect(0, 0, W, H);
  history.forEach(paint);
  refreshPainted();
  render();
}

function canvasPoint(e) {
  const r = canvas.getBoundingClientRect();
  return [Math.round((e.clientX - r.left) * W / r.width * 10) / 10,
          Math.round((e.clientY - r.top) * H / r.height * 10) / 10];
}

canvas.addEventListener("pointerdown", (e) => {
  if (busy || (e.pointerType === "mouse" && e.button !== 0)) return;
  e.preventDefault();
  canvas.setPointerCapture(e.pointerId);
  current = { tool, colour: hintColour, width: WIDTH[tool], points: [canvasPoint(e)], pointerId: e.pointerId };
  render();
});
canvas.addEventListener("pointermove", (e) => {
  if (!current || e.pointerId !== current.pointerId) return;
  e.preventDefault();
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of (events.length ? events : [e])) current.points.push(canvasPoint(ev));
  render();
});
function endStroke(e) {
  if (!current || e.pointerId !== current.pointerId) return;
  const s = current;
  current = null;
  delete s.pointerId;
  history.push(s);
  paint(s);
  refreshPainted();
  render();
  $("preview").hidden = true;
  updateButtons();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

function selectTool(name, colour = null) {
  tool = name;
  hintColour = colour;
  $("tool-pen").setAttribute("aria-pressed", String(name === "pen"));
  $("tool-eraser").setAttribute("aria-pressed", String(name === "eraser"));
  for (const b of $("palette").children) b.setAttribute("aria-pressed", String(name === "hint" && b.dataset.colour === colour));
}

function buildPalette() {
  for (const [name, c] of Object.entries(PALETTE)) {
    const b = document.createElement("button");
    b.className = "swatch";
    b.dataset.colour = name;
    b.style.background = rgb(c);
    b.setAttribute("aria-label", `Hint colour ${name}`);
    b.setAttribute("aria-pressed", "false");
    b.title = name;
    b.addEventListener("click", () => selectTool("hint", name));
    $("palette").append(b);
  }
}

// Whether each layer holds paint (strokes erased away leave none): refreshed when the history changes.
const painted = { strokes: false, hints: false };
function refreshPainted() {
  for (const name of Object.keys(painted)) {
    const d = layers[name].getContext("2d").getImageData(0, 0, W, H).data;
    let any = false;
    for (let i = 3; i < d.length && !any; i += 4) any = d[i] > 32;
    painted[name] = any;
  }
}
const hasStrokes = () => painted.strokes;
const hasHints = () => painted.hints;

function updateButtons() {
  $("undo").disabled = busy || !history.length;
  $("clear").disabled = busy || !history.length;
  $("search-sketch").disabled = busy || !hasStrokes();
  $("colorize").disabled = busy || !hasStrokes() || !hasHints();
  for (const id of ["photo-camera", "photo-gallery"]) $(id).disabled = busy;
}

function toBlob(c, type = "image/png", quality) {
  return new Promise((ok, fail) => c.toBlob((b) => (b ? ok(b) : fail(new Error("could not encode the image"))), type, quality));
}

async function sketchForm() {
  const flat = offscreen();
  const g = flat.getContext("2d");
  g.fillStyle = "#fff"; g.fillRect(0, 0, W, H);
  g.drawImage(layers.strokes, 0, 0);
  const form = new FormData();
  form.append("image", await toBlob(flat), "sketch.png");
  if (hasHints()) form.append("hints", await toBlob(layers.hints), "hints.png");
  return form;
}

// ------------------------------------------------------------------ searching
let query = null;   // {form fields builder, view image, items: [{data, chips, matches}]}

async function runSearch(makeForm, extra = {}) {
  const form = await makeForm();
  form.append("top_k", String(TOP_K));
  for (const [k, v] of Object.entries(extra)) if (v) form.append(k, v);
  const resp = await post("/v1/search", form);
  return resp.json();
}

async function searchSketch() {
  if (!hasStrokes()) return showMessage("Draw the garment first: use the pen on the canvas.");
  hideMessage();
  setBusy(true, "Searching…");
  const snapshotForm = await sketchForm();   // freeze this drawing for the chips' re-runs
  const makeForm = async () => cloneForm(snapshotForm, { kind: "sketch" });
  try {
    const res = await runSearch(makeForm);
    await showResults(res, makeForm, null);
  } catch (e) {
    clearResults();
    showMessage(explain(e));
    $("status").textContent = "";
  } finally {
    setBusy(false, $("status").textContent);
  }
}

function cloneForm(form, fields) {
  const f = new FormData();
  for (const [k, v] of form.entries()) f.append(k, v);
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  return f;
}

async function colorize() {
  if (!hasHints()) return showMessage("Pick a colour from the palette and dab it on the drawing first.");
  hideMessage();
  setBusy(true, "Colourising…");
  try {
    const form = await sketchForm();
    const cat = query && query.kind === "sketch" && query.items[0] ? query.items[0].data.category : null;
    if (cat) form.append("category", cat);
    const blob = await (await post("/v1/colorize", form)).blob();
    const img = $("preview");
    if (img.src) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(blob);
    img.hidden = false;
    setBusy(false, "Preview ready: tap it to go back to your drawing.");
  } catch (e) {
    showMessage(explain(e));
    setBusy(false);
  }
}

async function prepareUpload(file) {
  // Downscale big phone photos before upload (EXIF orientation applied by the browser).
  // Formats the browser cannot decode (HEIC in most) go up as they are; the server reads them.
  try {
    const bmp = await createImageBitmap(file, { imageOrientation: "from-image" });
    const scale = Math.min(1, PHOTO_MAX_SIDE / Math.max(bmp.width, bmp.height));
    const c = document.createElement("canvas");
    c.width = Math.round(bmp.width * scale); c.height = Math.round(bmp.height * scale);
    c.getContext("2d").drawImage(bmp, 0, 0, c.width, c.height);
    bmp.close();
    return { blob: await toBlob(c, "image/jpeg", 0.9), name: "photo.jpg", view: c };
  } catch (e) {
    return { blob: file, name: file.name || "photo", view: null };
  }
}

async function searchPhoto(input) {
  const file = input.files && input.files[0];
  input.value = "";
  if (!file) return;
  hideMessage();
  if (file.type && !file.type.startsWith("image/")) return showMessage("That file is not a picture. Choose a photo.");
  setBusy(true, "Searching…");
  try {
    const up = await prepareUpload(file);
    const drawing = $("photo-drawing").checked;
    const makeForm = async () => {
      const f = new FormData();
      f.append("image", up.blob, up.name);
      f.append("kind", drawing ? "sketch" : "photo");  // a photo of a drawing on paper reads as a sketch
      return f;
    };
    const res = await runSearch(makeForm);
    await showResults(res, makeForm, up.view);
  } catch (e) {
    clearResults();
    showMessage(explain(e));
    $("status").textContent = "";
  } finally {
    setBusy(false, $("status").textContent);
  }
}

// ------------------------------------------------------------------ results
function clearResults() {
  // a search that failed leaves no earlier picture's garments under its message
  query = null;
  $("items").replaceChildren();
  $("query-view").hidden = true;
}

async function showResults(res, makeForm, view) {
  const items = res.items.map((d) => ({ data: d, matches: d.matches, chips: chipsFor(d) }));
  for (const [i, it] of items.entries()) {
    const filters = serverFilters(it);
    if (Object.keys(filters).length && it.matches.filter((m) => agrees(m, it.chips)).length < SHOWN) {
      const same = sameItem((await runSearch(makeForm, filters)).items, it.data, i);
      it.matches = same ? same.matches : [];
    }
  }
  query = { kind: res.kind, makeForm, view, items };
  drawQueryView();
  $("items").replaceChildren(...query.items.map((it, i) => renderItem(it, i)));
  const n = query.items.length;
  $("status").textContent = n ? `${n} garment${n > 1 ? "s" : ""} found (${Math.round(res.timing_ms.total || 0)} ms).`
    : "No garment found in this picture. Try a closer photo with one garment in view.";
  if (n) $("results").scrollIntoView({ behavior: "smooth", block: "start" });
}

function chipsFor(d) {
  const chips = [{ key: "category", label: d.category, value: d.category, on: true }];
  if (d.colour) chips.push({ key: "colour", label: d.colour, value: d.colour, on: d.colour_p >= COLOUR_SURE });
  for (const [name, a] of Object.entries(d.attributes || {})) {
    chips.push({ key: name, label: `${name}: ${a.value}`, value: a.value, on: false, attribute: true });
  }
  return chips;
}

function drawQueryView() {
  const wrap = $("query-view");
  const c = $("photo-view");
  const src = query.view;
  if (!src) { wrap.hidden = true; return; }
  c.width = src.width; c.height = src.height;
  const g = c.getContext("2d");
  g.drawImage(src, 0, 0);
  const lw = Math.max(2, Math.round(Math.max(c.width, c.height) / 250));
  query.items.forEach((it, i) => {
    if (!it.data.box) return;
    const b = it.data.box.map(Math.round);   // whole pixels: crisp lines
    const colour = BOX_COLOURS[i % BOX_COLOURS.length];
    g.strokeStyle = g.fillStyle = colour;
    g.lineWidth = lw;
    g.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
    const label = `${i + 1} ${it.data.category}`;
    g.font = `bold ${lw * 7}px system-ui, sans-serif`;
    const tw = g.measureText(label).width + lw * 3;
    g.fillRect(b[0], Math.max(0, b[1] - lw * 9), tw, lw * 9);
    g.fillStyle = "#fff";
    g.fillText(label, b[0] + lw * 1.5, Math.max(lw * 7, b[1] - lw * 2));
  });
  wrap.hidden = false;
}

function agrees(m, chips) {
  return chips.every((c) => !c.on
    || (c.key === "category" ? m.category === c.value
      : c.key === "colour" ? m.colour === c.value
        : (m.matched || []).includes(c.key)));
}

function renderItem(it, i) {
  const node = $("item-template").content.firstElementChild.cloneNode(true);
  node.dataset.index = String(i);
  const badge = node.querySelector(".badge");
  badge.textContent = String(i + 1);
  badge.style.background = BOX_COLOURS[i % BOX_COLOURS.length];
  const d = it.data;
  node.querySelector(".item-name").textContent =
    `${d.category} (${Math.round(d.category_p * 100)}%)${d.colour ? `, ${d.colour}` : ""}`;
  const chipBox = node.querySelector(".chips");
  for (const chip of it.chips) {
    const b = document.createElement("button");
    b.className = "chip";
    b.dataset.key = chip.key;
    b.setAttribute("aria-pressed", String(chip.on));
    b.setAttribute("aria-label", `Filter ${chip.label}`);
    b.title = chip.on ? "Required: tap to widen" : "Not required: tap to require";
    if (chip.key === "colour") {
      const dot = document.createElement("span");
      dot.className = "dot";
      dot.style.background = PALETTE[chip.value] ? rgb(PALETTE[chip.value]) : "transparent";
      b.append(dot);
    }
    b.append(chip.label);
    b.addEventListener("click", () => toggleChip(i, chip.key));
    chipBox.append(b);
  }
  const shown = it.matches.filter((m) => agrees(m, it.chips)).slice(0, SHOWN);
  const note = node.querySelector(".item-note");
  if (!shown.length) {
    note.textContent = it.matches.length ? "No product agrees with every chip. Tap a chip to turn it off and widen the search."
      : "No product in the catalogue fits these filters. Tap a chip to turn it off.";
    note.hidden = false;
  }
  node.querySelector(".cards").replaceChildren(...shown.map(renderCard));
  return node;
}

function renderCard(m) {
  const node = $("card-template").content.firstElementChild.cloneNode(true);
  const img = node.querySelector(".card-image");
  if (m.image_url) img.src = m.image_url; else img.remove();
  img.alt = m.title || "product";
  node.querySelector(".card-title").textContent = [m.brand, m.title].filter(Boolean).join(" · ") || `Product ${m.product_id}`;
  node.querySelector(".card-price").textContent = formatPrice(m.price, m.currency);
  node.querySelector(".card-shop").textContent = m.shop || "";
  const buy = node.querySelector(".buy");
  if (m.url) {
    buy.href = m.url;
    buy.setAttribute("aria-label", `Buy ${m.title || "product"}${m.shop ? ` at ${m.shop}` : ""}`);
  } else buy.remove();
  return node;
}

function formatPrice(price, currency) {
  if (price == null) return "";
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "EUR" }).format(price);
  } catch (e) {
    return `${price.toFixed(2)} ${currency || ""}`.trim();
  }
}

async function toggleChip(i, key) {
  if (busy || !query) return;
  const it = query.items[i];
  const chip = it.chips.find((c) => c.key === key);
  chip.on = !chip.on;
  if (chip.attribute) {  // attributes are filtered here: no request needed
    rerender(i);
    return;
  }
  const filters = serverFilters(it);
  hideMessage();
  setBusy(true, chip.on ? `Only ${chip.label}…` : `Widening: any ${key}…`);
  try {
    const res = await runSearch(query.makeForm, filters);
    const same = sameItem(res.items, it.data, i);
    it.matches = same ? same.matches : [];
    rerender(i);
    setBusy(false, "");
  } catch (e) {
    chip.on = !chip.on;   // the request failed: the chip keeps its old state
    rerender(i);
    showMessage(explain(e));
    setBusy(false);
  }
}

// The filters the server applies for a garment: its category and colour chips that are on.
function serverFilters(it) {
  const filters = {};
  for (const c of it.chips) if (c.on && !c.attribute) filters[c.key] = c.value;
  return filters;
}

// The garment in a re-run answer that is the one the chips belong to: same image, same models,
// so the same box (the best overlap); a sketch has exactly one item.
function sameItem(items, d, i) {
  if (!d.box) return items[0];
  let best = null, bestIou = 0.5;
  for (const x of items) {
    const v = x.box ? iou(x.box, d.box) : 0;
    if (v > bestIou) { best = x; bestIou = v; }
  }
  return best || items[i];
}

function iou(a, b) {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

function rerender(i) {
  const old = $("items").querySelector(`.item[data-index="${i}"]`);
  old.replaceWith(renderItem(query.items[i], i));
}

// ------------------------------------------------------------------ wiring
function selectMode(mode) {
  for (const m of ["draw", "photo"]) {
    $(`tab-${m}`).setAttribute("aria-selected", String(m === mode));
    $(`panel-${m}`).hidden = m !== mode;
  }
}

function init() {
  buildPalette();
  render();
  $("tab-draw").addEventListener("click", () => selectMode("draw"));
  $("tab-photo").addEventListener("click", () => selectMode("photo"));
  $("tool-pen").addEventListener("click", () => selectTool("pen"));
  $("tool-eraser").addEventListener("click", () => selectTool("eraser"));
  $("undo").addEventListener("click", () => { history.pop(); replay(); $("preview").hidden = true; updateButtons(); });
  $("clear").addEventListener("click", () => { history.length = 0; replay(); $("preview").hidden = true; updateButtons(); });
  $("preview").addEventListener("click", () => { $("preview").hidden = true; });
  $("colorize").addEventListener("click", colorize);
  $("search-sketch").addEventListener("click", searchSketch);
  for (const id of ["photo-camera", "photo-gallery"]) $(id).addEventListener("change", (e) => searchPhoto(e.target));
  $("message-close").addEventListener("click", hideMessage);
  window.addEventListener("unhandledrejection", (e) => { showMessage(explain(e.reason)); setBusy(false); });
  updateButtons();
  document.body.dataset.ready = "true";   // for tests: the module ran
}

init();

// Exposed for tests and debugging: the current drawing as the server would receive it.
window.sketchshop = { history, layers, get query() { return query; } };
