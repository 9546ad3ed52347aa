// The library browser: filters, a label filter, keyset paging ("show more"), the
// skipped-files list, and the index-a-folder form with its progress bar.
"use strict";

(() => {
  const { api, card, el, toast, plural, describeJob, pollJob } = LK;
  const $ = (id) => document.getElementById(id);
  const grid = $("grid");
  const more = $("more");
  const errorsTable = $("errors");
  let filter = "all";
  let label = "";
  let after = null; // the keyset cursor of the next page, null at the end

  async function loadCounts() {
    try {
      const doc = await api("GET", "/api/labels");
      for (const button of document.querySelectorAll("#filters [data-filter]")) {
        const n = doc.counts[button.dataset.filter];
        button.querySelector("span").textContent = n === undefined ? "" : n;
      }
      const select = $("label-select");
      const keep = select.value;
      select.replaceChildren(
        el("option", { value: "", text: "any" }),
        ...doc.labels.map((l) => el("option", { value: l.label, text: `${l.label} (${l.count})` }))
      );
      select.value = keep;
    } catch (e) {
      toast(e.message, "error");
    }
  }

  async function loadPage(reset) {
    if (reset) {
      after = 0;
      grid.replaceChildren();
      errorsTable.querySelector("tbody").replaceChildren();
    }
    const errors = filter === "errors";
    grid.hidden = errors;
    errorsTable.hidden = !errors;
    const params = new URLSearchParams({ after: String(after) });
    let doc;
    try {
      if (errors) {
        if (reset) params.set("after", "");
        doc = await api("GET", `/api/errors?${params}`);
        errorsTable.querySelector("tbody").append(
          ...doc.errors.map((e) => el("tr", {}, el("td", { text: e.path }), el("td", { text: e.error })))
        );
      } else {
        params.set("filter", filter);
        if (label) params.set("label", label);
        doc = await api("GET", `/api/images?${params}`);
        grid.append(...doc.images.map((item) => card(item, { caption: true })));
        if (reset && doc.images.length === 0) {
          grid.append(el("p", { class: "muted", text: "No images here." }));
        }
      }
    } catch (e) {
      toast(e.message, "error");
      return;
    }
    after = doc.next_after;
    more.hidden = after === null;
  }

  for (const button of document.querySelectorAll("#filters [data-filter]")) {
    button.addEventListener("click", () => {
      filter = button.dataset.filter;
      for (const b of document.querySelectorAll("#filters [data-filter]")) {
        b.classList.toggle("on", b === button);
      }
      loadPage(true);
    });
  }
  $("label-select").addEventListener("change", (event) => {
    label = event.target.value;
    loadPage(true);
  });
  more.addEventListener("click", () => loadPage(false));

  const tagNow = $("tag-now");
  if (tagNow) {
    tagNow.addEventListener("click", async () => {
      tagNow.disabled = true;
      tagNow.textContent = "Tagging…";
      try {
        const run = await api("POST", "/api/tag", {});
        toast(`Tagged ${plural(run.tagged, "image")}, ${run.unknown} left unknown`, "ok");
        loadCounts();
        loadPage(true);
      } catch (e) {
        toast(e.message, "error");
      } finally {
        tagNow.disabled = false;
        tagNow.textContent = "Tag unlabelled images";
      }
    });
  }

  // -- indexing a folder ---------------------------------------------------
  const form = $("index-form");
  let shownState = null; // the page polls on when idle: react to changes only
  function showJob(job) {
    if (!form) return;
    const changed = job.state !== shownState;
    shownState = job.state;
    const box = $("job");
    if (job.state === "idle") {
      // An index run of another process has ended: show what it added.
      if (!box.hidden) {
        box.hidden = true;
        loadCounts();
      }
      return;
    }
    box.hidden = false;
    const bar = $("job-bar");
    if (job.total) {
      bar.max = job.total;
      bar.value = job.done;
    } else {
      bar.removeAttribute("value"); // indeterminate while scanning
    }
    if (job.state === "done") bar.value = bar.max;
    $("job-text").textContent = describeJob(job);
    if (changed && (job.state === "done" || job.state === "failed")) loadCounts();
  }
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const job = await api("POST", "/api/index-job", {
          folder: $("folder").value,
          labels_from_folders: $("from-folders").checked,
        });
        showJob(job);
        pollJob(showJob);
      } catch (e) {
        toast(e.message, "error");
      }
    });
    pollJob(showJob);
  }

  loadCounts();
  loadPage(true);

  // -- selection and bulk labelling (static/select.js) -------------------------
  LKSelect.attach(grid, {
    matching: async () => {
      const params = new URLSearchParams({ filter: filter === "errors" ? "all" : filter });
      if (label) params.set("label", label);
      return (await api("GET", `/api/images/ids?${params}`)).ids;
    },
    changed: () => {
      loadCounts();
      loadPage(true);
    },
  });
})();
