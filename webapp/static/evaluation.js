// The evaluation page: run the cross-validation on the server (it takes a while: the
// page polls), show its headline figures per head and the full report below; and the
// last tagging run's own held-out figures, with a button to tag again.
"use strict";

(() => {
  const { api, el, toast, plural } = LK;
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  let timer = null;
  let tagHead = null; // the head tagging uses (chosen here, kept in the library)

  function number(x) {
    if (x === null || x === undefined) return "–";
    if (typeof x !== "number") return String(x);
    return Number.isInteger(x) ? String(x) : x.toFixed(3);
  }

  // Rows are figures, columns are heads.
  function table(heads, best) {
    const rows = Object.keys(heads[0].figures);
    const title = (h) =>
      [h.head, h.head === best ? "best" : null, best !== null && h.head === tagHead ? "tagging uses it" : null]
        .filter(Boolean)
        .reduce((a, b) => `${a} (${b})`);
    return el(
      "table",
      {},
      el("thead", {}, el("tr", {}, el("th", { text: "" }), ...heads.map((h) => el("th", { text: title(h) })))),
      el(
        "tbody",
        {},
        ...rows.map((name) =>
          el("tr", {}, el("td", { text: name }), ...heads.map((h) => el("td", { text: number(h.figures[name]) })))
        )
      )
    );
  }

  // A table in its box, with a hint when the box is too narrow for all its columns.
  function showTable(box, node) {
    const hint = el("p", { class: "scroll-hint muted", text: "Scroll sideways for every head →", hidden: true });
    box.replaceChildren(node, hint);
    requestAnimationFrame(() => (hint.hidden = box.scrollWidth <= box.clientWidth + 1));
  }

  function showCrossValidation(cv) {
    clearTimeout(timer);
    const button = $("run-eval");
    if (button) button.disabled = cv.state === "running";
    if (cv.state === "running") {
      status.textContent = `Evaluating… (${cv.progress})`;
      timer = setTimeout(load, 1500);
      return;
    }
    if (cv.state === "failed") {
      status.textContent = `The evaluation failed: ${cv.error}`;
      return;
    }
    if (cv.state !== "done") {
      status.textContent = "No evaluation yet.";
      return;
    }
    status.textContent =
      `${plural(cv.labelled, "labelled image")} in ${plural(cv.classes, "class")}, ` +
      `${cv.folds}-fold cross-validation.` + (cv.stored ? " (Run it again for the full report.)" : "");
    showTable($("figures"), table(cv.heads, cv.best_head));
    $("report").hidden = !cv.report_url;
  }

  let clustersShown = false;
  function showTagRun(run) {
    const box = $("tag-figures");
    if (!box) return;
    if (!run) {
      $("tag-status").textContent = "No tagging run yet.";
      box.replaceChildren();
      return;
    }
    const when = new Date(run.finished * 1000).toLocaleString();
    const how = !run.clusters
      ? "by the head alone"
      : run.replayed
        ? "with the clusters (the figures below: the library tagged again with the clusters and some of your labels hidden)"
        : "with the clusters (the figures below are the head's own: too few labels a class to replay the clusters)";
    $("tag-status").textContent = `Tagged ${when} from ${plural(run.labelled, "label")} in ${plural(run.classes, "class")}, ${how}.`;
    // the last run's choice, once: later loads (the page polls) leave the box as it is
    if ($("tag-clusters") && !clustersShown) $("tag-clusters").checked = run.clusters !== false;
    clustersShown = true;
    const head = run.clusters ? `${run.head} + clusters` : run.head;
    showTable(box, table([{ head, figures: run.figures }], null));
  }

  function showHead(head) {
    tagHead = head;
    $("tag-head").value = head;
    $("tag-head-note").textContent = `Tagging (the Tag buttons, lookalike tag) uses the ${head} head.`;
  }
  $("tag-head").addEventListener("change", async (event) => {
    try {
      const doc = await api("PUT", "/api/tag-head", { head: event.target.value });
      toast(`Tagging now uses the ${doc.tag_head} head; tag again to apply it.`, "ok");
      await load();
    } catch (e) {
      toast(e.message, "error");
    }
  });

  async function load() {
    try {
      const doc = await api("GET", "/api/evaluation");
      showHead(doc.tag_head);
      showCrossValidation(doc.cross_validation);
      showTagRun(doc.tag_run);
    } catch (e) {
      toast(e.message, "error");
    }
  }

  const run = $("run-eval");
  if (run) {
    run.addEventListener("click", async () => {
      try {
        showCrossValidation(await api("POST", "/api/evaluation", {}));
      } catch (e) {
        toast(e.message, "error");
      }
    });
  }
  const tagNow = $("tag-now");
  if (tagNow) {
    tagNow.addEventListener("click", async () => {
      tagNow.disabled = true;
      $("tag-status").textContent = "Tagging…";
      try {
        const clusters = $("tag-clusters") ? $("tag-clusters").checked : true;
        const result = await api("POST", "/api/tag", { clusters });
        toast(`Tagged ${plural(result.tagged, "image")}, ${result.unknown} unknown`, "ok");
        await load();
      } catch (e) {
        toast(e.message, "error");
      } finally {
        tagNow.disabled = false;
      }
    });
  }
  load();
})();
