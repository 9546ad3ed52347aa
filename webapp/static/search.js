// The search page: a query image from drop, paste or the file picker; an optional
// region drawn on it; results as a grid. The box is sent in the query image's own
// pixels (the browser shows it EXIF-rotated, as the server reads it).
"use strict";

(() => {
  const { api, card, toast } = LK;
  const $ = (id) => document.getElementById(id);
  const drop = $("drop");
  const img = $("query-img");
  const boxEl = $("box");
  const status = $("status");
  const results = $("results");
  let file = null;
  let queryId = null; // the server's id of the uploaded image (kept there for a while)
  let libraryImage = null; // the id of a library image searched by (a box of its page)
  let box = null; // [x0, y0, x1, y1] in the image's natural pixels
  let objectURL = null;

  // -- the search in the URL ---------------------------------------------------
  // ?query=ID (an uploaded image the server keeps), ?image=ID (a library image) or
  // ?text=..., with box, mode and k: Back, a reload or a shared link run the same
  // search again.
  function writeURL(push) {
    const params = new URLSearchParams();
    if (libraryImage) params.set("image", libraryImage);
    else if (queryId) params.set("query", queryId);
    else if (lastText) params.set("text", lastText);
    else return;
    if (box && (queryId || libraryImage)) params.set("box", box.join(","));
    params.set("mode", $("robust").checked ? "robust" : "fast");
    params.set("k", $("k").value);
    const url = `${location.pathname}?${params}`;
    if (url === location.pathname + location.search) return;
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  }
  let lastText = null;

  function readURL() {
    const params = new URLSearchParams(location.search);
    if (params.get("k")) $("k").value = params.get("k");
    if (params.get("mode")) $("robust").checked = params.get("mode") === "robust";
    const text = params.get("text");
    if (text && $("text")) {
      $("text").value = text;
      searchText(text, false);
      return;
    }
    const id = params.get("query");
    const imageParam = params.get("image");
    if (!id && !imageParam) {
      // Back to the page without a search: its empty state.
      queryId = file = lastText = box = libraryImage = null;
      $("query").hidden = true;
      $("drop-hint").hidden = false;
      results.replaceChildren();
      status.textContent = "";
      return;
    }
    const parts = (params.get("box") || "").split(",").map(Number);
    box = parts.length === 4 && parts.every(Number.isFinite) ? parts : null;
    queryId = imageParam ? null : id;
    libraryImage = imageParam || null;
    file = null;
    img.onload = () => {
      $("drop-hint").hidden = true;
      $("query").hidden = false;
      drawBox();
      search({ fromURL: true });
    };
    if (libraryImage) {
      img.onerror = () => refuse("The library image of this link cannot be shown (it is gone or changed).");
      img.src = `/api/images/${encodeURIComponent(libraryImage)}/file`;
      return;
    }
    img.onerror = () => refuse("The query image of this link is no longer kept on the server; upload it again.");
    img.src = `/api/queries/${encodeURIComponent(id)}`;
  }

  // A file that is not an image, or one the browser cannot decode, is refused at once,
  // with the reason where the file was dropped (nothing is sent to the server).
  function refuse(message) {
    file = null;
    queryId = libraryImage = null;
    box = null;
    $("query").hidden = true;
    $("drop-hint").hidden = false;
    const error = $("file-error");
    error.textContent = message;
    error.hidden = false;
    status.textContent = "";
  }

  function setQuery(newFile) {
    if (!newFile) return;
    const name = newFile.name || "the pasted file";
    if (!newFile.type.startsWith("image/")) {
      refuse(`“${name}” is not an image file; choose a JPEG, PNG, WebP or GIF picture.`);
      return;
    }
    $("file-error").hidden = true;
    file = newFile;
    queryId = libraryImage = null;
    lastText = null;
    box = null;
    if (objectURL) URL.revokeObjectURL(objectURL);
    objectURL = URL.createObjectURL(file);
    img.onload = () => {
      $("drop-hint").hidden = true;
      $("query").hidden = false;
      drawBox();
      search();
    };
    img.onerror = () => refuse(`“${name}” is not a readable image (it cannot be decoded); choose another file.`);
    img.src = objectURL;
  }

  // -- drawing the box -----------------------------------------------------
  function scale() {
    return img.naturalWidth / img.clientWidth;
  }

  function drawBox() {
    $("clear-box").hidden = !box;
    if (!box) {
      boxEl.hidden = true;
      return;
    }
    const s = scale();
    Object.assign(boxEl.style, {
      left: `${img.offsetLeft + box[0] / s}px`,
      top: `${img.offsetTop + box[1] / s}px`,
      width: `${(box[2] - box[0]) / s}px`,
      height: `${(box[3] - box[1]) / s}px`,
    });
    boxEl.hidden = false;
  }

  let dragStart = null;
  function point(event) {
    const r = img.getBoundingClientRect();
    const x = Math.min(Math.max(event.clientX - r.left, 0), r.width);
    const y = Math.min(Math.max(event.clientY - r.top, 0), r.height);
    return [x, y];
  }
  img.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    img.setPointerCapture(event.pointerId);
    dragStart = point(event);
  });
  img.addEventListener("pointermove", (event) => {
    if (!dragStart) return;
    const [x, y] = point(event);
    const s = scale();
    box = [
      Math.min(dragStart[0], x) * s,
      Math.min(dragStart[1], y) * s,
      Math.max(dragStart[0], x) * s,
      Math.max(dragStart[1], y) * s,
    ].map(Math.round);
    drawBox();
  });
  img.addEventListener("pointerup", () => {
    if (!dragStart) return;
    dragStart = null;
    const s = scale();
    if (!box || (box[2] - box[0]) / s < 8 || (box[3] - box[1]) / s < 8) {
      box = null; // a click, not a drag
      drawBox();
      return;
    }
    search();
  });
  window.addEventListener("resize", drawBox);

  // -- searching ------------------------------------------------------------
  let lastDoc = null; // the results shown, refreshed after a bulk edit of them
  function show(doc) {
    lastDoc = doc;
    results.replaceChildren(...doc.results.map((r) => card(r)));
    const what = box ? "region" : "image";
    const copies = doc.results.filter((r) => r.match).length;
    const found = copies
      ? `${copies} ${copies === 1 ? "copy" : "copies"} and ${doc.results.length - copies} look-alikes`
      : `${doc.results.length} look-alikes`;
    status.textContent = `${found} of the ${what} (${doc.took_ms} ms on the server)`;
  }

  async function search(options = {}) {
    if (!file && !queryId && !libraryImage) return;
    const form = new FormData();
    if (queryId) form.append("query", queryId);
    else if (libraryImage) form.append("image_id", libraryImage);
    else form.append("image", file);
    form.append("k", $("k").value);
    form.append("mode", $("robust").checked ? "robust" : "fast");
    if (options.object) form.append("object", "1");
    else if (box) form.append("box", box.join(","));
    status.textContent = "Searching…";
    try {
      const doc = await api("POST", "/api/search", form);
      if (options.object && doc.box) {
        box = doc.box.map(Math.round);
        drawBox();
      }
      queryId = doc.query;
      if (!options.fromURL) writeURL(true);
      show(doc);
    } catch (e) {
      status.textContent = "";
      toast(e.message, "error");
    }
  }

  $("whole").addEventListener("click", () => {
    box = null;
    drawBox();
    search();
  });
  $("clear-box").addEventListener("click", () => {
    box = null;
    drawBox();
    search();
  });
  if ($("object")) $("object").addEventListener("click", () => search({ object: true }));
  $("k").addEventListener("change", () => search());
  $("robust").addEventListener("change", () => search());
  for (const id of ["file", "file2"]) {
    $(id).addEventListener("change", (event) => setQuery(event.target.files[0]));
  }

  // -- drop and paste ---------------------------------------------------------
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const dropped = event.dataTransfer.files[0];
    if (dropped) setQuery(dropped);
    else toast("Drop an image file from your computer.", "error");
  });
  document.addEventListener("paste", (event) => {
    const target = event.target;
    if (target && target.tagName === "INPUT") return; // pasting text into the text box
    for (const item of event.clipboardData.items) {
      if (item.kind === "file" && item.type.startsWith("image/")) {
        setQuery(item.getAsFile());
        event.preventDefault();
        return;
      }
    }
  });

  // -- text search (CLIP libraries) -------------------------------------------
  async function searchText(text, push) {
    status.textContent = "Searching…";
    try {
      const doc = await api("POST", "/api/search", { text, k: Number($("k").value) });
      lastDoc = doc;
      results.replaceChildren(...doc.results.map((r) => card(r)));
      status.textContent = `${doc.results.length} images for “${text}” (${doc.took_ms} ms)`;
      queryId = libraryImage = null;
      lastText = text;
      writeURL(push);
    } catch (e) {
      status.textContent = "";
      toast(e.message, "error");
    }
  }
  const textForm = $("text-form");
  if (textForm) {
    textForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("text").value.trim();
      if (text) searchText(text, true);
    });
  }

  // -- selection and bulk labelling (static/select.js) -------------------------
  async function relabelled() {
    if (!lastDoc) return;
    const docs = await Promise.all(
      lastDoc.results.map((r) => api("GET", `/api/images/${r.id}`).catch(() => null))
    );
    lastDoc.results.forEach((r, i) => {
      if (!docs[i]) return;
      r.label = docs[i].label ? docs[i].label.label : null;
      r.tag = docs[i].tag;
    });
    results.replaceChildren(...lastDoc.results.map((r) => card(r)));
  }
  LKSelect.attach(results, { changed: relabelled });
  window.addEventListener("popstate", () => readURL());
  readURL();
})();
