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
  let libraryId = null; // or the query is a library image (?image=ID)
  let box = null; // [x0, y0, x1, y1] in the image's natural pixels
  let objectURL = null;

  // -- the search in the URL ---------------------------------------------------
  // ?query=ID (an uploaded image the server keeps), ?image=ID (a library image) or
  // ?text=..., with box, mode, k,
  // the filter (filter, label) and the page: Back, a reload or a shared link run the
  // same search again. A new search, filter or page is a new history entry.
  let page = 1;
  function writeURL(push) {
    const params = new URLSearchParams();
    if (queryId) params.set("query", queryId);
    else if (libraryId) params.set("image", libraryId);
    else if (lastText) params.set("text", lastText);
    else return;
    if (box && (queryId || libraryId)) params.set("box", box.join(","));
    params.set("mode", $("robust").checked ? "robust" : "fast");
    params.set("k", $("k").value);
    if ($("filter").value !== "all") params.set("filter", $("filter").value);
    if ($("label-filter").value) params.set("label", $("label-filter").value);
    if (page > 1) params.set("page", String(page));
    const url = `${location.pathname}?${params}`;
    if (url === location.pathname + location.search) return;
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  }
  let lastText = null;

  // A result count from the URL that the list does not offer (a shared ?k=7) is added
  // to it, in order, and used; one that is no whole number leaves the list's choice.
  function setK(value) {
    const select = $("k");
    if (!/^[0-9]+$/.test(value) || Number(value) < 1) return;
    const k = String(Number(value));
    if (![...select.options].some((o) => o.value === k)) {
      const next = [...select.options].find((o) => Number(o.value) > Number(k));
      select.insertBefore(LK.el("option", { text: k }), next || null);
    }
    select.value = k;
  }

  function readURL() {
    const params = new URLSearchParams(location.search);
    if (params.get("k")) setK(params.get("k"));
    if (params.get("mode")) $("robust").checked = params.get("mode") === "robust";
    $("filter").value = params.get("filter") || "all";
    if (!$("filter").value) $("filter").value = "all"; // a filter this page does not offer
    setLabelFilter(params.get("label") || "");
    page = Math.max(1, parseInt(params.get("page"), 10) || 1);
    const text = params.get("text");
    if (text) {
      // Sent even where the page has no text box: the answer says why a library
      // cannot search by text.
      if ($("text")) $("text").value = text;
      searchText(text, false, page);
      return;
    }
    const id = params.get("query");
    const image = /^[0-9]+$/.test(params.get("image") || "") ? params.get("image") : null;
    if (!id && !image) {
      // Back to the page without a search: its empty state.
      queryId = libraryId = file = lastText = box = null;
      $("query").hidden = true;
      $("drop-hint").hidden = false;
      results.replaceChildren();
      status.textContent = "";
      $("search-filters").hidden = $("pager").hidden = true;
      return;
    }
    const parts = (params.get("box") || "").split(",").map(Number);
    box = parts.length === 4 && parts.every(Number.isFinite) ? parts : null;
    queryId = id || null;
    libraryId = id ? null : image;
    file = null;
    img.onload = () => {
      $("drop-hint").hidden = true;
      $("query").hidden = false;
      drawBox();
      search({ fromURL: true });
    };
    img.onerror = () =>
      refuse(
        id
          ? "The query image of this link is no longer kept on the server; upload it again."
          : "This library image cannot be shown here (it is not in the library, its file changed, or the browser cannot show its format)."
      );
    img.src = id ? `/api/queries/${encodeURIComponent(id)}` : `/api/images/${image}/file`;
  }

  // A file that is not an image, or one the browser cannot decode, is refused at once,
  // with the reason where the file was dropped (nothing is sent to the server).
  function refuse(message) {
    file = null;
    queryId = null;
    libraryId = null;
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
    queryId = null;
    libraryId = null;
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
  // Natural pixels per displayed pixel, per axis, from the displayed size as laid out:
  // it is fractional (a 4000x6000 photo 320 px high is 213.33 px wide), and
  // clientWidth's rounded 213 would put a box's far corner outside the image.
  function scale() {
    const r = img.getBoundingClientRect();
    return [img.naturalWidth / r.width, img.naturalHeight / r.height];
  }

  function drawBox() {
    $("clear-box").hidden = !box;
    if (!box) {
      boxEl.hidden = true;
      return;
    }
    const [sx, sy] = scale();
    const r = img.getBoundingClientRect();
    const frame = $("query-frame").getBoundingClientRect(); // the box's containing block
    Object.assign(boxEl.style, {
      left: `${r.left - frame.left + box[0] / sx}px`,
      top: `${r.top - frame.top + box[1] / sy}px`,
      width: `${(box[2] - box[0]) / sx}px`,
      height: `${(box[3] - box[1]) / sy}px`,
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
    const [sx, sy] = scale();
    const within = (v, most) => Math.min(Math.max(Math.round(v), 0), most);
    const [w, h] = [img.naturalWidth, img.naturalHeight];
    box = [
      within(Math.min(dragStart[0], x) * sx, w),
      within(Math.min(dragStart[1], y) * sy, h),
      within(Math.max(dragStart[0], x) * sx, w),
      within(Math.max(dragStart[1], y) * sy, h),
    ];
    drawBox();
  });
  img.addEventListener("pointerup", () => {
    if (!dragStart) return;
    dragStart = null;
    const [sx, sy] = scale();
    if (!box || (box[2] - box[0]) / sx < 8 || (box[3] - box[1]) / sy < 8) {
      box = null; // a click, not a drag
      drawBox();
      return;
    }
    search();
  });
  window.addEventListener("resize", drawBox);

  // -- searching ------------------------------------------------------------
  let lastDoc = null; // the results shown, refreshed after a bulk edit of them
  function showPager(doc) {
    $("search-filters").hidden = false;
    $("pager").hidden = page === 1 && !doc.more;
    $("prev").disabled = page === 1;
    $("next").disabled = !doc.more;
    $("page-no").textContent = `page ${page}`;
  }

  function show(doc) {
    lastDoc = doc;
    showPager(doc);
    results.replaceChildren(...doc.results.map((r) => card(r)));
    const what = box ? "region" : "image";
    const copies = doc.results.filter((r) => r.match).length;
    const found = copies
      ? `${copies} ${copies === 1 ? "copy" : "copies"} and ${doc.results.length - copies} look-alikes`
      : `${doc.results.length} look-alikes`;
    const where = filterWords();
    status.textContent = doc.results.length || page === 1
      ? `${found}${where} of the ${what} (${doc.took_ms} ms on the server)`
      : `No more results${where} on page ${page}.`;
  }

  async function search(options = {}) {
    if (!file && !queryId && !libraryId) return;
    if (!options.fromURL) page = options.page || 1;
    const form = new FormData();
    if (queryId) form.append("query", queryId);
    else if (libraryId) form.append("image_id", libraryId);
    else form.append("image", file);
    form.append("k", $("k").value);
    form.append("mode", $("robust").checked ? "robust" : "fast");
    for (const [key, value] of Object.entries(filterFields())) form.append(key, value);
    if (options.object) form.append("object", "1");
    else if (box) form.append("box", box.join(","));
    status.textContent = "Searching…";
    status.classList.remove("failed");
    try {
      const doc = await api("POST", "/api/search", form);
      if (options.object && doc.box) {
        box = doc.box.map(Math.round);
        drawBox();
      }
      if (!libraryId) queryId = doc.query;
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
  $("k").addEventListener("change", () => again(1));
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
  async function searchText(text, push, pageNo = 1) {
    status.textContent = "Searching…";
    status.classList.remove("failed");
    page = pageNo;
    try {
      const doc = await api("POST", "/api/search", { text, k: Number($("k").value), ...filterFields() });
      lastDoc = doc;
      showPager(doc);
      results.replaceChildren(...doc.results.map((r) => card(r)));
      status.textContent = `${doc.results.length} images${filterWords()} for “${text}” (${doc.took_ms} ms)`;
      queryId = libraryId = null;
      lastText = text;
      writeURL(push);
    } catch (e) {
      // In the status line, not a passing toast: a link's text search may be all there
      // is to show (the library's model cannot search by text, say).
      status.textContent = `Text search for “${text}”: ${e.message}`;
      status.classList.add("failed");
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

  // -- filters and pages -----------------------------------------------------
  function filterFields() {
    const fields = { filter: $("filter").value, page };
    if ($("label-filter").value) fields.label = $("label-filter").value;
    return fields;
  }
  function filterWords() {
    const label = $("label-filter").value;
    if (label) return ` labelled “${label}”`;
    const filter = $("filter").value;
    return filter === "all" ? "" : ` (${$("filter").selectedOptions[0].textContent})`;
  }
  function setLabelFilter(value) {
    const select = $("label-filter");
    if (value && ![...select.options].some((o) => o.value === value)) {
      select.append(LK.el("option", { value, text: value })); // before the list comes
    }
    select.value = value;
  }
  async function loadLabels() {
    try {
      const doc = await api("GET", "/api/labels");
      const keep = $("label-filter").value;
      $("label-filter").replaceChildren(
        LK.el("option", { value: "", text: "any" }),
        ...doc.labels.map((l) => LK.el("option", { value: l.label, text: `${l.label} (${l.count})` }))
      );
      setLabelFilter(keep);
    } catch (e) {
      /* the label list is a convenience; the filter still works from the URL */
    }
  }
  // A new filter starts at page 1; Previous and Next move by one page.
  function again(pageNo) {
    if (lastText && !queryId && !libraryId) return searchText(lastText, true, pageNo);
    return search({ page: pageNo });
  }
  async function turn(pageNo) {
    await again(pageNo);
    $("search-filters").scrollIntoView({ block: "start" }); // the new page from its top
  }
  $("filter").addEventListener("change", () => again(1));
  $("label-filter").addEventListener("change", () => again(1));
  $("prev").addEventListener("click", () => turn(Math.max(1, page - 1)));
  $("next").addEventListener("click", () => turn(page + 1));
  loadLabels();

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
