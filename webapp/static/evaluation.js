// The evaluation page: run the cross-validation on the server (it takes a while: the
// page polls), show its headline figures per head and the full report below; and the
// last tagging run's own held-out figures, with a button to tag again. Above them, one
// plain-words summary of the figures the page has, and a warning when classes have
// fewer labels than the cross-validation has folds.
"use strict";

(() => {
  const { api, el, toast, plural } = LK;
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  let timer = null;
  let tagHead = null; // the head tagging uses (chosen here, kept in the library)

  // What each figure is, in a line (the figures' names are the API's).
  const MEANING = {
    accuracy: "share of held-out labelled images whose best guess is right (never answering unknown)",
    "macro-F1": "accuracy averaged class by class, so a small class counts as much as a big one (1 is perfect)",
    "AUROC known vs new": "how well the confidence tells images of your classes from images of a class nobody labelled (1: always, 0.5: a coin toss)",
    "known images tagged right": "of the images of your labelled classes, the share given the right tag (unknown counts as not right)",
    "new-class images left unknown": "of the images of a class hidden from the tagger, the share left unknown rather than mislabelled",
    "calibration error": "how far the stated confidence is from the share really right, on average (0: honest; 0.05: off by 5 points)",
    "images tagged": "unlabelled images the run gave a label",
    "images unknown": "unlabelled images the run left unknown (like none of your labels)",
  };
  const in100 = (x) => {
    const n = Math.round(x * 100);
    return n === 100 ? "all" : n === 0 ? "no" : `about ${n} in 100`;
  };

  function number(x) {
    if (x === null || x === undefined) return "–";
    if (typeof x !== "number") return String(x);
    return Number.isInteger(x) ? String(x) : x.toFixed(3);
  }

  // Rows are figures (each with its meaning), columns are heads.
  function table(heads, best, caption) {
    const rows = Object.keys(heads[0].figures);
    const head = (h) => {
      const notes = [];
      if (h.head === best) notes.push("best");
      if (best !== null && h.head === tagHead) notes.push("tagging uses it");
      const bestNote =
        h.head === best
          ? h.head === tagHead
            ? "best: the highest accuracy in this cross-validation"
            : `best: the highest accuracy in this cross-validation; tagging uses ${tagHead}: switch with “Head for tagging” above`
          : null;
      return el("th", { title: bestNote }, notes.reduce((a, b) => `${a} (${b})`, h.head));
    };
    return el(
      "table",
      {},
      caption ? el("caption", { text: caption }) : null,
      el("thead", {}, el("tr", {}, el("th", { text: "" }), ...heads.map(head))),
      el(
        "tbody",
        {},
        ...rows.map((name) =>
          el(
            "tr",
            {},
            el("td", { title: MEANING[name] }, name, MEANING[name] ? el("small", { class: "meaning", text: MEANING[name] }) : null),
            ...heads.map((h) => el("td", { text: number(h.figures[name]) }))
          )
        )
      )
    );
  }

  // One plain statement from the figures shown: the last tagging run's own test when
  // there is one (that is what tagging does), else the cross-validation of the head
  // tagging uses.
  function summarize(cv, run) {
    const box = $("summary");
    const parts = [];
    const f = run && run.figures;
    if (f && typeof f["known images tagged right"] === "number") {
      parts.push(
        `In the last tagging run’s own test, ${in100(f["known images tagged right"])} images of your labelled classes got the right tag`,
        typeof f["new-class images left unknown"] === "number"
          ? `, and ${in100(f["new-class images left unknown"])} images of a class it had never seen were left unknown rather than mislabelled.`
          : "."
      );
    } else if (cv && cv.state === "done") {
      const used = cv.heads.find((h) => h.head === tagHead);
      const g = used && used.figures;
      if (g && typeof g["known images tagged right"] === "number") {
        parts.push(
          `In the cross-validation, the ${tagHead} head (the one tagging uses) gave ${in100(g["known images tagged right"])} images of your labelled classes the right tag`,
          typeof g["new-class images left unknown"] === "number"
            ? `, and left ${in100(g["new-class images left unknown"])} images of a class nobody labelled unknown.`
            : "."
        );
      }
    }
    if (f && typeof f["images tagged"] === "number" && typeof f["images unknown"] === "number") {
      const all = f["images tagged"] + f["images unknown"];
      if (all) {
        parts.push(
          ` It tagged ${plural(f["images tagged"], "unlabelled image")} and left ${f["images unknown"]} unknown (${in100(f["images unknown"] / all)}).`
        );
      }
    }
    box.textContent = parts.join("").trim();
    box.hidden = !parts.length;
  }

  // Classes with fewer labels than folds: some folds test them on nothing.
  async function warnFewLabels(cv) {
    const box = $("few-labels");
    box.hidden = true;
    if (!cv || cv.state !== "done" || !cv.folds) return;
    let doc;
    try {
      doc = await api("GET", "/api/labels");
    } catch (e) {
      return; // a warning only
    }
    const few = doc.labels.filter((l) => l.count < cv.folds);
    if (!few.length) return;
    const names = few.slice(0, 3).map((l) => `${l.label} (${l.count})`).join(", ");
    box.textContent =
      `${few.length} of ${plural(doc.labels.length, "class")} now ${few.length === 1 ? "has" : "have"} fewer labels than the ` +
      `${cv.folds} folds (${names}${few.length > 3 ? ", …" : ""}): the figures rest on very few images of ` +
      `${few.length === 1 ? "it" : "them"}. Label a few more for steadier figures.`;
    box.hidden = false;
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
    showTable($("figures"), table(cv.heads, cv.best_head, "Cross-validation: every head, tested on labels it was not trained on"));
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
    showTable(box, table([{ head, figures: run.figures }], null, "The last tagging run, tested on labels and classes it hid from itself"));
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
      summarize(doc.cross_validation, doc.tag_run);
      if (doc.cross_validation.state !== "running") warnFewLabels(doc.cross_validation);
    } catch (e) {
      toast(e.message, "error");
    }
  }

  const run = $("run-eval");
  if (run) {
    run.addEventListener("click", async () => {
      if (run.disabled) return;
      run.disabled = true; // a double click starts one evaluation
      try {
        showCrossValidation(await api("POST", "/api/evaluation", {}));
      } catch (e) {
        run.disabled = false;
        toast(e.message, "error");
      }
    });
  }
  const tagNow = $("tag-now");
  if (tagNow) {
    tagNow.addEventListener("click", async () => {
      if (tagNow.disabled) return;
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
