// Selection in every grid of image cards (search results, the library, clusters, tag
// results) and one bulk action on it, with one undo.
//
//   LKSelect.attach(grid, { matching, changed, at })
//     grid:     an element whose [data-id] children are image cards (links, or buttons
//               with their own click action for a plain click);
//     matching: optional async () => [ids]: every image the grid's query matches
//               ("select all matching"); without it that button selects the page;
//     changed:  optional () => void, called after an edit or its undo (reload the grid);
//     at:       optional element the bar goes before (default: the first grid).
//   LKSelect.action({ text, title, run })
//     one more bulk action on the bar, for a page's own kind of edit: run(ids) does it
//     and returns { message, undo } (undo: async () => message, or null).
//
// Click the tick of a card (or, once something is selected, anywhere on a card) to
// toggle it; Ctrl/Cmd-click toggles; Shift-click selects the range from the last
// card clicked; Escape clears. The ticks take the keyboard's focus (Tab): Space or
// Enter toggles one, Shift with it selects the range. One edit at a time: while one is
// on its way the bar's buttons are disabled, and an edit that changed nothing keeps
// the Undo of the last one that did. A `lookalike:select` CustomEvent on the document with
// detail {ids: [...]} replaces the selection (a map lasso can feed it).
"use strict";

const LKSelect = (() => {
  const { api, el, toast, plural } = LK;
  const selected = new Set();
  const grids = [];
  let anchor = null; // the card a Shift-click range starts from
  let active = null; // the grid last used: its options answer "select all matching"
  let lastUndo = null;
  let bar = null;
  let busy = false; // an edit or an undo is on its way
  const TOUCH = window.matchMedia("(hover: none), (pointer: coarse)"); // no Shift to hold

  function cardsOf(grid) {
    return [...grid.querySelectorAll("[data-id]")];
  }
  function idOf(card) {
    return Number(card.dataset.id);
  }

  function decorate(card) {
    if (!card.querySelector(":scope > .tick")) {
      card.prepend(el("span", { class: "tick", role: "checkbox", tabindex: "0", "aria-label": "select", title: "select (Shift: range, Ctrl/Cmd: add; Space or Enter when focused)" }));
    }
    const on = selected.has(idOf(card));
    card.classList.toggle("selected", on);
    card.querySelector(":scope > .tick").setAttribute("aria-checked", on ? "true" : "false");
  }

  function refresh() {
    for (const g of grids) cardsOf(g.grid).forEach(decorate);
    if (!bar) return;
    bar.hidden = !grids.some((g) => cardsOf(g.grid).length) && selected.size === 0 && !lastUndo;
    bar.querySelector(".sel-count").textContent = selected.size
      ? `${plural(selected.size, "image")} selected`
      : TOUCH.matches
        ? "Select: tap a tick"
        : "Select: click a tick, Shift-click a range";
    for (const b of bar.querySelectorAll("[data-needs-selection]")) b.disabled = busy || selected.size === 0;
    bar.querySelector(".sel-undo").hidden = !lastUndo;
    bar.querySelector(".sel-undo").disabled = busy;
    document.body.classList.toggle("selecting", selected.size > 0);
  }

  function setSelection(ids) {
    selected.clear();
    for (const id of ids) selected.add(Number(id));
    refresh();
  }

  // Runs in the capture phase: a click the selection takes (stopPropagation) never
  // reaches a card's own click action (a cluster member's "leave out").
  function onClick(g, event) {
    const card = event.target.closest("[data-id]");
    if (!card || !g.grid.contains(card)) return;
    const onTick = event.target.classList.contains("tick");
    if (!(onTick || event.ctrlKey || event.metaKey || selected.size > 0 || event.shiftKey)) {
      return; // a plain click with nothing selected opens the image (or its action)
    }
    event.preventDefault();
    event.stopPropagation();
    toggle(g, card, event.shiftKey);
  }

  // Space or Enter on a focused tick: what a click on it does (never the card's link).
  function onKey(g, event) {
    if (event.key !== " " && event.key !== "Enter") return;
    if (!event.target.classList.contains("tick")) return;
    const card = event.target.closest("[data-id]");
    if (!card || !g.grid.contains(card)) return;
    event.preventDefault();
    event.stopPropagation();
    toggle(g, card, event.shiftKey);
  }

  // Shift (with an anchor in this grid): the range from the anchor; else one card.
  function toggle(g, card, range) {
    active = g;
    if (range && anchor && g.grid.contains(anchor)) {
      const cards = cardsOf(g.grid);
      const [a, b] = [cards.indexOf(anchor), cards.indexOf(card)].sort((x, y) => x - y);
      for (const c of cards.slice(a, b + 1)) selected.add(idOf(c));
    } else {
      const id = idOf(card);
      if (selected.has(id)) selected.delete(id);
      else selected.add(id);
      anchor = card;
    }
    refresh();
  }

  // One edit or undo at a time (a double click sends one request): `work` runs with the
  // bar's buttons disabled.
  async function once(work) {
    if (busy) return;
    busy = true;
    refresh();
    try {
      await work();
    } finally {
      busy = false;
      refresh();
    }
  }

  function run(action, extra = {}) {
    return once(async () => {
      const ids = [...selected];
      if (!ids.length) return;
      try {
        const doc = await api("POST", "/api/labels/bulk", { action, ids, ...extra });
        const skipped = doc.skipped.length ? ` (${doc.skipped.length} without a suggestion)` : "";
        if (doc.changed === 0) {
          // Nothing to undo here: the Undo of the last real edit stays.
          toast(`Nothing changed: ${unchanged(action, ids.length)}${skipped}`, "info");
        } else {
          lastUndo = { token: doc.undo };
          toast(`${action === "remove" ? "Removed the labels of" : "Labelled"} ${plural(doc.changed, "image")}${skipped}`, "ok");
        }
        selected.clear();
        changed();
        loadLabels();
      } catch (e) {
        toast(e.message, "error");
      }
    });
  }

  function unchanged(action, n) {
    const them = n === 1 ? "the image" : `the ${n} images`;
    if (action === "remove") return `${them} had no label`;
    if (action === "accept") return `${them} had no suggestion to accept`;
    return `${them} had that label already`;
  }

  function undo() {
    return once(undoLast);
  }

  async function undoLast() {
    if (!lastUndo) return;
    try {
      if (lastUndo.run) {
        toast(await lastUndo.run(), "ok");
        lastUndo = null;
        changed();
        return;
      }
      const doc = await api("POST", "/api/labels/undo", { undo: lastUndo.token });
      const kept = doc.changed_since.length;
      const left = kept ? `; ${kept} ${kept === 1 ? "was" : "were"} changed since and ${kept === 1 ? "was" : "were"} left as ${kept === 1 ? "it is" : "they are"}` : "";
      toast(`Undone for ${plural(doc.restored, "image")}${left}`, kept ? "info" : "ok");
      lastUndo = null;
      changed();
      loadLabels();
    } catch (e) {
      toast(e.message, "error");
    }
  }

  function changed() {
    for (const g of grids) if (g.changed) g.changed();
  }

  async function loadLabels() {
    try {
      const doc = await api("GET", "/api/labels");
      bar.querySelector("datalist").replaceChildren(...doc.labels.map((l) => el("option", { value: l.label })));
    } catch (e) {
      /* the datalist is a convenience */
    }
  }

  function build() {
    const input = el("input", { class: "sel-label", list: "sel-labels", placeholder: "label", "aria-label": "label for the selected images", autocomplete: "off" });
    const label = () => {
      const text = input.value.trim();
      if (!text) return toast("type a label first", "error");
      run("label", { label: text });
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") label();
    });
    bar = el(
      "div",
      { class: "select-bar", role: "toolbar", "aria-label": "selection", hidden: true },
      el("span", { class: "sel-count" }),
      el("button", { type: "button", class: "secondary sel-page", text: "All on page", onclick: () => selectPage() }),
      el("button", { type: "button", class: "secondary sel-all", text: "All matching", onclick: () => selectMatching() }),
      input,
      el("datalist", { id: "sel-labels" }),
      el("button", { type: "button", class: "sel-apply", "data-needs-selection": true, text: "Label", onclick: label }),
      el("button", { type: "button", class: "secondary sel-remove", "data-needs-selection": true, text: "Remove label", onclick: () => run("remove") }),
      el("button", { type: "button", class: "secondary sel-accept", "data-needs-selection": true, text: "Accept suggestions", onclick: () => run("accept") }),
      el("button", { type: "button", class: "secondary sel-clear", text: "Clear", onclick: () => setSelection([]) }),
      el("button", { type: "button", class: "sel-undo", text: "Undo", hidden: true, onclick: undo })
    );
    for (const button of extraActions) bar.querySelector(".sel-clear").before(button);
    loadLabels();
  }

  const extraActions = [];
  function action(spec) {
    const button = el("button", {
      type: "button",
      class: "secondary sel-extra",
      "data-needs-selection": true,
      title: spec.title,
      text: spec.text,
      onclick: () =>
        once(async () => {
          try {
            const done = await spec.run([...selected]);
            // Nothing done (undo null): the Undo of the last edit stays.
            if (done.undo) lastUndo = { run: done.undo };
            toast(done.message, done.undo ? "ok" : "info");
            selected.clear();
            changed();
          } catch (e) {
            toast(e.message, "error");
          }
        }),
    });
    extraActions.push(button);
    if (bar) bar.querySelector(".sel-clear").before(button);
  }

  function selectPage() {
    const g = active || grids[0];
    if (g) for (const c of cardsOf(g.grid)) selected.add(idOf(c));
    refresh();
  }

  async function selectMatching() {
    const g = active || grids[0];
    if (!g) return;
    if (!g.matching) return selectPage();
    try {
      for (const id of await g.matching()) selected.add(Number(id));
    } catch (e) {
      toast(e.message, "error");
    }
    refresh();
  }

  function attach(grid, options = {}) {
    const g = { grid, matching: options.matching, changed: options.changed };
    grids.push(g);
    if (!bar) {
      build();
      (options.at || grid).before(bar); // a toolbar above the grids, sticky under the header
    }
    grid.addEventListener("click", (event) => onClick(g, event), true);
    grid.addEventListener("keydown", (event) => onKey(g, event), true);
    new MutationObserver(refresh).observe(grid, { childList: true });
    if (!active) active = g;
    refresh();
    return g;
  }

  document.addEventListener("lookalike:select", (event) => {
    const ids = event.detail && Array.isArray(event.detail.ids) ? event.detail.ids : [];
    setSelection(ids);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && selected.size) setSelection([]);
  });

  function detach(grid) {
    const at = grids.findIndex((g) => g.grid === grid);
    if (at >= 0) grids.splice(at, 1);
    if (active && active.grid === grid) active = grids[0] || null;
    refresh();
  }

  // Forget the Undo offered (a page whose later step made it stale: a cluster decision).
  function forgetUndo() {
    lastUndo = null;
    refresh();
  }

  return { attach, detach, action, selected: () => [...selected], select: setSelection, undo, forgetUndo };
})();
