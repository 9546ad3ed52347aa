// The label-next page: the queue of /api/labels/next, one image at a time, by keyboard.
// Keys (when the text box is empty): 1-9 take a suggestion, x skips, u undoes the last
// step; typing searches the labels (or makes a new one) and Enter accepts it (Enter on
// an empty box takes the first suggestion). Every few labels the tagger runs in the
// background and the queue is fetched again, so it follows what was just learnt.
"use strict";

(() => {
  const { api, el, toast, percent } = LK;
  const $ = (id) => document.getElementById(id);
  const input = $("ln-input");
  const RETAG_EVERY = 5;
  let queue = [];
  let current = null;
  const done = new Set(); // ids labelled or skipped on this page
  const history = []; // {item, undo}: undo null for a skip
  let sinceTag = 0;
  let tagging = false;
  let labelled = 0;

  function status(extra = "") {
    const left = queue.length + (current ? 1 : 0);
    $("ln-status").textContent = `${labelled} labelled here · ${left} in the queue${tagging ? " · tagging…" : ""}${extra ? ` · ${extra}` : ""}`;
  }

  function show(item) {
    current = item;
    input.value = "";
    delete input.dataset.clicked; // each image starts with the single keys on
    const box = $("ln-suggestions");
    if (!item) {
      $("ln-image").removeAttribute("src");
      $("ln-image").alt = "";
      $("ln-caption").textContent = "Nothing to label: every image has a label (or the queue is empty).";
      box.replaceChildren();
      status();
      return;
    }
    $("ln-image").src = `/api/images/${item.id}/preview`;
    $("ln-image").alt = item.path;
    $("ln-caption").textContent = item.path;
    document.getElementById("label-next").dataset.imageId = String(item.id);
    box.replaceChildren(
      ...item.suggestions.slice(0, 9).map((s, i) =>
        el("li", {}, el("kbd", { text: String(i + 1) }), el("span", { class: "name", text: s.label }), el("span", { class: "conf", text: percent(s.confidence) }))
      )
    );
    if (!item.suggestions.length) box.append(el("li", { class: "muted", text: "no suggestion: type a label" }));
    status();
  }

  function advance() {
    while (queue.length && done.has(queue[0].id)) queue.shift();
    show(queue.shift() || null);
    if (queue.length < 3) refill();
  }

  async function refill() {
    try {
      const doc = await api("GET", "/api/labels/next?n=20");
      queue = doc.queue.filter((q) => !done.has(q.id) && (!current || q.id !== current.id));
      if (!current) advance();
      status();
    } catch (e) {
      toast(e.message, "error");
    }
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
      const text = input.value.trim();
      if (text) accept(text);
      else if (current && current.suggestions.length) accept(current.suggestions[0].label);
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

  // A click into the box means "I am typing": digits, x and u go into it as text.
  input.addEventListener("mousedown", () => (input.dataset.clicked = "1"));
  input.addEventListener("blur", () => delete input.dataset.clicked);
  loadLabels();
  refill();
  input.focus();
})();
