// Shared helpers for every page: API calls, result cards, toasts, index-job status.
"use strict";

const LK = (() => {
  // Every call carries X-Requested-With: the server refuses changes without it
  // (a guard against cross-site requests).
  async function api(method, url, body) {
    const options = { method, headers: { "X-Requested-With": "lookalike" } };
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (e) {
      throw new Error("the server cannot be reached");
    }
    let doc = null;
    try {
      doc = await response.json();
    } catch (e) {
      doc = null;
    }
    if (!response.ok) {
      throw new Error((doc && doc.error) || `${response.status} ${response.statusText}`);
    }
    return doc;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const ORIGINS = {
    folder: "from the folder name",
    csv: "from a CSV import",
    manual: "set by hand",
    review: "from cluster review",
  };
  function origin(name) {
    return ORIGINS[name] || `from ${name}`;
  }

  function plural(n, word) {
    if (n === 1) return `${n} ${word}`;
    return `${n} ${word}${word.endsWith("s") ? "es" : "s"}`;
  }

  function percent(x) {
    return `${Math.round(x * 100)}%`;
  }

  // What a predicted tag's percentage is (the tagger's calibrated confidence in its
  // answer): for "unknown", how likely the image is of none of the labels.
  function tagTitle(tag) {
    if (tag.label === null) {
      return `unknown: the tagger thinks this image is of none of your labels; ${percent(tag.confidence)} is how likely that is right`;
    }
    return `predicted “${tag.label}” (not a human label); ${percent(tag.confidence)} is how likely that is right`;
  }

  // One grid card: thumbnail, optional score, human label or predicted tag.
  function card(item, options = {}) {
    const chips = el("div", { class: "chips small" });
    if (item.label) {
      chips.append(el("span", { class: "chip human", title: "human label", text: item.label }));
    } else if (!item.tag) {
      chips.append(el("span", { class: "chip none", title: "no label and no tag yet", text: "unlabelled" }));
    } else {
      const text = item.tag.label === null ? "unknown" : item.tag.label;
      chips.append(
        el("span", {
          class: item.tag.label === null ? "chip unknown" : "chip predicted",
          title: tagTitle(item.tag),
          text: `${text} ${percent(item.tag.confidence)}`,
        })
      );
    }
    if (item.offline) {
      chips.append(
        el("span", {
          class: "chip offline",
          title: "its folder cannot be read now (an unplugged disk?); kept in the library",
          text: "offline",
        })
      );
    }
    const meta = el("div", { class: "meta" });
    if (typeof item.score === "number") {
      meta.append(el("span", { class: "score", title: "cosine similarity", text: item.score.toFixed(3) }));
    }
    if (item.match) {
      const probable = item.match === "probable";
      meta.append(
        el("span", {
          class: `chip match ${item.match}`,
          title: probable
            ? "probably an edited copy: the copy-detection descriptor's clear nearest"
            : "an edited copy of the query (or the same picture): its local features match",
          text: probable ? "probable copy" : "copy",
        })
      );
    }
    meta.append(chips);
    return el(
      "a",
      { class: item.offline ? "card offline" : "card", href: item.url, title: item.path, "data-id": item.id },
      el("img", { src: item.thumbnail_url, alt: item.name, loading: "lazy", decoding: "async" }),
      meta,
      options.caption ? el("div", { class: "caption", text: item.name }) : null
    );
  }

  // A short message at the foot of the page; `action` ({text, run}) adds a button to it
  // (an Undo), and the message then stays longer.
  let toastTimer = null;
  function toast(message, kind = "info", action = null) {
    const box = document.getElementById("toast");
    box.replaceChildren(message);
    if (action) {
      const button = el("button", { type: "button", class: "toast-action", text: action.text });
      button.addEventListener("click", () => {
        box.hidden = true;
        action.run();
      });
      box.append(button);
    }
    box.className = `toast ${kind}`;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (box.hidden = true), kind === "error" || action ? 8000 : 2500);
  }

  // The header shows a running index job (started here or from this page).
  let jobTimer = null;
  // What an index run did, from its summary (lookalike index --json's document).
  function summarize(summary) {
    if (!summary) return "finished";
    const parts = [];
    for (const [key, word] of [
      ["added", "added"], ["updated", "updated"], ["moved", "moved"],
      ["copied", "copied"], ["removed", "removed"], ["labelled", "labelled from folders"],
    ]) {
      if (summary[key]) parts.push(`${summary[key]} ${word}`);
    }
    const skipped = summary.skipped_total ?? (summary.skipped || []).length;
    if (skipped) parts.push(`${skipped} skipped`);
    if (summary.unchanged) parts.push(`${summary.unchanged} unchanged`);
    return parts.length ? parts.join(", ") : "nothing to do";
  }
  function describeJob(job) {
    const who = job.external ? " (lookalike index, another process)" : "";
    const where = job.folder || (job.folders || []).join(", ");
    if (job.state === "scanning") return `Indexing ${where}${who}: looking for images…`;
    if (job.state === "running") return `Indexing${who}: ${job.done} of ${job.total}`;
    if (job.state === "done") return `Indexing done: ${summarize(job.summary)}; ${plural(job.library_images, "image")} in the library`;
    if (job.state === "failed") return `Indexing failed: ${job.error}`;
    return "";
  }
  async function pollJob(onUpdate) {
    clearTimeout(jobTimer);
    let job;
    try {
      job = await api("GET", "/api/index-job");
    } catch (e) {
      return;
    }
    const badge = document.getElementById("job-status");
    const active = job.state === "scanning" || job.state === "running";
    badge.hidden = !active;
    badge.textContent = describeJob(job);
    if (onUpdate) onUpdate(job);
    // While idle, look now and then for an index run started elsewhere (the CLI).
    jobTimer = setTimeout(() => pollJob(onUpdate), active ? 1000 : 10000);
  }

  document.addEventListener("DOMContentLoaded", () => pollJob());

  return { api, el, card, toast, tagTitle, percent, plural, origin, pollJob, describeJob, summarize };
})();
