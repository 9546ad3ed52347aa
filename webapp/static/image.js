// The image page: the image, its human label, predicted tag and suggestions, the
// buttons that accept, fix or remove them, its boxes (static/boxes.js), and its
// look-alikes.
"use strict";

(() => {
  const { api, card, el, toast, tagTitle, percent, origin } = LK;
  const $ = (id) => document.getElementById(id);
  const id = Number($("image-page").dataset.imageId);
  let current = null;

  function render(doc) {
    current = doc;
    $("preview").src = doc.preview_url;
    $("preview").alt = doc.name;
    $("name").textContent = doc.name;
    $("caption").textContent = `${doc.path} · ${doc.width}×${doc.height}`;
    $("file-link").href = doc.file_url;
    $("offline-note").hidden = !doc.offline;
    $("hidden-note").hidden = !doc.hidden;

    const label = $("label");
    if (doc.label) {
      label.replaceChildren(
        el("span", { class: "chip human", text: doc.label.label }),
        el("span", { class: "muted", text: ` ${origin(doc.label.origin)}` })
      );
    } else {
      label.replaceChildren(el("span", { class: "muted", text: "none yet" }));
    }
    $("remove-label").hidden = !doc.label;

    const tag = $("tag");
    const hasTag = Boolean(doc.tag);
    if (hasTag) {
      const unknown = doc.tag.label === null;
      const title = tagTitle(doc.tag);
      tag.replaceChildren(
        el("span", { class: unknown ? "chip unknown" : "chip predicted", title, text: unknown ? "unknown" : doc.tag.label }),
        el("span", {
          class: "muted",
          title,
          text: unknown
            ? ` ${percent(doc.tag.confidence)} likely of none of your labels (${doc.tag.head} head)`
            : ` ${percent(doc.tag.confidence)} likely right (${doc.tag.head} head)`,
        })
      );
    } else {
      tag.replaceChildren(el("span", { class: "muted", text: "not tagged" }));
    }
    const acceptable = hasTag && doc.tag.label !== null && (!doc.label || doc.label.label !== doc.tag.label);
    $("accept-tag").hidden = !acceptable;
    $("accept-tag").textContent = acceptable ? `Accept “${doc.tag.label}”` : "Accept tag";
    $("dismiss-tag").hidden = !hasTag;

    const chips = doc.suggestions.map((s) =>
      el("button", {
        type: "button",
        class: "chip suggestion",
        title: `use “${s.label}” as the label`,
        text: `${s.label} ${percent(s.score)}`,
        onclick: () => change("PUT", `/api/images/${id}/label`, { label: s.label }, labelled),
      })
    );
    $("suggestions").replaceChildren(...(chips.length ? chips : [el("span", { class: "muted", text: "none" })]));
  }

  // The label as the library stored it (its spelling: full-width letters become ASCII,
  // a label of another case takes the existing one's).
  const labelled = (doc) => `Labelled “${doc.label ? doc.label.label : ""}”`;

  // `message`: text, or a function of the server's answer. True when it succeeded.
  async function change(method, url, body, message) {
    try {
      const doc = await api(method, url, body);
      render(doc);
      toast(typeof message === "function" ? message(doc) : message, "ok");
      return true;
    } catch (e) {
      toast(e.message, "error");
      return false;
    }
  }

  $("accept-tag").addEventListener("click", () =>
    change("POST", `/api/images/${id}/tag/accept`, undefined, labelled)
  );
  $("dismiss-tag").addEventListener("click", () =>
    change("DELETE", `/api/images/${id}/tag`, undefined, "Tag dismissed")
  );
  $("remove-label").addEventListener("click", () =>
    change("DELETE", `/api/images/${id}/label`, undefined, "Label removed")
  );
  $("unhide").addEventListener("click", async () => {
    try {
      await api("PUT", `/api/images/${id}/hidden`, { hidden: false });
      render(await api("GET", `/api/images/${id}`));
      toast("Shown again in results", "ok");
    } catch (e) {
      toast(e.message, "error");
    }
  });
  $("fix-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const label = $("fix-label").value.trim();
    if (!label) {
      toast("type a label first", "info");
      $("fix-label").focus();
      return;
    }
    change("PUT", `/api/images/${id}/label`, { label }, labelled).then((ok) => {
      if (ok) $("fix-label").value = "";
    });
  });

  async function load() {
    try {
      render(await api("GET", `/api/images/${id}`));
    } catch (e) {
      toast(e.message, "error");
      return;
    }
    try {
      const [similar, labels] = await Promise.all([
        api("GET", `/api/images/${id}/similar?k=12`),
        api("GET", "/api/labels"),
      ]);
      $("similar").replaceChildren(...similar.results.map((r) => card(r)));
      $("label-list").replaceChildren(...labels.labels.map((l) => el("option", { value: l.label })));
    } catch (e) {
      toast(e.message, "error");
    }
  }
  LKSelect.attach($("similar"), { changed: load }); // bulk-label the look-alikes (static/select.js)
  LKBoxes.attach({
    // draw, label, move, resize, delete and search with boxes (static/boxes.js)
    stage: $("box-stage"),
    img: $("preview"),
    layer: $("box-layer"),
    form: $("box-form"),
    input: $("box-label"),
    list: $("box-list"),
    note: $("box-note"),
    save: $("box-save"),
    searchButton: $("box-search"),
    remove: $("box-delete"),
    imageId: id,
  });
  load();
})();
