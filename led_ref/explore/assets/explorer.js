"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const C = DATA.colors;

// ---------------------------------------------------------------- the layout rules (as led_ref.layout)
function paddedLength(seqLen, windows) {          // the encoder pads to a multiple of the largest window
  const m = Math.max(...windows); return Math.ceil(seqLen / m) * m;
}
function tokenKinds(seqLen, padded, globals, pad) {  // 0 padding, 1 local, 2 global
  const kinds = new Int8Array(padded);
  for (let p = 0; p < seqLen - pad; p++) kinds[p] = 1;
  for (const g of globals) if (kinds[g] === 1) kinds[g] = 2;  // a global flag on padding stays padding
  return kinds;
}
function globalSlots(kinds) {                       // the global tokens in position order
  const slots = []; kinds.forEach((k, p) => { if (k === 2) slots.push(p); }); return slots;
}
function attends(kinds, w, i, j) {                  // dense_mask[i, j]
  if (kinds[i] === 0 || kinds[j] === 0) return false;
  return kinds[i] === 2 || kinds[j] === 2 || Math.abs(i - j) <= w / 2;
}
function compactKey(kinds, slots, x, w, i, c) {     // compact_columns: key of column c of row i, -1 if none
  if (c < x) return c < slots.length ? slots[c] : -1;
  const j = i - w / 2 + (c - x);
  return j < 0 || j >= kinds.length || kinds[j] === 2 ? -1 : j;
}
function compactColumn(kinds, slots, x, w, i, j) {  // inverse: column of key j in row i, -1 if none
  if (kinds[j] === 2) return slots.indexOf(j);
  const d = j - i + w / 2; return d >= 0 && d <= w ? x + d : -1;
}
function reachPerLayer(kinds, seqLen, windows, token) {  // as explorer.reach_per_layer
  let reached = new Uint8Array(seqLen); reached[token] = 1; const out = [];
  for (const w of windows) {
    const h = w / 2, prefix = new Int32Array(seqLen + 1); let any = 0, viaGlobal = 0;
    for (let p = 0; p < seqLen; p++) {
      const src = reached[p] && kinds[p] !== 0 ? 1 : 0;
      prefix[p + 1] = prefix[p] + src; any |= src; if (src && kinds[p] === 2) viaGlobal = 1;
    }
    const next = Uint8Array.from(reached);
    for (let q = 0; q < seqLen; q++) {
      const near = prefix[Math.min(q + h + 1, seqLen)] - prefix[Math.max(q - h, 0)] > 0;
      if ((kinds[q] === 1 && (near || viaGlobal)) || (kinds[q] === 2 && any)) next[q] = 1;
    }
    reached = next; out.push(Array.from(reached));
  }
  return out;
}
function blockStats(kinds, seqLen, w, B) {          // as explorer.block_stats, per row from prefix sums
  const nb = Math.ceil(seqLen / B), h = w / 2, L = new Int32Array(seqLen + 1), G = new Int32Array(seqLen + 1);
  for (let p = 0; p < seqLen; p++) { L[p + 1] = L[p] + (kinds[p] === 1); G[p + 1] = G[p] + (kinds[p] === 2); }
  const z = () => new Float64Array(nb * nb);
  const s = { nb, B, window: z(), globalKey: z(), globalRow: z(), padRows: z(), cells: z() };
  for (let i = 0; i < seqLen; i++) {
    const rb = Math.floor(i / B);
    for (let cb = 0; cb < nb; cb++) {
      const j0 = cb * B, j1 = Math.min(seqLen, j0 + B), k = rb * nb + cb;
      s.cells[k] += j1 - j0;
      if (kinds[i] === 1) {
        const lo = Math.max(j0, i - h), hi = Math.max(lo, Math.min(j1, i + h + 1));
        s.window[k] += L[hi] - L[lo]; s.globalKey[k] += G[j1] - G[j0];
      } else if (kinds[i] === 2) s.globalRow[k] += L[j1] - L[j0] + G[j1] - G[j0];
      else s.padRows[k] += j1 - j0;
    }
  }
  return s;
}
function blockKind(s, k) {                          // as explorer.block_kinds
  const att = s.window[k] + s.globalKey[k] + s.globalRow[k];
  if (s.padRows[k] === s.cells[k]) return "pad";
  if (att === s.cells[k]) return "full";
  if (s.window[k] > 0) return "window";
  if (s.globalRow[k] > 0) return "globalRow";
  if (s.globalKey[k] > 0) return "globalKey";
  return "none";
}

// ---------------------------------------------------------------- state
const S = JSON.parse(JSON.stringify(DATA.state));
S.head = -1;              // -1: mean over heads (model pages)
const VIEW = 128;         // token-level views show at most VIEW rows / keys
const $ = (id) => document.getElementById(id);
let M = null;             // the derived layout of the shown batch row
let selection = null;

function derive() {
  const padded = paddedLength(S.seqLen, S.windows);
  const kinds = S.rows.map((r) => tokenKinds(S.seqLen, padded, r.globals, r.pad));
  const slots = kinds.map(globalSlots);
  const x = Math.max(0, ...slots.map((s) => s.length));
  const w = S.windows[S.layer];
  const n = Math.min(VIEW, S.seqLen);
  S.r0 = Math.max(0, Math.min(S.r0 || 0, S.seqLen - n)); S.c0 = Math.max(0, Math.min(S.c0 || 0, S.seqLen - n));
  M = { padded, kinds: kinds[S.b], allKinds: kinds, slots: slots[S.b], allSlots: slots, x, w, n, width: x + w + 1 };
}

// probability of a cell (model pages), or null
function prob(panel, a, b) {
  if (S.mode !== "model") return null;
  const L = S.model.layers[S.layer]; if (!L) return null;
  const heads = L.attentions.length, pick = S.head >= 0 && heads > 1 ? [S.head] : [...Array(heads).keys()];
  const read = (arr, idx) => pick.reduce((t, h) => t + arr[h][idx], 0) / pick.length / 10000;
  if (panel === "compact") return read(L.attentions, a * M.width + b);
  if (panel === "global") return M.x ? read(L.global, a * M.x + b) : null;
  const k = M.kinds;                               // dense: through the compact arrays
  if (k[a] === 1) { const c = compactColumn(k, M.slots, M.x, M.w, a, b); return c >= 0 && attends(k, M.w, a, b) ? read(L.attentions, a * M.width + c) : 0; }
  if (k[a] === 2) return read(L.global, b * M.x + M.slots.indexOf(a));
  return 0;
}
function heat(p) {                                  // light yellow -> red -> near black
  const t = Math.max(0, Math.min(1, p / (S.vmax || 1)));
  const stops = [[252, 253, 191], [232, 83, 98], [60, 15, 90]];
  const u = t < 0.5 ? t * 2 : (t - 0.5) * 2, a = t < 0.5 ? stops[0] : stops[1], b = t < 0.5 ? stops[1] : stops[2];
  return `rgb(${a.map((v, q) => Math.round(v + (b[q] - v) * u)).join(",")})`;
}

// ---------------------------------------------------------------- cell meanings and colours
function denseCell(i, j) {
  const k = M.kinds;
  if (k[i] === 0) return "padRow";
  if (!attends(k, M.w, i, j)) return k[j] === 0 ? "padKey" : "outside";
  if (k[i] === 2) return "globalRow";
  if (k[j] === 2) return "globalKey";
  return i === j ? "self" : "window";
}
function compactCell(i, c) {
  const k = M.kinds;
  if (k[i] !== 1) return "padRow";                 // global and padding rows are all 0 here
  if (c < M.x) return c < M.slots.length ? "globalKey" : "unused";
  const j = i - M.w / 2 + (c - M.x);
  if (j < 0 || j >= M.padded) return "outside";
  if (k[j] === 0) return "padKey";
  if (k[j] === 2) return "globalInWindow";
  return j === i ? "self" : "window";
}
function globalCell(j, s) {
  if (s >= M.slots.length) return "unused";
  return M.kinds[j] === 0 ? "padKey" : "globalRow";
}
const WORDS = { window: "window key", self: "self", globalKey: "global key seen by a local row",
  globalRow: "global row (global projections)", outside: "not attended (outside the window)",
  padKey: "not attended (padding key)", padRow: "padding row (no probabilities)", unused: "unused global slot",
  globalInWindow: "window cell of a global key (its weight is in the global column)" };
function colour(panel, a, b, role) {
  const p = prob(panel, a, b);
  const attended = ["window", "self", "globalKey", "globalRow"].includes(role);
  return p !== null && attended ? heat(p) : C[role];
}

// ---------------------------------------------------------------- drawing
const geometry = {};
function setupCanvas(id, cols, rows, cw, ch) {
  const cv = $(id); cv.width = Math.max(1, cols * cw); cv.height = Math.max(1, rows * ch);
  geometry[id] = { cw, ch }; return cv.getContext("2d");
}
function outline(ctx, x, y, w, h, color) {
  ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.strokeRect(x + 1, y + 1, Math.max(1, w - 2), Math.max(1, h - 2));
}
function gridLines(ctx, cols, rows, cw, ch) {      // thin white lines between cells big enough to show them
  ctx.strokeStyle = "rgba(255,255,255,0.8)"; ctx.lineWidth = 1; ctx.beginPath();
  if (cw >= 8) for (let t = 1; t < cols; t++) { ctx.moveTo(t * cw + 0.5, 0); ctx.lineTo(t * cw + 0.5, rows * ch); }
  if (ch >= 8) for (let t = 1; t < rows; t++) { ctx.moveTo(0, t * ch + 0.5); ctx.lineTo(cols * cw, t * ch + 0.5); }
  ctx.stroke();
}
function cellSize(n) { return Math.max(5, Math.min(24, Math.floor(480 / n))); }

function drawDense() {
  const n = M.n, cs = cellSize(n), ctx = setupCanvas("dense", n, n, cs, cs);
  for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) {
    const i = S.r0 + a, j = S.c0 + b;
    ctx.fillStyle = colour("dense", i, j, denseCell(i, j)); ctx.fillRect(b * cs, a * cs, cs, cs);
  }
  gridLines(ctx, n, n, cs, cs);
  $("denseTitle").textContent = `dense (query i ${S.r0}..${S.r0 + n - 1}, key j ${S.c0}..${S.c0 + n - 1}), layer ${S.layer}, window ${M.w}`;
  const sel = selection && selection.dense;
  if (sel) outline(ctx, (sel[1] - S.c0) * cs, (sel[0] - S.r0) * cs, cs, cs, C.highlight);
}
function drawCompact() {
  const n = M.n, ch = cellSize(n), cw = M.width <= n ? ch : Math.max(3, Math.min(ch, Math.floor(2400 / M.width)));
  const ctx = setupCanvas("compact", M.width, n, cw, ch);
  for (let a = 0; a < n; a++) for (let c = 0; c < M.width; c++) {
    const i = S.r0 + a; ctx.fillStyle = colour("compact", i, c, compactCell(i, c)); ctx.fillRect(c * cw, a * ch, cw, ch);
  }
  gridLines(ctx, M.width, n, cw, ch);
  ctx.fillStyle = "#000"; ctx.fillRect(M.x * cw - 1, 0, 2, n * ch);  // globals | window
  $("compactTitle").textContent = `attentions[${S.b}, h, i, c]: rows i ${S.r0}..${S.r0 + n - 1}, columns c 0..${M.width - 1} (x = ${M.x}, w + 1 = ${M.w + 1})`;
  const sel = selection && selection.compact;
  if (sel) {
    outline(ctx, sel[1] * cw, (sel[0] - S.r0) * ch, cw, ch, C.highlight);
    const box = $("compactScroll"); const left = sel[1] * cw;
    if (left < box.scrollLeft || left > box.scrollLeft + box.clientWidth - cw) box.scrollLeft = Math.max(0, left - box.clientWidth / 2);
  }
}
function drawGlobal() {
  const n = M.n, cs = cellSize(n), ctx = setupCanvas("global", Math.max(M.x, 0), n, cs, cs);
  for (let a = 0; a < n; a++) for (let s = 0; s < M.x; s++) {
    const j = S.c0 + a; ctx.fillStyle = colour("global", j, s, globalCell(j, s)); ctx.fillRect(s * cs, a * cs, cs, cs);
  }
  gridLines(ctx, M.x, n, cs, cs);
  $("globalTitle").textContent = M.x ? `global_attentions[${S.b}, h, j, s]: rows = keys j ${S.c0}..${S.c0 + n - 1}, columns = slots s 0..${M.x - 1}` : "global_attentions: none (x = 0, no global token in the batch)";
  const sel = selection && selection.global;
  if (sel) outline(ctx, sel[1] * cs, (sel[0] - S.c0) * cs, cs, cs, C.highlight);
}
function drawOverview() {
  const panel = $("overviewPanel");
  if (S.seqLen <= VIEW) { panel.style.display = "none"; return; }
  panel.style.display = "";
  let B = 1; while (Math.ceil(S.seqLen / B) > 128) B *= 2;
  const s = blockStats(M.kinds, S.seqLen, M.w, B), nb = s.nb, px = Math.max(3, Math.floor(512 / nb));
  const ctx = setupCanvas("overview", nb, nb, px, px); geometry.overview.B = B;
  const fill = { full: C.self, window: C.window, globalRow: C.globalRow, globalKey: C.globalKey, none: C.outside, pad: C.padRow };
  for (let r = 0; r < nb; r++) for (let c = 0; c < nb; c++) { ctx.fillStyle = fill[blockKind(s, r * nb + c)]; ctx.fillRect(c * px, r * px, px, px); }
  const scale = px / B;                             // global rows / columns drawn at least 2 px wide
  for (const g of M.slots) {
    ctx.fillStyle = C.globalRow; ctx.fillRect(0, Math.floor(g * scale), nb * px, Math.max(2, scale));
    ctx.fillStyle = C.globalKey; ctx.fillRect(Math.floor(g * scale), 0, Math.max(2, scale), nb * px);
  }
  ctx.strokeStyle = C.viewport; ctx.lineWidth = 2;
  ctx.strokeRect(S.c0 * scale, S.r0 * scale, Math.max(4, M.n * scale), Math.max(4, M.n * scale));
  $("overviewTitle").textContent = `overview: ${nb} x ${nb} blocks of ${B} tokens (click to zoom; black box = the views)`;
}
function drawReach() {
  const token = Math.min(S.reach ?? 0, S.seqLen - 1);
  const layers = reachPerLayer(M.kinds, S.seqLen, S.windows, token);
  const per = Math.max(1, Math.ceil(S.seqLen / 1024)), cols = Math.ceil(S.seqLen / per), cw = Math.max(1, Math.floor(1024 / cols));
  const ctx = setupCanvas("reachCanvas", cols, layers.length + 1, cw, 14);
  const rows = [Array.from({ length: S.seqLen }, (_, p) => (p === token ? 1 : 0)), ...layers];
  rows.forEach((r, l) => { for (let c = 0; c < cols; c++) {
    let hit = 0; for (let p = c * per; p < Math.min(S.seqLen, (c + 1) * per); p++) hit |= r[p];
    ctx.fillStyle = hit ? (l === 0 ? C.self : C.window) : C.outside; ctx.fillRect(c * cw, l * 14, cw, 13);
  } });
  const counts = layers.map((r) => r.reduce((t, v) => t + v, 0));
  const labels = $("reachLabels"); labels.textContent = "";  // one label per band, level with it
  [`input: token ${token}`, ...S.windows.map((w, l) => `layer ${l} (window ${w}): ${counts[l]} reached`)].forEach((text, l) => {
    const div = document.createElement("div"); div.textContent = text; div.dataset.band = l; labels.appendChild(div);
  });
  $("reachTitle").textContent = `reach of token ${token}: positions whose output depends on it (top: input; then after layers ${S.windows.map((w, l) => `${l} (w ${w}): ${counts[l]}`).join(", ")} tokens)`;
  S.reachCounts = counts;
}
function drawBatch() {
  const t = $("batchTable"); t.textContent = "";
  const head = t.insertRow(); ["row b", "globals", "padding"].concat([...Array(M.x).keys()].map((s) => `slot ${s}`)).forEach((h) => { const th = document.createElement("th"); th.textContent = h; head.appendChild(th); });
  S.rows.forEach((r, b) => {
    const tr = t.insertRow(); tr.className = b === S.b ? "current" : "";
    tr.onclick = () => { S.b = b; selection = null; render(); };
    [b, r.globals.join(",") || "none", r.pad].forEach((v) => { tr.insertCell().textContent = v; });
    for (let s = 0; s < M.x; s++) { const td = tr.insertCell(); const sl = M.allSlots[b];
      if (s < sl.length) td.textContent = `key ${sl[s]}`; else { td.textContent = "unused: 0"; td.className = "unused"; } }
  });
}
function drawLegend() {
  const items = [["window", "window key"], ["self", "self"], ["globalKey", "global key (local row)"], ["globalRow", "global row"], ["outside", "not attended"], ["padKey", "padding key"], ["padRow", "padding row / all-0 row"], ["globalInWindow", "0: key is global (see its global column)"], ["unused", "unused global slot: 0"], ["highlight", "selected cell and its counterparts"]];
  $("legend").textContent = "";
  for (const [k, t] of items) { const sp = document.createElement("span"); const i = document.createElement("i"); i.style.background = C[k]; sp.appendChild(i); sp.appendChild(document.createTextNode(t)); $("legend").appendChild(sp); }
  if (S.mode === "model") { const sp = document.createElement("span"); sp.textContent = `attended cells coloured by probability (light 0 .. dark ${(S.vmax || 0).toFixed(3)})`; $("legend").appendChild(sp); }
}

// ---------------------------------------------------------------- selection: a cell and its counterparts
function tokenName(p) { return S.mode === "model" ? ` ${JSON.stringify(S.model.tokens[p])}` : ""; }
function select(panel, a, b) {
  const k = M.kinds; let i = null, j = null, c = null, s = null, text = "";
  if (panel === "dense") { i = a; j = b; }
  if (panel === "compact") { i = a; c = b; const key = compactKey(k, M.slots, M.x, M.w, i, c);
    if (k[i] === 1 && key >= 0 && k[key] !== 0) j = key;
    else text = `attentions[${S.b}, h, ${i}, ${c}] holds 0: ${WORDS[compactCell(i, c)] || compactCell(i, c)} (${k[i] === 1 ? "no key here" : "row " + i + " is not local"})`; }
  if (panel === "global") { j = a; s = b;
    if (s < M.slots.length) i = M.slots[s]; else text = `global_attentions[${S.b}, h, ${j}, ${s}] holds 0: slot ${s} is unused in batch row ${S.b}`; }
  const sel = { dense: null, compact: null, global: null };
  if (i !== null && j !== null) {
    sel.dense = [i, j];
    const role = denseCell(i, j); const p = prob("dense", i, j);
    text = `dense (query ${i}${tokenName(i)}, key ${j}${tokenName(j)}): ${WORDS[role]}` +
      (p !== null ? `, p = ${p.toFixed(4)}` : "");
    if (k[i] === 1 && attends(k, M.w, i, j)) { c = compactColumn(k, M.slots, M.x, M.w, i, j); sel.compact = [i, c];
      text += `  <->  attentions[${S.b}, h, ${i}, ${c}]` + (c < M.x ? ` (global slot ${c})` : ` (window slot ${c - M.x - M.w / 2 >= 0 ? "+" : ""}${c - M.x - M.w / 2})`); }
    else if (k[i] === 2) { s = M.slots.indexOf(i); sel.global = [j, s]; sel.compact = null;
      text += `  <->  global_attentions[${S.b}, h, ${j}, ${s}] (row ${i} is global slot ${s})`; }
    else text += "  (no stored probability: not attended)";
  } else { if (c !== null) sel.compact = [i, c]; if (s !== null) sel.global = [j, s]; }
  selection = sel; selection.text = text;
  if (sel.dense) {                                   // keep the selected cell in the token-level views
    if (sel.dense[0] < S.r0 || sel.dense[0] >= S.r0 + M.n) S.r0 = sel.dense[0] - (M.n >> 1);
    if (sel.dense[1] < S.c0 || sel.dense[1] >= S.c0 + M.n) S.c0 = sel.dense[1] - (M.n >> 1);
  }
  render(false);
}

function hit(id, ev) {
  const r = $(id).getBoundingClientRect(), g = geometry[id];
  return [Math.floor((ev.clientY - r.top) / g.ch), Math.floor((ev.clientX - r.left) / g.cw)];
}
$("dense").onclick = (ev) => { const [a, b] = hit("dense", ev); select("dense", S.r0 + a, S.c0 + b); };
$("compact").onclick = (ev) => { const [a, c] = hit("compact", ev); select("compact", S.r0 + a, c); };
$("global").onclick = (ev) => { const [a, s] = hit("global", ev); select("global", S.c0 + a, s); };
$("overview").onclick = (ev) => { const [r, c] = hit("overview", ev), B = geometry.overview.B;
  S.r0 = r * B + (B >> 1) - (M.n >> 1); S.c0 = c * B + (B >> 1) - (M.n >> 1); selection = null; render(); };

// where cell (a, b) of a panel is on the page (tests click there)
function cellBox(id, a, b) {
  const r = $(id).getBoundingClientRect(), g = geometry[id];
  const row = id === "dense" || id === "compact" ? a - S.r0 : id === "global" ? a - S.c0 : a;
  const col = id === "dense" ? b - S.c0 : b;
  return { x: r.left + col * g.cw, y: r.top + row * g.ch, w: g.cw, h: g.ch };
}

// ---------------------------------------------------------------- controls
function fillControls() {
  $("seqLen").value = S.seqLen; $("windows").value = S.windows.join(",");
  $("batch").value = S.rows.map((r) => `${r.globals.join(",")} / ${r.pad}`).join("\n");
  $("reach").value = S.reach ?? 0; $("r0").value = S.r0 || 0; $("c0").value = S.c0 || 0;
  const opts = (id, n, label, value) => { const el = $(id); el.textContent = ""; for (let q = 0; q < n; q++) { const o = document.createElement("option"); o.value = q; o.textContent = label(q); el.appendChild(o); } el.value = value; };
  opts("layer", S.windows.length, (l) => `${l} (w ${S.windows[l]})`, S.layer);
  opts("b", S.rows.length, (b) => `${b}`, S.b);
  const heads = S.mode === "model" && S.model.heads ? S.model.heads : 0;
  const head = $("head"); head.textContent = ""; const mean = document.createElement("option"); mean.value = -1; mean.textContent = "mean"; head.appendChild(mean);
  for (let h = 0; h < heads; h++) { const o = document.createElement("option"); o.value = h; o.textContent = h; head.appendChild(o); }
  head.value = S.head; head.disabled = S.mode !== "model";
  for (const id of ["seqLen", "windows", "batch"]) $(id).disabled = S.mode === "model";  // the text fixes them
}
function parseInts(text, what) {
  const out = text.split(",").map((t) => t.trim()).filter((t) => t !== "").map(Number);
  for (const v of out) if (!Number.isInteger(v) || v < 0) throw new Error(`${what}: expected non-negative integers, got ${JSON.stringify(text)}`);
  return out;
}
function readControls() {
  const seqLen = Number($("seqLen").value);
  if (!Number.isInteger(seqLen) || seqLen < 1 || seqLen > S.maxSeqLen) throw new Error(`tokens must be in 1..${S.maxSeqLen}, got ${$("seqLen").value}`);
  const windows = parseInts($("windows").value, "windows");
  if (!windows.length || windows.some((w) => w < 2 || w % 2)) throw new Error(`windows must be even ints >= 2, got ${$("windows").value}`);
  const rows = $("batch").value.split("\n").filter((l) => l.trim()).map((line, b) => {
    const [g, p] = line.split("/"); const pad = p === undefined || !p.trim() ? 0 : Number(p);
    const globals = parseInts(g || "", `batch row ${b} globals`);
    if (!Number.isInteger(pad) || pad < 0 || pad > seqLen) throw new Error(`batch row ${b}: padding must be in 0..${seqLen}, got ${p}`);
    for (const q of globals) if (q >= seqLen) throw new Error(`batch row ${b}: global ${q} is out of range 0..${seqLen - 1}`);
    return { globals: [...new Set(globals)].sort((a, c) => a - c), pad };
  });
  if (!rows.length) throw new Error("the batch needs at least one row");
  const reach = Number($("reach").value);
  Object.assign(S, { seqLen, windows, rows, layer: Math.min(Number($("layer").value), windows.length - 1),
    b: Math.min(Number($("b").value), rows.length - 1), reach: Math.min(Number.isInteger(reach) ? reach : 0, seqLen - 1),
    r0: Number($("r0").value) || 0, c0: Number($("c0").value) || 0, head: Number($("head").value) });
}
function onChange() {
  try { readControls(); $("error").textContent = ""; selection = null; render(); }
  catch (e) { $("error").textContent = e.message; }
}
for (const id of ["seqLen", "windows", "layer", "head", "batch", "b", "reach", "r0", "c0"]) $(id).addEventListener("change", onChange);

function notes() {
  const out = [];
  S.rows.forEach((r, b) => { const onPad = r.globals.filter((g) => g >= S.seqLen - r.pad);
    if (onPad.length) out.push(`batch row ${b}: global ${onPad.join(", ")} on padding is drawn as padding (token kind = attention_mask * (global + 1) = 0, as in the model).`); });
  if (M.padded > S.seqLen) out.push(`the encoder pads the ${S.seqLen} tokens to ${M.padded} (a multiple of the largest window); those positions are padding keys of global_attentions.`);
  if (S.mode === "model" && !S.model.layers[S.layer]) out.push(`layer ${S.layer}'s probabilities were too many to inline: structure only.`);
  if (S.mode === "model" && !S.model.heads) out.push("probabilities are the mean over heads (per-head values were too many to inline).");
  return out.join("\n");
}
function render(resetSelection) {
  derive();
  if (S.mode === "model") {                          // colour scale: the largest shown probability
    let vmax = 0; const L = S.model.layers[S.layer];
    if (L) for (const arr of [L.attentions, L.global]) for (const h of arr) for (const v of h) vmax = Math.max(vmax, v);
    S.vmax = vmax / 10000;
  }
  if (resetSelection !== false && selection === null && S.select) { const [i, j] = S.select; S.select = null; select("dense", Math.min(i, S.seqLen - 1), Math.min(j, S.seqLen - 1)); return; }
  $("r0").value = S.r0; $("c0").value = S.c0;
  drawOverview(); drawDense(); drawCompact(); drawGlobal(); drawBatch(); drawReach(); drawLegend();
  $("note").textContent = notes();
  $("info").textContent = selection ? selection.text : "click a cell";
}

window.explorer = {
  rules: { paddedLength, tokenKinds, globalSlots, attends, compactKey, compactColumn, reachPerLayer, blockStats, blockKind },
  state: S, get layout() { return M; }, get selection() { return selection; }, select, cellBox, render,
};
fillControls();
render();
fillControls();
