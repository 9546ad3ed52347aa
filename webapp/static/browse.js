// The library browser: filters, a label filter, keyset paging ("show more"), the
// skipped-files list, and the index-a-folder form with its progress bar. The view is
// in the URL (?filter=&label=&pages=N, the scroll position in the history entry):
// Back, a reload or a shared link show the same images, as the search page does.
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
  let pages = 0; // pages shown
  const FILTERS = [...document.querySelectorAll("#filters [data-filter]")].map((b) => b.dataset.filter);
  const MAX_PAGES = 50; // a link asks for at most this many pages at once

  // -- the view in the URL ---------------------------------------------------------
  // A new filter or label is a new history entry; "Show more" and scrolling replace it.
  function writeURL(push) {
    const params = new URLSearchParams();
    if (filter !== "all") params.set("filter", filter);
    if (label) params.set("label", label);
    if (pages > 1) params.set("pages", String(pages));
    const query = params.toString();
    const url = `${location.pathname}${query ? `?${query}` : ""}${push ? "" : location.hash}`;
    if (url === location.pathname + location.search + location.hash) return;
    if (push) history.pushState(null, "", url);
    else history.replaceState(history.state, "", url);
  }

  function showFilter() {
    for (const b of document.querySelectorAll("#filters [data-filter]")) {
      b.classList.toggle("on", b.dataset.filter === filter);
    }
  }

  async function readURL() {
    const params = new URLSearchParams(location.search);
    const asked = params.get("filter");
    filter = FILTERS.includes(asked) ? asked : "all";
    // An unknown filter in a link shows All, and says so.
    const note = $("filter-note");
    note.hidden = asked === null || FILTERS.includes(asked);
    note.textContent = note.hidden ? "" : `The filter “${asked}” is not one of this page’s: showing All.`;
    label = params.get("label") || "";
    setLabel(label);
    showFilter();
    const wanted = Math.min(Math.max(parseInt(params.get("pages"), 10) || 1, 1), MAX_PAGES);
    await show(wanted);
    const scroll = history.state && history.state.scroll;
    if (typeof scroll === "number") window.scrollTo(0, scroll);
  }

  // The first n pages of the current filter, again (after an edit, or from the URL).
  async function show(n) {
    await loadPage(true);
    while (pages < n && after !== null) {
      if (!(await loadPage(false))) break;
    }
  }

  function setLabel(value) {
    const select = $("label-select");
    if (value && ![...select.options].some((o) => o.value === value)) {
      select.append(el("option", { value, text: value })); // until the list comes
    }
    select.value = value;
    select.title = value || "any label"; // a long label is cut short in the box
  }

  let scrollTimer = null;
  history.scrollRestoration = "manual"; // the pages load after the document: ours
  window.addEventListener("scroll", () => {
    clearTimeout(scrollTimer);
    scrollTimer = setTimeout(() => history.replaceState({ scroll: window.scrollY }, "", location.href), 200);
  });
  grid.addEventListener("click", () => history.replaceState({ scroll: window.scrollY }, "", location.href), true);
  window.addEventListener("popstate", () => readURL());

  async function loadCounts() {
    try {
      const doc = await api("GET", "/api/labels");
      for (const button of document.querySelectorAll("#filters [data-filter]")) {
        const n = doc.counts[button.dataset.filter];
        button.querySelector("span").textContent = n === undefined ? "" : n;
      }
      const select = $("label-select");
      select.replaceChildren(
        el("option", { value: "", text: "any" }),
        ...doc.labels.map((l) => el("option", { value: l.label, title: l.label, text: `${l.label} (${l.count})` }))
      );
      setLabel(label);
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
      return false;
    }
    after = doc.next_after;
    more.hidden = after === null;
    pages = reset ? 1 : pages + 1;
    return true;
  }

  for (const button of document.querySelectorAll("#filters [data-filter]")) {
    button.addEventListener("click", async () => {
      filter = button.dataset.filter;
      $("filter-note").hidden = true;
      showFilter();
      pages = 1;
      writeURL(true);
      await loadPage(true);
    });
  }
  $("label-select").addEventListener("change", async (event) => {
    label = event.target.value;
    pages = 1;
    writeURL(true);
    await loadPage(true);
  });
  more.addEventListener("click", async () => {
    if (await loadPage(false)) writeURL(false);
  });

  const tagNow = $("tag-now");
  if (tagNow) {
    tagNow.addEventListener("click", async () => {
      tagNow.disabled = true;
      tagNow.textContent = "Tagging…";
      try {
        const run = await api("POST", "/api/tag", {});
        toast(`Tagged ${plural(run.tagged, "image")}, ${run.unknown} left unknown`, "ok");
        loadCounts();
        show(pages);
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
  readURL();

  // -- selection and bulk labelling (static/select.js) -------------------------
  LKSelect.attach(grid, {
    matching: async () => {
      const params = new URLSearchParams({ filter: filter === "errors" ? "all" : filter });
      if (label) params.set("label", label);
      return (await api("GET", `/api/images/ids?${params}`)).ids;
    },
    changed: () => {
      loadCounts();
      show(pages); // the same pages, relabelled
    },
  });
})();
