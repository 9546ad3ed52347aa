// The image page's boxes: draw one with the mouse or a finger (pointer events), label
// it, move it, resize it by its corner handles, delete it (button or the Delete key; the
// message offers Undo), accept the suggested main-object box (dashed), search with a
// box. The list's items take the keyboard's focus (Enter or Space selects). One save at
// a time (a double Enter sends one request), and after a save or a delete the page
// shows the boxes the server holds. Boxes are kept in
// the image's pixels as indexed (the listing's width x height); the picture is shown
// scaled, and every pointer position is mapped back through the stage's size.
"use strict";

const LKBoxes = (() => {
  const { api, el, toast } = LK;
  const CLICK_PX = 6; // a drag shorter than this many screen pixels is a click
  const CORNERS = ["nw", "ne", "sw", "se"];

  function attach(parts) {
    const { stage, img, layer, form, input, list, note, save, searchButton, remove, imageId } = parts;
    let image = null; // {id, width, height, hash}
    let boxes = []; // {id (null: not saved), box: [x0, y0, x1, y1], label, origin, stale}
    let selected = null;
    let drag = null;
    let saving = false; // a write is on its way

    // -- the picture at the column's width (at most 70% of the window's height) ----
    function fit() {
      const w = image ? image.width : img.naturalWidth;
      const h = image ? image.height : img.naturalHeight;
      if (!w || !h) return;
      const frame = stage.parentElement;
      const style = getComputedStyle(frame);
      // Measured without the picture: its old size must not hold the column open when
      // the window narrows.
      img.style.width = img.style.height = "0px";
      const room = frame.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      const scale = Math.min(room / w, (window.innerHeight * 0.7) / h);
      img.style.width = `${Math.max(1, Math.floor(w * scale))}px`;
      img.style.height = `${Math.max(1, Math.floor(h * scale))}px`;
    }

    function at(event) {
      const r = stage.getBoundingClientRect();
      const x = ((event.clientX - r.left) / r.width) * image.width;
      const y = ((event.clientY - r.top) / r.height) * image.height;
      return [Math.min(Math.max(x, 0), image.width), Math.min(Math.max(y, 0), image.height)];
    }

    // -- drawing ----------------------------------------------------------------
    function tagText(entry) {
      if (entry.id === null) return entry.label || "new box: label it";
      if (entry.origin === "suggested") return entry.label || "suggested: accept or adjust";
      return entry.stale ? `${entry.label} (image changed)` : entry.label;
    }

    function kind(entry) {
      if (entry.id === null) return "draft";
      return entry.stale ? "stale" : entry.origin;
    }

    const TAG_PX = 20; // the height a box's tag takes above it

    function render() {
      layer.replaceChildren(
        ...boxes.map((entry) => {
          const [x0, y0, x1, y1] = entry.box;
          // A box at the picture's top edge has its tag inside, not over the frame.
          const inside = (y0 / image.height) * stage.clientHeight < TAG_PX;
          const node = el(
            "div",
            {
              class: `bx ${kind(entry)}${entry === selected ? " on" : ""}${inside ? " tag-inside" : ""}`,
              "data-box": entry.id === null ? "new" : String(entry.id),
              title: tagText(entry),
            },
            el("span", { class: "bx-tag", text: tagText(entry) }),
            ...CORNERS.map((c) => el("span", { class: `handle ${c}`, "data-corner": c }))
          );
          Object.assign(node.style, {
            left: `${(x0 / image.width) * 100}%`,
            top: `${(y0 / image.height) * 100}%`,
            width: `${((x1 - x0) / image.width) * 100}%`,
            height: `${((y1 - y0) / image.height) * 100}%`,
          });
          node.entry = entry;
          return node;
        })
      );
      const listFocused = list.contains(document.activeElement);
      list.replaceChildren(
        ...boxes.map((entry) => {
          const item = el(
            "li",
            {
              class: entry === selected ? "on" : "",
              tabindex: "0",
              role: "button",
              "aria-pressed": entry === selected ? "true" : "false",
              title: `${tagText(entry)}: select it (Enter)`,
              onclick: () => select(entry),
              onkeydown: (event) => {
                if (event.key !== "Enter" && event.key !== " ") return;
                event.preventDefault();
                select(entry);
              },
            },
            el("span", { class: `chip ${entry.origin === "human" && !entry.stale ? "human" : "none"}`, text: tagText(entry) }),
            el("span", { class: "coords", text: entry.box.join(", ") })
          );
          item.entry = entry;
          return item;
        })
      );
      if (!boxes.length) list.replaceChildren(el("li", { class: "muted", text: "none yet" }));
      if (listFocused) {
        // The list was redrawn under the keyboard's focus: keep it on the selected box.
        const on = [...list.children].find((li) => li.entry === selected) || list.firstElementChild;
        if (on && on.tabIndex >= 0) on.focus();
      }
      form.hidden = !selected;
      if (selected) {
        save.textContent = selected.id === null ? "Save box" : selected.origin === "suggested" ? "Accept" : "Relabel box";
        note.textContent =
          selected.origin === "suggested"
            ? "The main object, as the model found it: adjust it, give a label, Accept."
            : selected.stale
              ? "Drawn on earlier content of this image: move it onto the new content or delete it."
              : "";
      }
    }

    function select(entry) {
      if (selected && selected.id === null && selected !== entry) boxes = boxes.filter((b) => b !== selected);
      selected = entry;
      if (entry) input.value = entry.label || "";
      render();
      if (entry && (entry.id === null || entry.origin === "suggested")) input.focus();
    }

    function clampMove(box, dx, dy) {
      const w = box[2] - box[0];
      const h = box[3] - box[1];
      const x0 = Math.min(Math.max(box[0] + dx, 0), image.width - w);
      const y0 = Math.min(Math.max(box[1] + dy, 0), image.height - h);
      return [x0, y0, x0 + w, y0 + h];
    }

    function resized(box, corner, [x, y]) {
      const out = box.slice();
      if (corner.includes("w")) out[0] = x;
      if (corner.includes("e")) out[2] = x;
      if (corner.includes("n")) out[1] = y;
      if (corner.includes("s")) out[3] = y;
      return [Math.min(out[0], out[2]), Math.min(out[1], out[3]), Math.max(out[0], out[2]), Math.max(out[1], out[3])];
    }

    const whole = (box) => box.map(Math.round);

    stage.addEventListener("pointerdown", (event) => {
      if (!image || event.button > 0) return;
      event.preventDefault();
      const corner = event.target.closest(".handle");
      const node = event.target.closest(".bx");
      const start = at(event);
      const screen = [event.clientX, event.clientY];
      if (node && (node.entry === selected || corner)) {
        // The selected box moves by its body and resizes by its corners.
        const entry = node.entry;
        drag = { mode: corner ? corner.dataset.corner : "move", entry, start, from: entry.box.slice(), screen };
      } else {
        // Elsewhere (another box too, as a whole-image suggestion covers everything) a
        // drag draws a new box; a click selects the box under the pointer.
        const entry = { id: null, box: [...start, ...start], label: "", origin: "human", stale: false };
        if (selected && selected.id === null) boxes = boxes.filter((b) => b !== selected);
        boxes.push(entry);
        selected = entry;
        const under = node ? node.entry : null;
        drag = { mode: "draw", entry, start, from: entry.box.slice(), screen, under };
      }
      stage.setPointerCapture(event.pointerId);
    });

    stage.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const p = at(event);
      const { entry, start, from, mode } = drag;
      if (mode === "draw") entry.box = [Math.min(start[0], p[0]), Math.min(start[1], p[1]), Math.max(start[0], p[0]), Math.max(start[1], p[1])];
      else if (mode === "move") entry.box = clampMove(from, p[0] - start[0], p[1] - start[1]);
      else entry.box = resized(from, mode, p);
      entry.box = whole(entry.box);
      render();
    });

    function finish(event) {
      if (!drag) return;
      const { entry, from, mode, screen, under } = drag;
      drag = null;
      const moved = Math.hypot(event.clientX - screen[0], event.clientY - screen[1]) >= CLICK_PX;
      const [x0, y0, x1, y1] = entry.box;
      if (mode === "draw") {
        if (!moved || x1 - x0 < 1 || y1 - y0 < 1) {
          boxes = boxes.filter((b) => b !== entry); // a click: nothing drawn
          selected = null;
          select(under || null);
          return;
        }
        render();
        input.value = "";
        input.focus();
        return;
      }
      if (!moved || x1 - x0 < 1 || y1 - y0 < 1) {
        entry.box = from;
        render();
        return;
      }
      const message = mode === "move" ? "Box moved" : "Box resized";
      if (entry.id !== null && entry.origin === "human") patch(entry, { box: entry.box }, message, from);
      else render();
    }
    stage.addEventListener("pointerup", finish);
    stage.addEventListener("pointercancel", (event) => {
      if (drag && drag.mode !== "draw") drag.entry.box = drag.from;
      finish(event);
    });

    // -- saving -----------------------------------------------------------------
    function fromServer(entry, doc) {
      Object.assign(entry, { id: doc.id, box: doc.box, label: doc.label, origin: doc.origin, stale: doc.stale });
    }

    // One write at a time: `work` runs with the form's buttons disabled.
    async function writing(work) {
      if (saving) return;
      saving = true;
      for (const b of form.querySelectorAll("button")) b.disabled = true;
      try {
        await work();
      } finally {
        saving = false;
        for (const b of form.querySelectorAll("button")) b.disabled = false;
      }
    }

    async function patch(entry, body, message, undoBox) {
      try {
        const doc = await api("PATCH", `/api/images/${imageId}/boxes/${entry.id}`, { ...body, hash: image.hash });
        fromServer(entry, doc.box);
        toast(typeof message === "function" ? message(doc.box) : message, "ok");
      } catch (e) {
        if (undoBox) entry.box = undoBox;
        toast(e.message, "error");
      }
      render();
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const entry = selected;
      const label = input.value.trim();
      if (!entry || saving) return;
      if (!label) {
        toast("Give the box a label first", "error");
        input.focus();
        return;
      }
      writing(async () => {
        if (entry.id === null) {
          try {
            const doc = await api("POST", `/api/images/${imageId}/boxes`, { box: entry.box, label, hash: image.hash });
            fromServer(entry, doc.box);
            toast(`Box labelled “${doc.box.label}”`, "ok");
          } catch (e) {
            toast(e.message, "error");
          }
          await sync();
          return;
        }
        const accepting = entry.origin === "suggested";
        await patch(entry, { box: entry.box, label }, (box) => (accepting ? `Accepted as “${box.label}”` : `Box labelled “${box.label}”`));
      });
    });

    // Delete at once; a person's box comes back with the message's Undo (saved again,
    // as a new box with the same place and label).
    function deleteSelected() {
      const entry = selected;
      if (!entry || saving) return;
      if (entry.id === null) {
        boxes = boxes.filter((b) => b !== entry);
        selected = null;
        render();
        return;
      }
      writing(async () => {
        try {
          await api("DELETE", `/api/images/${imageId}/boxes/${entry.id}`);
        } catch (e) {
          toast(e.message, "error");
          return;
        }
        selected = null;
        await sync();
        if (entry.origin === "human" && !entry.stale) {
          toast(`Box “${entry.label}” deleted`, "ok", { text: "Undo", run: () => restore(entry) });
        } else {
          toast(entry.origin === "suggested" ? "Suggestion dismissed" : "Box deleted", "ok");
        }
      });
    }
    remove.addEventListener("click", deleteSelected);

    function restore(entry) {
      writing(async () => {
        try {
          const doc = await api("POST", `/api/images/${imageId}/boxes`, { box: entry.box, label: entry.label, hash: image.hash });
          toast(`Box “${doc.box.label}” back`, "ok");
        } catch (e) {
          toast(e.message, "error");
        }
        await sync();
      });
    }

    // The boxes as the server holds them (the selection kept by id); an unsaved draft stays.
    async function sync() {
      const keep = selected ? selected.id : null;
      const draft = selected && selected.id === null ? selected : null; // one at a time
      try {
        const doc = await api("GET", `/api/images/${imageId}/boxes`);
        image = doc.image;
        boxes = doc.boxes.map((b) => ({ ...b }));
      } catch (e) {
        toast(e.message, "error");
      }
      if (draft) boxes.push(draft);
      selected = draft || boxes.find((b) => keep !== null && b.id === keep) || null;
      render();
    }

    searchButton.addEventListener("click", () => {
      if (!selected) return;
      const params = new URLSearchParams({ image: String(imageId), box: selected.box.join(",") });
      location.href = `/?${params}`;
    });

    document.addEventListener("keydown", (event) => {
      const typing = event.target && ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName);
      if (typing || !selected) return;
      if (event.key === "Delete") {
        event.preventDefault();
        deleteSelected();
      } else if (event.key === "Escape") {
        select(null);
      }
    });

    // -- loading ------------------------------------------------------------------
    async function load() {
      let doc;
      try {
        doc = await api("GET", `/api/images/${imageId}/boxes`);
      } catch (e) {
        toast(e.message, "error");
        return;
      }
      image = doc.image;
      boxes = doc.boxes.map((b) => ({ ...b }));
      fit();
      render();
      if (!boxes.length && doc.can_suggest && !doc.suggestion_dismissed) {
        // The main object as a pre-annotation (stored as a suggested box; a read-only
        // library refuses it, and the page simply offers none).
        try {
          const found = await api("POST", `/api/images/${imageId}/boxes/suggest`);
          // box null: no main object apart from the whole picture, nothing to suggest
          if (found.box && !boxes.some((b) => b.id === found.box.id)) boxes.push({ ...found.box });
          render();
        } catch (e) {
          /* no suggestion: drawing still works */
        }
      }
    }
    img.addEventListener("load", fit);
    window.addEventListener("resize", fit);
    load();
  }

  return { attach };
})();
