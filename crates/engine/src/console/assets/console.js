// wayback console: the little JavaScript the pages need. Loaded from /assets (the CSP allows no inline
// script); every POST carries the session's CSRF token from <meta name="csrf-token">.
"use strict";

const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

async function api(method, url, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") {
    opts.headers["X-CSRF-Token"] = csrf();
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body || {});
  }
  const r = await fetch(url, opts);
  const data = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    const t = el("textarea"); t.value = text; document.body.appendChild(t); t.select();
    document.execCommand("copy"); t.remove();
  }
  if (button) { button.textContent = "Copied"; setTimeout(() => (button.textContent = "Copy"), 1500); }
}

function bindCopy(root) {
  root.querySelectorAll("[data-copy]").forEach((b) =>
    b.addEventListener("click", (e) => { e.preventDefault(); copy(b.dataset.copy, b); }));
}

async function pollJob(id, linesEl, onDone) {
  for (;;) {
    const j = await api("GET", "/api/jobs/" + id);
    linesEl.textContent = j.lines.join("\n");
    if (j.done) return onDone(j);
    await new Promise((r) => setTimeout(r, 500));
  }
}

// --- Instances ---
function pageInstances() {
  document.querySelectorAll("section.instance").forEach((card) => {
    const name = card.dataset.name;
    const out = card.querySelector(".result");
    const base = "/api/instances/" + encodeURIComponent(name) + "/";
    const run = async (fn) => {
      out.className = "result"; out.textContent = "…";
      try { out.textContent = await fn(); } catch (e) { out.className = "result error"; out.textContent = e.message; }
    };
    card.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", () => {
      const a = b.dataset.action;
      if (a === "extend") run(async () => {
        const r = await api("POST", base + "extend", { by: card.querySelector(".extend-by").value });
        card.querySelector(".left").textContent = r.left; return name + " now expires in " + r.left;
      });
      if (a === "keep" || a === "unkeep") run(async () => {
        const r = await api("POST", base + "keep", a === "keep" ? {} : { off: true });
        card.querySelector(".left").textContent = r.kept ? "kept (no expiry)" : "TTL applies again";
        return r.message;
      });
      if (a === "reset") run(async () => {
        const r = await api("POST", base + "reset", { snapshot: card.querySelector(".reset-to").value });
        const pre = el("pre", { class: "lines" }); card.appendChild(pre);
        return await pollJob(r.job, pre, (j) => {
          if (j.error) throw new Error(j.error);
          card.querySelector(".source").textContent = j.result.source; return name + " now runs on " + j.result.source;
        });
      });
      if (a === "down") run(async () => {
        await api("POST", base + "down", {}); card.classList.add("gone"); setTimeout(() => card.remove(), 500);
        return name + " removed";
      });
    }));
    const log = card.querySelector("details.log");
    const refresh = async () => {
      if (!log.open) return;
      try {
        const l = await api("GET", base + "log?lines=40");
        log.querySelector("pre").textContent = (l.container || "") + (l.app ? "\n" + l.app : "");
      } catch (e) { log.querySelector("pre").textContent = e.message; }
    };
    log.addEventListener("toggle", refresh);
    setInterval(refresh, 3000);
  });
}

// --- Snapshot timeline: dots placed by date; zoom shows the newest year, month, day or hour ---
function pageTimeline() {
  const dots = [...document.querySelectorAll(".dot")];
  if (!dots.length) return;
  const dates = dots.map((d) => Number(d.dataset.date));
  const newest = Math.max(...dates), oldest = Math.min(...dates);
  const place = (span) => {
    const from = span ? newest - span : oldest;
    const width = Math.max(newest - from, 1);
    dots.forEach((d) => {
      const t = Number(d.dataset.date);
      d.hidden = t < from;
      d.style.left = (4 + 92 * ((t - from) / width)) + "%";
    });
    document.querySelectorAll("tr[data-date]").forEach((r) => (r.hidden = Number(r.dataset.date) < from));
    const day = (t) => new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
    document.querySelectorAll(".axis").forEach((a) => {
      a.querySelector(".from").textContent = day(from);
      a.querySelector(".to").textContent = day(newest);
    });
    document.querySelectorAll("[data-zoom]").forEach((b) =>
      b.classList.toggle("active", b.dataset.zoom === (span ? String(span) : "all")));
  };
  document.querySelectorAll("[data-zoom]").forEach((b) =>
    b.addEventListener("click", () => place(b.dataset.zoom === "all" ? 0 : Number(b.dataset.zoom))));
  place(0);
}

// --- File history ---
function pageHistory() {
  const form = document.getElementById("history-form");
  const out = document.getElementById("history-result");
  const diff = document.getElementById("history-diff");
  const find = async (pattern) => {
    out.textContent = "…"; diff.textContent = "";
    try {
      const f = await api("GET", "/api/find?pattern=" + encodeURIComponent(pattern));
      out.textContent = "";
      out.appendChild(el("pre", { id: "find-result" }, f.text));
    } catch (e) { out.textContent = ""; out.appendChild(el("p", { class: "error" }, e.message)); }
  };
  const show = async (path) => {
    if (!path.startsWith("/") || /[*?[]/.test(path)) return find(path);
    out.textContent = "…"; diff.textContent = "";
    let h;
    try { h = await api("GET", "/api/versions?path=" + encodeURIComponent(path)); }
    catch (e) { out.textContent = ""; out.appendChild(el("p", { class: "error" }, e.message)); return; }
    out.textContent = "";
    out.appendChild(el("p", { id: "history-summary" },
      `${h.path}: ${h.versions.length} versions in ${h.snapshots} snapshots of ${h.series}; live: ${h.live.state}`));
    const runs = el("table", { id: "history-runs" });
    runs.appendChild(el("tr")).append(el("th", {}, "state"), el("th", {}, "snapshots"), el("th", {}, "from"), el("th", {}, "to"));
    h.spans.forEach((s) => {
      const state = s.state === "present" ? "v" + s.version : (s.deleted ? "deleted" : "absent");
      runs.appendChild(el("tr", { class: "span " + state })).append(el("td", {}, state),
        el("td", {}, `#${s.first.id}–#${s.last.id} (${s.count})`), el("td", {}, s.first.date_utc), el("td", {}, s.last.date_utc));
    });
    out.appendChild(runs);
    const vt = el("table", { id: "history-versions" });
    vt.appendChild(el("tr")).append(el("th", {}, "version"), el("th", {}, "size"), el("th", {}, "mtime"), el("th", {}, "last in"), el("th", {}, ""));
    h.versions.forEach((v) => {
      const row = vt.appendChild(el("tr", { class: "version" }));
      const from = v.last.path;
      const d = el("button", { class: "diff-live" }, "diff vs live");
      d.addEventListener("click", async () => {
        try {
          const r = await api("GET", `/api/diff?path=${encodeURIComponent(path)}&from=${encodeURIComponent(from)}`);
          diff.textContent = r.same ? "the same as live" : (r.diff || "binary: " + JSON.stringify([r.a, r.b]));
        } catch (e) { diff.textContent = e.message; }
      });
      const dl = el("a", { href: `/api/show?path=${encodeURIComponent(path)}&from=${encodeURIComponent(from)}`, class: "download" }, "download");
      const up = el("a", { href: "/resurrect?snapshot=" + encodeURIComponent(from) }, "resurrect");
      const actions = el("td"); actions.append(d, " ", dl, " ", up);
      row.append(el("td", {}, "v" + v.number), el("td", {}, String(v.size)), el("td", {}, v.mtime_utc), el("td", {}, "#" + v.last.id), actions);
    });
    out.appendChild(vt);
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = document.getElementById("history-path").value;
    window.history.replaceState(null, "", "?path=" + encodeURIComponent(p));
    show(p);
  });
  const initial = document.getElementById("history-path").value;
  if (initial) show(initial);
}

// --- Resurrect: plan first, then confirm, then progress ---
function pageResurrect() {
  const form = document.getElementById("resurrect-form");
  const planBox = document.getElementById("plan");
  const progress = document.getElementById("progress");
  const body = () => {
    const f = new FormData(form), o = {};
    for (const [k, v] of f.entries()) o[k] = v;
    o.share = form.querySelector("[name=share]").checked;
    return o;
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    planBox.hidden = false; progress.hidden = true;
    planBox.querySelector("pre").textContent = "…";
    try {
      const p = await api("POST", "/api/plan", body());
      planBox.querySelector(".command").textContent = p.command + (p.warning ? "  — " + p.warning : "");
      planBox.querySelector("pre").textContent = p.text;
      document.getElementById("confirm").disabled = false;
    } catch (err) {
      planBox.querySelector(".command").textContent = "";
      planBox.querySelector("pre").textContent = err.message;
      document.getElementById("confirm").disabled = true;
    }
  });
  document.getElementById("confirm").addEventListener("click", async () => {
    document.getElementById("confirm").disabled = true;
    progress.hidden = false;
    const outcome = progress.querySelector(".outcome");
    outcome.textContent = "";
    try {
      const r = await api("POST", "/api/up", body());
      await pollJob(r.job, progress.querySelector(".lines"), (j) => {
        if (j.error) { outcome.appendChild(el("p", { class: "error" }, j.error)); return; }
        const s = j.result;
        outcome.appendChild(el("p", { id: "ready" }, "ready: " + s.name));
        if (s.url) { const p = outcome.appendChild(el("p")); p.append("URL ", el("a", { href: s.url, id: "instance-url", target: "_blank" }, s.url)); }
        if (s.share_url) {
          const p = outcome.appendChild(el("p"));
          p.append("Share link ", el("input", { id: "share-link", readonly: "", value: s.share_url, size: "70" }), " ",
            el("button", { "data-copy": s.share_url }, "Copy"));
          bindCopy(p);
        }
        outcome.appendChild(el("p")).appendChild(el("a", { href: "/" }, "to the instances"));
      });
    } catch (err) { outcome.appendChild(el("p", { class: "error" }, err.message)); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  bindCopy(document);
  if (document.querySelector("section.instance")) pageInstances();
  if (document.querySelector(".track")) pageTimeline();
  if (document.getElementById("history-form")) pageHistory();
  if (document.getElementById("resurrect-form")) pageResurrect();
});
