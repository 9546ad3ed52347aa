// The duplicates page: groups of verified copies, largest first, the image to keep
// first; "keep this one", hide and remove per image; a threshold for the candidates.
"use strict";

(() => {
  const { api, el, toast, plural } = LK;
  const $ = (id) => document.getElementById(id);
  const list = $("groups");
  const status = $("status");
  const slider = $("threshold");

  let shown = null; // the threshold of the groups shown

  // "Keep this one": the server rebuilds the groups around the image kept (its members'
  // kinds are relative to it), so the group is shown again from its answer.
  async function keepOne(m, node) {
    try {
      await api("POST", `/api/images/${m.id}/keep`, { group: [...node.querySelectorAll(".dup-member")].map((x) => Number(x.dataset.id)) });
    } catch (e) {
      toast(e.message, "error");
      return;
    }
    toast(`Keeping ${m.name}`, "ok");
    try {
      const doc = await api("GET", `/api/duplicates?threshold=${shown}`);
      const group = doc.groups.find((g) => g.members.some((x) => x.id === m.id));
      if (group) node.replaceWith(groupNode(group));
      else show(doc);
    } catch (e) {
      toast(e.message, "error");
    }
  }

  function member(group, m, node) {
    const act = async (method, url, body, message, done) => {
      try {
        await api(method, url, body);
        toast(message, "ok");
        done();
      } catch (e) {
        toast(e.message, "error");
      }
    };
    const item = el(
      "figure",
      { class: `dup-member${m.id === group.keep ? " keep" : ""}`, "data-id": m.id },
      el("a", { href: m.url, title: m.path }, el("img", { src: m.thumbnail_url, alt: m.name, loading: "lazy" })),
      el(
        "figcaption",
        {},
        el("span", { class: "chip match", text: m.id === group.keep ? "keep" : m.kind }),
        el("span", { class: "score", text: `${m.width}×${m.height} · ${Math.round(m.bytes / 1024)} KB` }),
        m.inliers ? el("span", { class: "score", title: "local matches with the image to keep", text: `${m.inliers} matches` }) : null,
        el("span", { class: "dup-name", text: m.name })
      )
    );
    const row = el(
      "div",
      { class: "actions" },
      el("button", {
        type: "button",
        class: "keep-one secondary",
        text: "Keep this one",
        disabled: m.id === group.keep,
        onclick: () => keepOne(m, node),
      }),
      el("button", {
        type: "button",
        class: "hide secondary",
        text: "Hide",
        onclick: () =>
          act("PUT", `/api/images/${m.id}/hidden`, { hidden: true }, `Hidden: ${m.name}`, () => item.classList.add("gone")),
      }),
      el("button", {
        type: "button",
        class: "remove danger",
        text: "Remove",
        onclick: () => {
          if (!window.confirm(`Remove ${m.name} from the library? The file stays on disk.`)) return;
          act("DELETE", `/api/images/${m.id}`, undefined, `Removed from the library: ${m.name}`, () => item.classList.add("gone"));
        },
      })
    );
    item.append(row);
    return item;
  }

  function show(doc) {
    list.replaceChildren();
    const images = doc.groups.reduce((n, g) => n + g.size, 0);
    status.textContent = doc.groups.length
      ? `${plural(doc.groups.length, "group")} of copies, ${plural(images, "image")} (${doc.candidates} candidate pairs, ${doc.newly_verified} verified now).`
      : "No copies found: no two images are the same picture. Lower the similarity to look further.";
    shown = doc.threshold;
    rest = doc.groups;
    more.hidden = true;
    showMore();
  }

  // Groups are drawn PAGE at a time: a library's hundreds of groups would make one page
  // tens of thousands of pixels tall; "Show more" draws the next ones.
  const PAGE = 20;
  let rest = [];
  const more = el("button", { type: "button", class: "secondary", hidden: true, onclick: () => showMore() });
  list.after(el("p", { class: "more" }, more));

  function showMore() {
    list.append(...rest.slice(0, PAGE).map(groupNode));
    rest = rest.slice(PAGE);
    more.hidden = rest.length === 0;
    more.textContent = `Show ${Math.min(PAGE, rest.length)} more (${plural(rest.length, "group")} left)`;
  }

  function groupNode(group) {
    const node = el("article", { class: "cluster dup-group" }, el("header", {}, el("h2", { text: plural(group.size, "image") })));
    const members = el("div", { class: "dup-members" });
    for (const m of group.members) members.append(member(group, m, node));
    node.append(members);
    return node;
  }

  async function load() {
    const t = Number(slider.value).toFixed(2);
    const started = Date.now();
    const waiting = () => {
      const seconds = Math.round((Date.now() - started) / 1000);
      status.textContent = `Looking for duplicates… ${seconds} s (the first pass verifies the candidate pairs, about a minute for 4,000 images; later ones only those of new images)`;
    };
    waiting();
    const ticking = setInterval(waiting, 1000);
    list.replaceChildren();
    rest = [];
    more.hidden = true;
    try {
      show(await api("GET", `/api/duplicates?threshold=${t}`));
    } catch (e) {
      status.textContent = e.message;
      toast(e.message, "error");
    } finally {
      clearInterval(ticking);
    }
  }

  slider.addEventListener("input", () => ($("threshold-value").textContent = Number(slider.value).toFixed(2)));
  $("dup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  document.addEventListener("DOMContentLoaded", load);
})();
