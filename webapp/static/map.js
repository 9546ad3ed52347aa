// The library map: every image a point (see webapp/library_map.py for the payload).
// Drawn through a cached offscreen bitmap (see renderCache), zoomed with
// the wheel or a pinch, moved by dragging; a lasso (the Lasso tool, or Shift + drag)
// selects images, announced as a `lookalike:select` event ({detail: {ids}}) for any
// bulk action on the page, and labelled from the side panel.
"use strict";

(() => {
  const PALETTE = [
    "#2f6fde", "#e4572e", "#29a35a", "#f2a541", "#8e44ad", "#17becf", "#d62728", "#7f7f00",
    "#e377c2", "#1f3a93", "#8c564b", "#2ca02c", "#ff7f0e", "#9467bd", "#bcbd22", "#006d77",
    "#c44e52", "#55a868", "#4c72b0", "#dd8452",
  ];
  const NONE = [176, 180, 190];
  const canvas = document.getElementById("map");
  const frame = document.getElementById("map-frame");
  const tip = document.getElementById("map-tip");
  const status = document.getElementById("map-status");
  const ctx = canvas.getContext("2d");
  const state = {
    n: 0, ids: null, x: null, y: null, cat: null, legend: [], none: null,
    scale: 1, tx: 0, ty: 0, // screen = (data * side) * scale + t, in canvas pixels
    hidden: new Set(), selected: new Set(), lasso: null, tool: "pan",
    grid: null, dirty: true, frames: 0, drawMs: 0, renders: 0,
    version: 0, // +1 whenever what the points look like changes (data, colours, selection)
  };
  const rgb = [NONE];
  window.lookalikeMap = state; // for the browser tests and the benchmark

  function hexToRgb(hex) {
    const v = parseInt(hex.slice(1), 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }
  function colourOf(code) {
    if (code === 0) return NONE;
    return rgb[code] || hexToRgb(PALETTE[(code - 1) % PALETTE.length]);
  }

  function side() {
    return Math.min(canvas.width, canvas.height);
  }
  function offset() { // the square map centred in the canvas
    return [(canvas.width - side()) / 2, (canvas.height - side()) / 2];
  }
  function toScreen(i) {
    const [ox, oy] = offset();
    return [
      ox + (state.x[i] / 65535) * side() * state.scale + state.tx,
      oy + (state.y[i] / 65535) * side() * state.scale + state.ty,
    ];
  }

  function resize() {
    const ratio = window.devicePixelRatio || 1;
    const box = frame.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(box.width * ratio));
    canvas.height = Math.max(1, Math.round(box.height * ratio));
    state.dirty = true;
  }

  // The points are drawn into an offscreen bitmap larger than the canvas by MARGIN on
  // every side (one typed-array pass through a Uint32 view, colours from a table per
  // category); a frame copies it at the current pan offset. So panning redraws nothing
  // until it moves past the margin, and a zoom, a new colouring, a hidden category or a
  // selection redraws once (state.version, the scale and the size are its key).
  // Measured with 100k points in headless Chromium: scripts/bench_map.py --browser.
  const MARGIN = 0.5; // of the canvas's width and height
  const cache = { canvas: document.createElement("canvas"), image: null, pixels: null, key: "", tx: 0, ty: 0, mx: 0, my: 0 };
  let selectedRows = new Int32Array(0), selectedFor = null;
  function colourTable(alpha) { // packed RGBA (little-endian) per category code; 0: hidden
    const table = new Uint32Array(state.legend.length + 1);
    for (let code = 0; code < table.length; code++) {
      if (state.hidden.has(code)) continue;
      const [r, g, b] = colourOf(code);
      table[code] = ((alpha << 24) | (b << 16) | (g << 8) | r) >>> 0;
    }
    return table;
  }
  function rowsOfSelection() {
    if (selectedFor !== state.selected) {
      const rows = [];
      for (let i = 0; i < state.n; i++) if (state.selected.has(state.ids[i])) rows.push(i);
      selectedRows = Int32Array.from(rows);
      selectedFor = state.selected;
    }
    return selectedRows;
  }
  // Squares of d x d pixels at the rows' points, in a w x h bitmap whose origin is the
  // canvas point (-mx, -my).
  function stampAll(pixels, w, h, rows, count, table, fixed, d, mx, my) {
    const [ox, oy] = offset();
    const s = side() * state.scale / 65535;
    const bx = ox + state.tx + mx + 0.5, by = oy + state.ty + my + 0.5;
    const xs = state.x, ys = state.y, cat = state.cat;
    for (let k = 0; k < count; k++) {
      const i = rows ? rows[k] : k;
      const colour = table[cat[i]];
      if (colour === 0) continue;
      const fx = bx + xs[i] * s, fy = by + ys[i] * s;
      if (fx < 0 || fy < 0 || fx >= w || fy >= h) continue;
      const sx = fx | 0, sy = fy | 0;
      const x1 = Math.min(w, sx + d), y1 = Math.min(h, sy + d);
      const c = fixed || colour;
      for (let yy = sy; yy < y1; yy++) {
        for (let p = yy * w + sx, end = yy * w + x1; p < end; p++) pixels[p] = c;
      }
    }
  }
  function renderCache(w, h) {
    const mx = Math.round(w * MARGIN), my = Math.round(h * MARGIN);
    const cw = w + 2 * mx, ch = h + 2 * my;
    if (!cache.image || cache.image.width !== cw || cache.image.height !== ch) {
      cache.canvas.width = cw;
      cache.canvas.height = ch;
      cache.image = new ImageData(cw, ch);
      cache.pixels = new Uint32Array(cache.image.data.buffer);
    } else {
      cache.pixels.fill(0);
    }
    const dot = Math.max(2, Math.min(7, Math.round(2.5 * Math.sqrt(state.scale) * (window.devicePixelRatio || 1))));
    const anySelected = state.selected.size > 0;
    const table = colourTable(anySelected ? 89 : 255); // the rest faded under a selection
    stampAll(cache.pixels, cw, ch, null, state.n, table, 0, dot, mx, my);
    if (anySelected) { // selected points last, on top, larger and dark
      const rows = rowsOfSelection();
      const dark = ((255 << 24) | (20 << 16) | (20 << 8) | 20) >>> 0;
      stampAll(cache.pixels, cw, ch, rows, rows.length, table, dark, dot + 1, mx, my);
    }
    cache.canvas.getContext("2d").putImageData(cache.image, 0, 0);
    Object.assign(cache, { tx: state.tx, ty: state.ty, mx, my, renders: (cache.renders || 0) + 1 });
    state.renders = cache.renders;
  }
  function draw() {
    state.dirty = false;
    state.frames += 1;
    const started = performance.now();
    const w = canvas.width, h = canvas.height;
    const key = `${w}x${h}:${state.scale}:${state.version}:${state.n}`;
    const dx = state.tx - cache.tx, dy = state.ty - cache.ty;
    if (key !== cache.key || Math.abs(dx) > cache.mx || Math.abs(dy) > cache.my) {
      renderCache(w, h);
      cache.key = key;
    }
    ctx.clearRect(0, 0, w, h);
    ctx.drawImage(cache.canvas, Math.round(state.tx - cache.tx) - cache.mx, Math.round(state.ty - cache.ty) - cache.my);
    if (state.lasso && state.lasso.length > 1) {
      ctx.beginPath();
      ctx.moveTo(state.lasso[0][0], state.lasso[0][1]);
      for (const [lx, ly] of state.lasso) ctx.lineTo(lx, ly);
      ctx.closePath();
      ctx.fillStyle = "rgba(47, 111, 222, 0.12)";
      ctx.fill();
      ctx.strokeStyle = "#2f6fde";
      ctx.lineWidth = window.devicePixelRatio || 1;
      ctx.stroke();
    }
    state.drawMs += performance.now() - started;
  }
  function loop() {
    if (state.dirty && state.n >= 0) draw();
    requestAnimationFrame(loop);
  }

  // -- hover: a grid of the data space finds the point under the pointer ------------------
  const CELLS = 128;
  function buildGrid() {
    const cells = new Map();
    for (let i = 0; i < state.n; i++) {
      const key = ((state.x[i] * CELLS) >> 16) * CELLS + ((state.y[i] * CELLS) >> 16);
      let list = cells.get(key);
      if (!list) cells.set(key, (list = []));
      list.push(i);
    }
    state.grid = cells;
  }
  function pointAt(cx, cy) {
    const [ox, oy] = offset();
    const s = side() * state.scale;
    const dx = ((cx - ox - state.tx) / s) * 65535, dy = ((cy - oy - state.ty) / s) * 65535;
    const radius = (8 * (window.devicePixelRatio || 1)) / s * 65535;
    let best = -1, bestD = radius * radius;
    const c0 = Math.floor(((dx - radius) * CELLS) / 65536), c1 = Math.floor(((dx + radius) * CELLS) / 65536);
    const r0 = Math.floor(((dy - radius) * CELLS) / 65536), r1 = Math.floor(((dy + radius) * CELLS) / 65536);
    for (let c = Math.max(0, c0); c <= Math.min(CELLS - 1, c1); c++) {
      for (let r = Math.max(0, r0); r <= Math.min(CELLS - 1, r1); r++) {
        for (const i of state.grid.get(c * CELLS + r) || []) {
          if (state.hidden.has(state.cat[i])) continue;
          const d = (state.x[i] - dx) ** 2 + (state.y[i] - dy) ** 2;
          if (d < bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }
  function categoryName(code) {
    return code === 0 ? state.none.name : state.legend[code - 1].name;
  }
  function showTip(i, ex, ey) {
    if (i < 0) { tip.hidden = true; return; }
    const id = state.ids[i];
    if (tip.dataset.id !== String(id)) {
      tip.dataset.id = String(id);
      tip.replaceChildren(
        LK.el("img", { src: `/api/images/${id}/thumbnail`, alt: "" }),
        LK.el("div", { class: "name", text: categoryName(state.cat[i]) })
      );
    }
    tip.hidden = false;
    const box = frame.getBoundingClientRect();
    const left = Math.min(ex + 14, box.width - 210);
    const top = ey + 14 + 170 > box.height ? ey - 180 : ey + 14;
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${Math.max(0, top)}px`;
  }

  // -- pointer: pan, pinch, lasso, hover, click -------------------------------------------
  const pointers = new Map();
  let drag = null;
  function canvasXY(e) {
    const box = canvas.getBoundingClientRect();
    const ratio = canvas.width / box.width;
    return [(e.clientX - box.left) * ratio, (e.clientY - box.top) * ratio, e.clientX - box.left, e.clientY - box.top];
  }
  function zoomAt(cx, cy, factor) {
    const scale = Math.min(200, Math.max(0.5, state.scale * factor));
    const f = scale / state.scale;
    const [ox, oy] = offset();
    state.tx = cx - ox - (cx - ox - state.tx) * f;
    state.ty = cy - oy - (cy - oy - state.ty) * f;
    state.scale = scale;
    state.dirty = true;
  }
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [cx, cy] = canvasXY(e);
    zoomAt(cx, cy, Math.exp(-e.deltaY * 0.0015));
  }, { passive: false });
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    const [cx, cy] = canvasXY(e);
    pointers.set(e.pointerId, [cx, cy]);
    tip.hidden = true;
    if (pointers.size === 2) { // a pinch replaces whatever the first finger began
      const [a, b] = [...pointers.values()];
      drag = { kind: "pinch", dist: Math.hypot(a[0] - b[0], a[1] - b[1]) };
      state.lasso = null;
      return;
    }
    const lasso = state.tool === "lasso" || e.shiftKey;
    drag = { kind: lasso ? "lasso" : "pan", x: cx, y: cy, moved: false };
    if (lasso) state.lasso = [[cx, cy]];
    frame.classList.toggle("dragging", !lasso);
  });
  canvas.addEventListener("pointermove", (e) => {
    const [cx, cy, ex, ey] = canvasXY(e);
    if (!drag) {
      if (state.grid && e.pointerType === "mouse") showTip(pointAt(cx, cy), ex, ey);
      return;
    }
    pointers.set(e.pointerId, [cx, cy]);
    if (drag.kind === "pinch" && pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const dist = Math.hypot(a[0] - b[0], a[1] - b[1]);
      zoomAt((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, dist / (drag.dist || dist));
      drag.dist = dist;
    } else if (drag.kind === "pan") {
      state.tx += cx - drag.x;
      state.ty += cy - drag.y;
      drag.moved ||= Math.abs(cx - drag.x) + Math.abs(cy - drag.y) > 2;
      drag.x = cx; drag.y = cy;
      state.dirty = true;
    } else if (drag.kind === "lasso") {
      state.lasso.push([cx, cy]);
      state.dirty = true;
    }
  });
  function endPointer(e) {
    pointers.delete(e.pointerId);
    if (!drag) return;
    const [cx, cy] = canvasXY(e);
    if (drag.kind === "lasso") {
      if (state.lasso.length > 2) select(insideLasso(state.lasso));
      state.lasso = null;
      state.dirty = true;
    } else if (drag.kind === "pan" && !drag.moved && e.type === "pointerup") {
      const i = pointAt(cx, cy);
      if (i >= 0) window.location.href = `/images/${state.ids[i]}`;
    }
    if (pointers.size === 0) drag = null;
    frame.classList.remove("dragging");
  }
  canvas.addEventListener("pointerup", endPointer);
  canvas.addEventListener("pointercancel", endPointer);
  canvas.addEventListener("pointerleave", () => { if (!drag) tip.hidden = true; });

  function insideLasso(poly) {
    const out = [];
    for (let i = 0; i < state.n; i++) {
      if (state.hidden.has(state.cat[i])) continue;
      const [px, py] = toScreen(i);
      let inside = false;
      for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
        const [xa, ya] = poly[a], [xb, yb] = poly[b];
        if ((ya > py) !== (yb > py) && px < ((xb - xa) * (py - ya)) / (yb - ya) + xa) inside = !inside;
      }
      if (inside) out.push(state.ids[i]);
    }
    return out;
  }

  // -- selection --------------------------------------------------------------------------
  function select(ids) {
    state.selected = new Set(ids);
    state.version += 1; state.dirty = true;
    const panel = document.getElementById("selection");
    panel.hidden = ids.length === 0;
    document.getElementById("selection-text").textContent = `${LK.plural(ids.length, "image")} selected`;
    const thumbs = document.getElementById("selection-thumbs");
    thumbs.replaceChildren(
      ...ids.slice(0, 12).map((id) =>
        LK.el("a", { href: `/images/${id}` }, LK.el("img", { src: `/api/images/${id}/thumbnail`, alt: "", loading: "lazy" }))
      )
    );
    document.dispatchEvent(new CustomEvent("lookalike:select", { detail: { ids, source: "map" } }));
  }
  document.getElementById("selection-clear").addEventListener("click", () => select([]));
  document.getElementById("selection-label").addEventListener("submit", async (e) => {
    e.preventDefault();
    const label = document.getElementById("selection-name").value.trim();
    const ids = [...state.selected];
    if (!label || ids.length === 0) return;
    try {
      const done = await LK.api("POST", "/api/labels", { ids, label });
      LK.toast(`${LK.plural(done.labelled, "image")} labelled “${label}”`);
      await load(document.getElementById("colour-by").value, true);
      select([]);
    } catch (err) {
      LK.toast(err.message, "error");
    }
  });

  function setTool(tool) {
    state.tool = tool;
    for (const name of ["pan", "lasso"]) {
      const button = document.getElementById(`tool-${name}`);
      button.classList.toggle("on", name === tool);
      button.setAttribute("aria-pressed", String(name === tool));
    }
    frame.classList.toggle("lasso", tool === "lasso");
  }
  document.getElementById("tool-pan").addEventListener("click", () => setTool("pan"));
  document.getElementById("tool-lasso").addEventListener("click", () => setTool("lasso"));
  document.getElementById("zoom-in").addEventListener("click", () => zoomAt(canvas.width / 2, canvas.height / 2, 1.5));
  document.getElementById("zoom-out").addEventListener("click", () => zoomAt(canvas.width / 2, canvas.height / 2, 1 / 1.5));
  document.getElementById("zoom-reset").addEventListener("click", () => {
    state.scale = 1; state.tx = 0; state.ty = 0; state.dirty = true;
  });

  // -- legend -----------------------------------------------------------------------------
  function swatch(code) {
    const [r, g, b] = colourOf(code);
    const dot = LK.el("span", { class: "swatch" });
    dot.style.background = `rgb(${r}, ${g}, ${b})`; // CSSOM: the CSP refuses style attributes
    return dot;
  }
  function renderLegend() {
    const list = document.getElementById("legend");
    const entries = state.legend.map((item, k) => [k + 1, item]);
    if (state.none.count) entries.push([0, state.none]);
    list.replaceChildren(
      ...entries.map(([code, item]) => {
        const li = LK.el("li", { title: "click to hide or show", "data-code": code },
          swatch(code), LK.el("span", { class: "name", text: item.name }), LK.el("span", { class: "count", text: item.count }));
        li.classList.toggle("off", state.hidden.has(code));
        li.addEventListener("click", () => {
          if (state.hidden.has(code)) state.hidden.delete(code); else state.hidden.add(code);
          li.classList.toggle("off", state.hidden.has(code));
          state.version += 1; state.dirty = true;
        });
        return li;
      })
    );
    const names = document.getElementById("map-labels");
    if (state.colour !== "cluster") {
      names.replaceChildren(...state.legend.map((item) => LK.el("option", { value: item.name })));
    }
  }

  // -- loading ----------------------------------------------------------------------------
  async function load(colour, keepView) {
    status.textContent = state.n ? "Updating the map…" : "Computing the map (once after each change of the library)…";
    const started = performance.now();
    let meta, buffer;
    try {
      meta = await LK.api("GET", `/api/map?colour=${encodeURIComponent(colour)}`);
      const response = await fetch(meta.points);
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      buffer = await response.arrayBuffer();
    } catch (err) {
      status.textContent = `The map could not be loaded: ${err.message}`;
      return;
    }
    const n = new DataView(buffer).getUint32(0, true);
    state.n = n;
    state.ids = new Uint32Array(buffer, 4, n);
    state.x = new Uint16Array(buffer, 4 + 4 * n, n);
    state.y = new Uint16Array(buffer, 4 + 6 * n, n);
    state.cat = new Uint16Array(buffer, 4 + 8 * n, n);
    state.legend = meta.legend;
    state.none = meta.none;
    state.colour = meta.colour;
    state.hidden = new Set();
    if (!keepView) { state.scale = 1; state.tx = 0; state.ty = 0; }
    buildGrid();
    renderLegend();
    state.version += 1; state.dirty = true;
    state.loadedMs = performance.now() - started;
    status.textContent = n
      ? `${LK.plural(n, "image")}, coloured by ${colour === "label" ? "human label" : colour}.`
      : "The library has no images yet: index a folder first (Library page, or lookalike index).";
    const url = new URL(window.location.href);
    url.searchParams.set("colour", colour);
    history.replaceState(null, "", url);
    requestAnimationFrame(() => { state.firstPaintMs = performance.now() - started; });
  }

  const chooser = document.getElementById("colour-by");
  const asked = new URL(window.location.href).searchParams.get("colour");
  if (asked && [...chooser.options].some((o) => o.value === asked)) chooser.value = asked;
  chooser.addEventListener("change", () => load(chooser.value, true));
  window.addEventListener("resize", resize);
  resize();
  requestAnimationFrame(loop);
  load(chooser.value, false);
})();
