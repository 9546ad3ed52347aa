// The clusters page: one card per cluster of unlabelled images, with its
// representatives, suggested name and nearest label, and the review actions.
"use strict";

(() => {
  const { api, el, toast } = LK;
  const $ = (id) => document.getElementById(id);
  const list = $("clusters");
  const status = $("status");
  let labels = [];

  function actions(cluster, node) {
    const name = el("input", {
      class: "accept-name",
      value: cluster.suggested_name || "",
      placeholder: "new class name",
      "aria-label": "name for this cluster",
      list: "cluster-labels",
    });
    const act = async (what, body, message) => {
      try {
        const doc = await api("POST", `/api/clusters/${cluster.id}/${what}`, body);
        toast(message, "ok");
        if (what === "split") {
          show(doc);
        } else {
          node.classList.add("reviewed");
          node.querySelector(".state").textContent = message;
          for (const b of node.querySelectorAll("button, input")) b.disabled = true;
        }
      } catch (e) {
        toast(e.message, "error");
      }
    };
    const row = el(
      "div",
      { class: "actions" },
      name,
      el("button", {
        type: "button",
        class: "accept",
        text: "Accept as class",
        onclick: () => act("accept", { as: name.value.trim() }, `Accepted as “${name.value.trim()}”`),
      })
    );
    if (cluster.nearest_label) {
      row.append(
        el("button", {
          type: "button",
          class: "merge secondary",
          text: `Merge into “${cluster.nearest_label}”`,
          onclick: () =>
            act("merge", { into: cluster.nearest_label }, `Merged into “${cluster.nearest_label}”`),
        })
      );
    }
    row.append(
      el("button", { type: "button", class: "split secondary", text: "Split", onclick: () => act("split", {}, "Split") }),
      el("button", {
        type: "button",
        class: "reject secondary",
        text: "Not a class",
        onclick: () => act("reject", {}, "Rejected"),
      })
    );
    return row;
  }

  function clusterCard(cluster) {
    const node = el("article", { class: `cluster${cluster.status && cluster.status !== "open" ? " reviewed" : ""}`, "data-id": cluster.id });
    const similarity =
      typeof cluster.nearest_label_similarity === "number"
        ? ` (similarity ${cluster.nearest_label_similarity.toFixed(2)})`
        : "";
    node.append(
      el(
        "header",
        {},
        el("h2", { text: `Cluster ${cluster.id}` }),
        el("span", { class: "muted", text: `${cluster.size} image${cluster.size === 1 ? "" : "s"}` }),
        typeof cluster.cohesion === "number"
          ? el("span", { class: "muted", text: `cohesion ${cluster.cohesion.toFixed(2)}` })
          : null,
        cluster.label
          ? el("span", { class: "chip human", title: "these look like a labelled class", text: `more of ${cluster.label}` })
          : cluster.suggested_name
            ? el("span", { class: "chip predicted", title: "suggested name", text: cluster.suggested_name })
            : null,
        cluster.nearest_label
          ? el("span", { class: "muted", text: `nearest label: ${cluster.nearest_label}${similarity}` })
          : null,
        el("span", { class: "state muted", text: cluster.status && cluster.status !== "open" ? cluster.status : "" })
      ),
      el(
        "div",
        { class: "reps" },
        ...cluster.representatives.map((r) =>
          el("a", { href: r.url, title: r.path }, el("img", { src: r.thumbnail_url, alt: r.name, loading: "lazy" }))
        )
      )
    );
    if (!cluster.status || cluster.status === "open") node.append(actions(cluster, node));
    return node;
  }

  function show(doc) {
    labels = doc.labels || labels;
    const datalist = el("datalist", { id: "cluster-labels" }, ...labels.map((l) => el("option", { value: l })));
    list.replaceChildren(datalist, ...doc.clusters.map(clusterCard));
    status.textContent = doc.clusters.length
      ? `${doc.clusters.length} cluster${doc.clusters.length === 1 ? "" : "s"}; ` +
        `${doc.noise || 0} unlabelled image${doc.noise === 1 ? "" : "s"} fit none`
      : "No clusters yet: cluster the unlabelled images.";
  }

  // Nothing to show (no images, or every image labelled): say why and what to do, no toast.
  function empty(message) {
    status.replaceChildren(
      el("span", { class: "empty", text: `${message.charAt(0).toUpperCase()}${message.slice(1)}. ` }),
      el("a", { href: "/library" }, "Open the library"),
      " to index more images."
    );
  }

  async function load() {
    status.textContent = "Looking for clusters…";
    try {
      const doc = await api("GET", "/api/clusters");
      if (!$("recluster").disabled) show(doc); // a newer clustering is on its way otherwise
    } catch (e) {
      empty(e.message);
    }
  }

  $("recluster").addEventListener("click", async () => {
    const button = $("recluster");
    button.disabled = true;
    list.replaceChildren(); // no acting on cards that are about to change
    status.textContent = "Clustering…";
    try {
      show(await api("POST", "/api/clusters", {}));
    } catch (e) {
      empty(e.message);
    } finally {
      button.disabled = false;
    }
  });
  load();
})();
