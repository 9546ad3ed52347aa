// The clusters page: one card per proposal (new categories first, then one per
// existing label), every member visible page by page, members left out before a
// decision, and the primary action following the evidence: Merge into the nearest
// label above the measured similarity, else Accept with a name the user types.
// The members grids share the selection bar (static/select.js): label, remove labels or
// leave out the selected members in one step, with one undo. The open cluster and its
// members page are in the URL (?cluster=ID&offset=N): a reload or a link opens it again.
"use strict";

(() => {
  const { api, el, toast } = LK;
  const $ = (id) => document.getElementById(id);
  const list = $("clusters");
  const status = $("status");
  const PAGE = 24;
  let labels = [];
  let mergeAbove = 0.8;
  const memberOf = new Map(); // image id -> its cluster card's owner, {excluded, update} (one per card)
  let grids = []; // the members grids attached to the selection bar

  // -- the open cluster in the URL (replaceState: opening one is not a navigation) --------
  function writeURL(clusterId, offset) {
    const params = new URLSearchParams(location.search);
    params.delete("cluster");
    params.delete("offset");
    if (clusterId !== null) params.set("cluster", String(clusterId));
    if (clusterId !== null && offset > 0) params.set("offset", String(offset));
    const query = params.toString();
    history.replaceState(history.state, "", `${location.pathname}${query ? `?${query}` : ""}`);
  }
  function openFromURL() {
    const params = new URLSearchParams(location.search);
    const node = params.get("cluster") && list.querySelector(`.cluster[data-id="${CSS.escape(params.get("cluster"))}"]`);
    if (!node) return;
    node.open(Math.max(0, parseInt(params.get("offset"), 10) || 0));
    node.scrollIntoView({ block: "start" });
  }

  const plural = (n, word, words = `${word}s`) => `${n} ${n === 1 ? word : words}`;
  const DEFAULT_MIN_SIZE = 5; // the API's default smallest new category

  // The members, PAGE at a time; a click leaves one out (or takes it back).
  function membersPanel(cluster, excluded, onChange) {
    const grid = el("div", { class: "members", "aria-label": `members of cluster ${cluster.id}` });
    const pager = el("div", { class: "pager" });
    const panel = el("div", { class: "members-panel", hidden: true }, grid, pager);
    let offset = 0;
    // The tiles follow `excluded` (changed by a click or by the bar's "Leave out").
    function mark() {
      for (const tile of grid.querySelectorAll(".member")) {
        const out = excluded.has(Number(tile.dataset.id));
        tile.classList.toggle("left-out", out);
        tile.setAttribute("aria-pressed", out ? "true" : "false");
      }
    }
    async function load() {
      grid.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
      try {
        const doc = await api("GET", `/api/clusters/${cluster.id}/members?offset=${offset}&limit=${PAGE}`);
        grid.replaceChildren(
          ...doc.members.map((card) => {
            const tile = el(
              "button",
              {
                type: "button",
                class: `member${excluded.has(card.id) ? " left-out" : ""}`,
                title: `${card.path}\nclick to leave out of this decision`,
                "aria-pressed": excluded.has(card.id) ? "true" : "false",
                "data-id": card.id,
              },
              el("img", { src: card.thumbnail_url, alt: card.name, loading: "lazy" }),
              card.label ? el("span", { class: "chip human member-label", title: `human label: ${card.label}`, text: card.label }) : null,
              el("span", { class: "out", text: "left out" })
            );
            tile.addEventListener("click", () => {
              if (excluded.has(card.id)) excluded.delete(card.id);
              else excluded.add(card.id);
              mark();
              onChange();
            });
            return tile;
          })
        );
        const last = Math.min(offset + PAGE, doc.total);
        pager.replaceChildren(
          el("button", { type: "button", class: "secondary prev", text: "‹ Previous", disabled: offset === 0, onclick: () => turn(-PAGE) }),
          el("span", { class: "muted", text: `${offset + 1}–${last} of ${doc.total}` }),
          el("button", { type: "button", class: "secondary next", text: "Next ›", disabled: last >= doc.total, onclick: () => turn(PAGE) })
        );
      } catch (e) {
        grid.replaceChildren();
        toast(e.message, "error");
      }
    }
    function turn(step) {
      offset = Math.max(0, offset + step);
      writeURL(cluster.id, offset);
      load();
    }
    function openAt(at) {
      offset = Math.floor(Math.max(0, Math.min(at, cluster.size - 1)) / PAGE) * PAGE;
      return load();
    }
    LKSelect.attach(grid, {
      matching: async () => cluster.members, // every member, not only this page
      changed: () => (panel.hidden ? null : load()),
      at: list,
    });
    grids.push(grid);
    return { panel, load, openAt, mark, offset: () => offset };
  }

  function actions(cluster, node, excluded) {
    const similarity = cluster.nearest_label_similarity;
    const mergeFirst =
      cluster.kind === "label" || (cluster.nearest_label && typeof similarity === "number" && similarity >= mergeAbove);
    const target = cluster.label || cluster.nearest_label;
    const name = el("input", {
      class: "accept-name",
      value: "",
      placeholder: "name this new class",
      "aria-label": "name for this cluster",
      list: "cluster-labels",
    });
    let acting = false; // one decision at a time: a double click sends one request
    const act = async (what, body, message) => {
      if (acting) return;
      acting = true;
      const controls = [...node.querySelectorAll(".actions button, .actions input")];
      const enabled = controls.filter((c) => !c.disabled);
      for (const c of enabled) c.disabled = true;
      let decided = false;
      try {
        const doc = await api("POST", `/api/clusters/${cluster.id}/${what}`, body);
        // The bar's Undo (of a leave-out or a label edit) is stale after a decision.
        LKSelect.forgetUndo();
        toast(message, "ok");
        if (what === "split") {
          show(doc);
        } else {
          decided = true;
          node.classList.add("reviewed");
          node.querySelector(".state").textContent = message;
          for (const b of node.querySelectorAll("button, input")) b.disabled = true;
        }
      } catch (e) {
        toast(e.message, "error");
      } finally {
        acting = false;
        if (!decided) for (const c of enabled) c.disabled = false;
      }
    };
    const exclude = () => [...excluded];
    // A name that is a label already makes the button a merge into it (as the server
    // would refuse a new class of that name).
    const existing = () => labels.find((l) => l.toLowerCase() === name.value.trim().toLowerCase());
    const accept = el("button", {
      type: "button",
      class: `accept${mergeFirst ? " secondary" : ""}`,
      text: "Accept as new class",
      disabled: true,
      onclick: () => {
        const same = existing();
        if (same) act("merge", { into: same, exclude: exclude() }, `Merged into “${same}”`);
        else act("accept", { as: name.value.trim(), exclude: exclude() }, `Accepted as “${name.value.trim()}”`);
      },
    });
    const named = () => {
      const same = existing();
      accept.disabled = !name.value.trim();
      accept.textContent = same ? `Merge into “${same}”` : "Accept as new class";
    };
    name.addEventListener("input", named);
    const suggestion = cluster.suggested_name
      ? el("button", {
          type: "button",
          class: "chip predicted suggestion",
          title: "the model's guess: click to use it as the name",
          text: `suggestion: ${cluster.suggested_name}`,
          onclick: () => {
            name.value = cluster.suggested_name;
            named();
            name.focus();
          },
        })
      : null;
    const merge = target
      ? el("button", {
          type: "button",
          class: `merge${mergeFirst ? "" : " secondary"}`,
          text: `Merge into “${target}”`,
          onclick: () => act("merge", { into: target, exclude: exclude() }, `Merged into “${target}”`),
        })
      : null;
    const naming = el("span", { class: "naming" }, name, accept, suggestion);
    const rest = [
      el("button", { type: "button", class: "split secondary", text: "Split", onclick: () => act("split", {}, "Split") }),
      el("button", { type: "button", class: "reject secondary", text: "Not a class", onclick: () => act("reject", {}, "Rejected") }),
    ];
    const final = el("p", {
      class: "muted decision-note",
      text: "Merge, accept and “Not a class” are final: no undo here, nor in the CLI’s lookalike clusters. The labels a merge or an accept gives can be changed or removed on the Library page.",
    });
    return mergeFirst
      ? el("div", { class: "actions" }, merge, naming, ...rest, final)
      : el("div", { class: "actions" }, naming, merge, ...rest, final);
  }

  function clusterCard(cluster) {
    const node = el("article", { class: `cluster kind-${cluster.kind}`, "data-id": cluster.id, "data-kind": cluster.kind });
    const sim = cluster.nearest_label_similarity;
    const similarity = typeof sim === "number" ? ` (similarity ${sim.toFixed(2)})` : "";
    const excluded = new Set();
    const counter = el("span", { class: "left-out-count muted" });
    const counted = () => {
      counter.textContent = excluded.size ? `${excluded.size} left out` : "";
    };
    const members = membersPanel(cluster, excluded, counted);
    const update = () => {
      members.mark();
      counted();
    };
    const owner = { excluded, update }; // one per card: the bar counts clusters by it
    for (const id of cluster.members || []) memberOf.set(id, owner);
    const setOpen = (open, at = 0) => {
      members.panel.hidden = !open;
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      writeURL(open ? cluster.id : null, at);
      if (open) members.openAt(at);
    };
    const toggle = el("button", {
      type: "button",
      class: "secondary show-members",
      text: `See all ${cluster.size} / leave some out`,
      "aria-expanded": "false",
      onclick: () => setOpen(members.panel.hidden),
    });
    node.open = (at) => setOpen(true, at);
    node.append(
      el(
        "header",
        {},
        el("h2", { text: `Cluster ${cluster.id}` }),
        el("span", { class: "muted", text: plural(cluster.size, "image") }),
        cluster.kind === "label"
          ? el("span", { class: "chip human", title: `these look like a labelled class: ${cluster.label}`, text: `look like “${cluster.label}”${similarity}` })
          : el("span", { class: "chip new", text: "new category" }),
        typeof cluster.cohesion === "number" ? el("span", { class: "muted", text: `cohesion ${cluster.cohesion.toFixed(2)}` }) : null,
        cluster.kind !== "label" && cluster.nearest_label
          ? el("span", { class: "muted", title: cluster.nearest_label, text: `nearest label: ${cluster.nearest_label}${similarity}` })
          : null,
        el("span", { class: "state muted", text: "" })
      ),
      el(
        "div",
        { class: "reps" },
        ...cluster.representatives.map((r) =>
          el("a", { href: r.url, title: r.path }, el("img", { src: r.thumbnail_url, alt: r.name, loading: "lazy" }))
        )
      ),
      el("div", { class: "members-bar" }, toggle, counter),
      members.panel,
      actions(cluster, node, excluded)
    );
    return node;
  }

  function show(doc) {
    for (const grid of grids) LKSelect.detach(grid); // the cards are about to go
    grids = [];
    memberOf.clear();
    labels = doc.labels || labels;
    mergeAbove = typeof doc.merge_similarity === "number" ? doc.merge_similarity : mergeAbove;
    const datalist = el("datalist", { id: "cluster-labels" }, ...labels.map((l) => el("option", { value: l })));
    list.replaceChildren(datalist, ...doc.clusters.map(clusterCard));
    const fresh = doc.stale ? " The library changed since: cluster again for current proposals." : "";
    const news = doc.clusters.filter((c) => c.kind === "new").length;
    status.textContent = doc.clusters.length
      ? `${plural(news, "new category", "new categories")} (${doc.min_size}+ images), ` +
        `${plural(doc.clusters.length - news, "group")} near existing labels; ` +
        `${plural(doc.noise || 0, "unlabelled image")} ${doc.noise === 1 ? "fits" : "fit"} none.${fresh}`
      : doc.clustered === false
        ? "Not clustered yet: press “Cluster now” to group the unlabelled images."
        : `No clusters.${fresh}`;
    $("recluster").textContent = doc.clustered === false ? "Cluster now" : "Cluster again";
    openFromURL();
  }

  // The bar's own action here: leave the selected members out of their cluster's
  // decision (the tiles and counters follow); Undo takes them back.
  LKSelect.action({
    text: "Leave out",
    title: "leave the selected images out of their cluster's decision (accept, merge)",
    run: async (ids) => {
      const added = [];
      for (const id of ids) {
        const owner = memberOf.get(id);
        if (owner && !owner.excluded.has(id)) {
          owner.excluded.add(id);
          added.push([id, owner]);
        }
      }
      const owners = new Set(added.map(([, o]) => o));
      for (const owner of owners) owner.update();
      return {
        message: `Left ${plural(added.length, "image")} out of ${owners.size > 1 ? `${owners.size} clusters` : "the cluster"}`,
        undo: added.length
          ? async () => {
              for (const [id, owner] of added) owner.excluded.delete(id);
              for (const owner of new Set(added.map(([, o]) => o))) owner.update();
              return `Taken back: ${plural(added.length, "image")}`;
            }
          : null,
      };
    },
  });

  // Nothing to show (no images, or every image labelled): say why and what to do, no toast.
  function empty(message) {
    status.replaceChildren(
      el("span", { class: "empty", text: `${message.charAt(0).toUpperCase()}${message.slice(1)}. ` }),
      el("a", { href: "/library" }, "Open the library"),
      " to index more images."
    );
  }

  async function load() {
    status.textContent = "Reading the proposals…";
    try {
      const doc = await api("GET", "/api/clusters");
      if (!$("recluster").disabled) show(doc); // a newer clustering is on its way otherwise
    } catch (e) {
      empty(e.message);
    }
  }

  // The smallest new category from its box: a whole number of at least 2; an empty
  // box takes the default (and shows it); anything else is refused, saying why.
  function minSize() {
    const box = $("min-size");
    const text = box.value.trim();
    if (text === "" && !box.validity.badInput) {
      box.value = String(DEFAULT_MIN_SIZE);
      return DEFAULT_MIN_SIZE;
    }
    const size = Number(text);
    if (box.validity.badInput || !Number.isInteger(size) || size < 2) return null;
    return size;
  }

  $("recluster").addEventListener("click", async () => {
    const size = minSize();
    if (size === null) {
      status.textContent = "Smallest new category must be a whole number of at least 2.";
      $("min-size").focus();
      return;
    }
    const button = $("recluster");
    button.disabled = true;
    list.replaceChildren(); // no acting on cards that are about to change
    status.textContent = "Clustering…";
    try {
      show(await api("POST", "/api/clusters", { min_size: size }));
    } catch (e) {
      status.textContent = `${e.message.charAt(0).toUpperCase()}${e.message.slice(1)}.`; // no "index more images" advice
    } finally {
      button.disabled = false;
    }
  });
  load();
})();
