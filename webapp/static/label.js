// The label-next page: the queue of /api/labels/next, one image at a time, by keyboard
// or by tapping. Keys (when the text box is empty): 1-9 take a suggestion, x skips, u
// undoes the last step; typing searches the labels (or makes a new one) and Enter
// accepts it (Enter on an empty box takes the first suggestion). The suggestions, Skip,
// Undo and Label are buttons too. Skipped images are sent back as the queue's `skip`, so
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
    delete $("label-next").dataset.imageId;
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
    delete input.dataset.clicked; // each image starts with the single keys on
    if (!item) return showEmpty();
    $("ln-empty").hidden = true;
    $("ln-image").hidden = false;
    $("ln-image").src = `/api/images/${item.id}/preview`;
    $("ln-image").alt = item.path;
    $("ln-caption").textContent = item.path;
    $("label-next").dataset.imageId = String(item.id);
    const box = $("ln-suggestions");
    box.replaceChildren(
      ...item.suggestions.slice(0, 9).map((s, i) =>
        el(
          "li",
          {},
          el(
            "button",
            { type: "button", class: "ln-choice", title: `label it “${s.label}” (${i + 1})`, onclick: () => accept(s.label) },
            el("kbd", { text: String(i + 1) }),
            el("span", { class: "name", text: s.label }),
            el("span", { class: "conf", text: percent(s.confidence) })
          )
        )
      )
    );
    if (!item.suggestions.length) box.append(el("li", { class: "muted", text: "no suggestion: type a label" }));
    status();
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

  // Enter or Label: the typed label, else the first suggestion; false when neither.
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

  async function accept(label) {
    if (!current || !label) return;
    const item = current;
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
  }

  function skip() {
    if (!current) return;
    history.push({ item: current, undo: null });
    done.add(current.id);
    skipped.delete(current.id); // re-added last: the most recent skips are sent
    skipped.add(current.id);
    advance();
  }

  async function undo() {
    const last = history.pop();
    if (!last) return toast("nothing to undo", "info");
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

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const empty = input.value === "";
    if (event.key === "Enter") {
      event.preventDefault();
      acceptTyped();
      return;
    }
    if (event.key === "Escape") {
      input.value = "";
      return;
    }
    if (!empty || (event.target === input && input.dataset.clicked)) return; // typing a label
    if (/^[1-9]$/.test(event.key)) {
      event.preventDefault();
      const s = current && current.suggestions[Number(event.key) - 1];
      if (s) accept(s.label);
    } else if (event.key === "x") {
      event.preventDefault();
      skip();
    } else if (event.key === "u") {
      event.preventDefault();
      undo();
    } else if (event.key.length === 1 && document.activeElement !== input) {
      input.focus(); // the key lands in the box: typing searches the labels
    }
  });

  $("ln-skip").addEventListener("click", skip);
  $("ln-undo").addEventListener("click", undo);
  $("ln-save").addEventListener("click", () => {
    if (!acceptTyped()) toast("type a label first", "info");
  });

  // A click into the box means "I am typing": digits, x and u go into it as text.
  input.addEventListener("mousedown", () => (input.dataset.clicked = "1"));
  input.addEventListener("blur", () => delete input.dataset.clicked);
  loadLabels();
  refill();
  if (!current) showEmpty(); // "loading" until the first answer
  if (!window.matchMedia("(hover: none), (pointer: coarse)").matches) input.focus(); // no pop-up keyboard
})();
