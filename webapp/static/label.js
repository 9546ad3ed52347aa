// The label-next page: the queue of /api/labels/next, one image at a time, by keyboard
// or by tapping. Outside the text box, keys are shortcuts: 1-9 take a suggestion, x
// skips, u undoes the last step, Enter takes the first suggestion (on a focused button,
// Enter and Space press that button), and any other letter starts typing in the box.
// In the box every key is text: Enter labels with the typed text (an empty box: the
// first suggestion), Escape leaves the box. The suggestions, Skip, Undo and Label are
// buttons too. One step at a time: while a label or an undo is on its way, and until
// the next image is on screen, label and skip input is ignored (a double Enter never
// labels an image nobody saw). Skipped images are sent back as the queue's `skip`, so
// the server serves the next ones rather than the same top of the queue. Every few
// labels the tagger runs in the background and the queue is fetched again, so it
// follows what was just learnt.
"use strict";

(() => {
  const { api, el, toast, percent, plural } = LK;
  const $ = (id) => document.getElementById(id);
  const input = $("ln-input");
  const RETAG_EVERY = 5;
  const BATCH = 20; // images a refill asks for
  const MAX_SKIP = 1000; // the most recent skips sent (the API's limit)
  let queue = [];
  let current = null;
  const done = new Set(); // ids labelled or skipped on this page
  const skipped = new Set(); // ids skipped on this page, oldest first
  const history = []; // {item, undo}: undo null for a skip
  let sinceTag = 0;
  let tagging = false;
  let labelled = 0;
  let more = true; // the server may hold images beyond the queue fetched
  let loading = null; // the refill in flight
  let again = false; // another refill was asked for meanwhile
  let skippedLeft = 0; // skipped images the last answer left out
  let busy = false; // a label or an undo is on its way
  let ready = false; // the current image is on screen (its preview loaded)

  function status(extra = "") {
    const left = queue.length + (current ? 1 : 0);
    const parts = [`${labelled} labelled here`, `${left}${more && left ? "+" : ""} in the queue`];
    if (skipped.size) parts.push(`${skipped.size} skipped`);
    if (tagging) parts.push("tagging…");
    if (extra) parts.push(extra);
    $("ln-status").textContent = parts.join(" · ");
  }

  // No image to show: loading, everything left skipped (start over), or truly nothing.
  function showEmpty() {
    const note = $("ln-empty");
    $("ln-image").removeAttribute("src");
    $("ln-image").alt = "";
    $("ln-image").hidden = true;
    $("ln-caption").textContent = "";
    $("ln-suggestions").replaceChildren();
    $("ln-reason").textContent = "";
    delete $("label-next").dataset.imageId;
    ready = false;
    if (loading) $("label-next").setAttribute("aria-busy", "true");
    else $("label-next").removeAttribute("aria-busy");
    if (loading) {
      note.replaceChildren("Loading the next images…");
    } else if (skippedLeft > 0) {
      note.replaceChildren(
        `You skipped every image left to label (${plural(skippedLeft, "image")}). `,
        el("button", { type: "button", id: "ln-restart", onclick: startOver }, "Start over with the skipped images")
      );
    } else {
      note.replaceChildren("Nothing to label: every image has a label.");
    }
    note.hidden = false;
    status();
  }

  function show(item) {
    current = item;
    input.value = "";
    if (!item) return showEmpty();
    $("ln-empty").hidden = true;
    const image = $("ln-image");
    image.hidden = false;
    setReady(false);
    image.src = `/api/images/${item.id}/preview`;
    image.alt = item.path;
    if (image.complete) setReady(true); // already decoded (an undo brings it back)
    $("ln-caption").textContent = item.path;
    $("label-next").dataset.imageId = String(item.id);
    $("ln-reason").textContent = item.reason ? `Why this image: ${item.reason}` : "";
    const box = $("ln-suggestions");
    box.replaceChildren(...item.suggestions.slice(0, 9).map((s, i) => choice(s, i)));
    if (!item.suggestions.length) box.append(el("li", { class: "muted", text: "no suggestion: type a label" }));
    status();
  }

  // One suggestion: its key, its label, how alike the image is to that label's nearest
  // image (the one measure every suggestion has, best first), and, on the tagger's own
  // answer, the tagger's confidence in it.
  function choice(s, i) {
    const alike = typeof s.similarity === "number" ? `${s.similarity.toFixed(2)} alike` : "";
    const tagger = typeof s.tag_confidence === "number" ? `tagger’s guess, ${percent(s.tag_confidence)} sure` : "";
    const title =
      `label it “${s.label}” (${i + 1}${i === 0 ? " or Enter" : ""})` +
      (alike ? `; similarity ${s.similarity.toFixed(2)} to the nearest image labelled so (1 is the same picture)` : "") +
      (tagger ? `; the last tagging run’s answer, ${percent(s.tag_confidence)} likely right` : "");
    return el(
      "li",
      {},
      el(
        "button",
        { type: "button", class: "ln-choice", title, onclick: () => accept(s.label) },
        el("kbd", { text: String(i + 1) }),
        el("span", { class: "name", text: s.label }),
        tagger ? el("span", { class: "chip predicted tagger", text: tagger }) : null,
        el("span", { class: "conf", text: alike })
      )
    );
  }

  // Label and skip input counts only once the image is on screen and no step is on its way.
  function setReady(on) {
    ready = on;
    if (!on || busy) $("label-next").setAttribute("aria-busy", "true");
    else $("label-next").removeAttribute("aria-busy");
  }
  function acting() {
    return Boolean(current) && ready && !busy;
  }

  // The next image of the queue fetched (never fetches).
  function next() {
    while (queue.length && done.has(queue[0].id)) queue.shift();
    show(queue.shift() || null);
  }

  // On to the next image; refills first when the queue runs low, or runs out (the
  // answer then says whether only skipped images are left).
  function advance() {
    while (queue.length && done.has(queue[0].id)) queue.shift();
    if (!queue.length || (queue.length < 3 && more)) refill();
    next();
  }

  // One refill at a time; one asked for meanwhile runs after it, with the newest skips.
  function refill() {
    if (loading) {
      again = true;
      return loading;
    }
    loading = (async () => {
      try {
        do {
          again = false;
          const skip = [...skipped].slice(-MAX_SKIP);
          const doc = await api("GET", `/api/labels/next?n=${BATCH}${skip.length ? `&skip=${skip.join(",")}` : ""}`);
          more = doc.queue.length >= BATCH;
          skippedLeft = doc.skipped || 0;
          queue = doc.queue.filter((q) => !done.has(q.id) && (!current || q.id !== current.id));
        } while (again);
      } catch (e) {
        more = false; // no retry loop; the next label, skip or undo asks again
        toast(e.message, "error");
      } finally {
        loading = null;
      }
      if (!current) next();
      status();
    })();
    return loading;
  }

  // Enter or Label: the typed label, else (an empty or blank box) the first suggestion;
  // false when neither.
  function acceptTyped() {
    const text = input.value.trim();
    if (text) accept(text);
    else if (current && current.suggestions.length) accept(current.suggestions[0].label);
    else return false;
    return true;
  }

  function startOver() {
    for (const id of skipped) done.delete(id);
    skipped.clear();
    more = true;
    refill();
    showEmpty();
  }

  async function loadLabels() {
    try {
      const doc = await api("GET", "/api/labels");
      $("ln-labels").replaceChildren(...doc.labels.map((l) => el("option", { value: l.label })));
    } catch (e) {
      /* suggestions only */
    }
  }

  // Runs `work` as the one step on its way (label and skip input ignored meanwhile).
  async function step(work) {
    busy = true;
    setReady(ready);
    try {
      await work();
    } finally {
      busy = false;
      setReady(ready);
    }
  }

  function accept(label) {
    if (!acting() || !label) return;
    const item = current;
    return step(async () => {
      try {
        const doc = await api("POST", "/api/labels/bulk", { action: "label", ids: [item.id], label });
        history.push({ item, undo: doc.undo });
        done.add(item.id);
        labelled += 1;
        sinceTag += 1;
        toast(`${item.path.split("/").pop()}: ${label}`, "ok");
        advance();
        if (sinceTag >= RETAG_EVERY) retag();
        loadLabels();
      } catch (e) {
        toast(e.message, "error");
      }
    });
  }

  function skip() {
    if (!acting()) return;
    history.push({ item: current, undo: null });
    done.add(current.id);
    skipped.delete(current.id); // re-added last: the most recent skips are sent
    skipped.add(current.id);
    advance();
  }

  function undo() {
    if (busy) return;
    if (!history.length) return toast("nothing to undo", "info");
    return step(undoLast);
  }

  async function undoLast() {
    const last = history.pop();
    try {
      let kept = false; // its label was changed since (on its page): left as it is
      if (last.undo) {
        const doc = await api("POST", "/api/labels/undo", { undo: last.undo });
        kept = doc.changed_since.length > 0;
        if (!kept) labelled -= 1;
      }
      if (kept) return toast("not undone: its label was changed since and was left as it is", "info");
      done.delete(last.item.id);
      skipped.delete(last.item.id);
      if (current) queue.unshift(current);
      show(last.item);
      toast(last.undo ? "label undone" : "skip undone", "ok");
    } catch (e) {
      toast(e.message, "error");
    }
  }

  async function retag() {
    if (tagging) return;
    tagging = true;
    sinceTag = 0;
    status();
    try {
      await api("POST", "/api/tag", {}); // the library's chosen head, with its clusters
      more = true;
      await refill();
    } catch (e) {
      status(e.message);
    } finally {
      tagging = false;
      status();
    }
  }

  // In the box every key is text (Enter labels, Escape leaves it); outside it the keys
  // are shortcuts, and a focused button or link keeps its own Enter and Space.
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      if (acting()) acceptTyped();
    } else if (event.key === "Escape") {
      event.preventDefault();
      input.blur();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.target === input) return;
    const onControl = event.target.closest && event.target.closest("button, a, input, select, textarea");
    if (event.key === "Enter" || event.key === " ") {
      if (onControl || event.key === " ") return; // that button's own action
      event.preventDefault();
      if (acting()) acceptTyped();
    } else if (/^[1-9]$/.test(event.key)) {
      event.preventDefault();
      const s = current && current.suggestions[Number(event.key) - 1];
      if (s) accept(s.label);
    } else if (event.key === "x") {
      event.preventDefault();
      skip();
    } else if (event.key === "u") {
      event.preventDefault();
      undo();
    } else if (event.key.length === 1) {
      input.focus(); // the key lands in the box: typing searches the labels
    }
  });

  $("ln-image").addEventListener("load", () => setReady(true));
  $("ln-image").addEventListener("error", () => setReady(true)); // no preview: the caption names it
  $("ln-skip").addEventListener("click", skip);
  $("ln-undo").addEventListener("click", undo);
  $("ln-save").addEventListener("click", () => {
    if (!acting()) return;
    if (!acceptTyped()) toast("type a label first", "info");
  });

  loadLabels();
  refill();
  if (!current) showEmpty(); // "loading" until the first answer
})();
