// mailferry status page: polls the JSON API and draws it. Plain DOM, no
// framework, no build step; every value goes in through textContent.
"use strict";

const STATES = ["queued", "running", "done", "failed", "partial", "paused"];
const POLL_MS = 2000;
const DETAIL_MS = 4000;

const $ = (id) => document.getElementById(id);
let last = null;        // the last GET /api/accounts
let selected = null;    // the account shown in the detail view
let detailTimer = null;

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function fmtBytes(n) {
  if (n < 1000) return n + " B";
  const units = "kMGTPE";
  let i = -1;
  do { n /= 1000; i++; } while (n >= 1000 && i < units.length - 1);
  return n.toFixed(1) + " " + units[i] + "B";
}

function fmtNum(n) { return n.toLocaleString("en-US"); }

function fmtDuration(s) {
  if (s == null || !isFinite(s)) return "";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  const h = Math.floor(s / 3600);
  if (h < 48) return h + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(h / 24) + " d " + (h % 24) + " h";
}

function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t);
  return d.toLocaleString();
}

function fmtRate(r) {
  if (!r) return "";
  return r.messages_per_second.toFixed(1) + " msg/s, " + fmtBytes(r.bytes_per_second) + "/s";
}

function showMessage(text, isError) {
  const m = $("message");
  m.textContent = text;
  m.className = isError ? "error" : "";
  m.hidden = !text;
}

async function api(method, path) {
  const res = await fetch(path, { method, credentials: "same-origin", headers: { "Accept": "application/json" } });
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  return { status: res.status, body };
}

function query() {
  const p = new URLSearchParams();
  for (const [k, id] of [["state", "f-state"], ["host", "f-host"], ["class", "f-class"], ["sort", "f-sort"]]) {
    const v = $(id).value;
    if (v) p.set(k, v);
  }
  return p.toString();
}

async function refresh() {
  let r;
  try {
    r = await api("GET", "api/accounts?" + query());
  } catch (e) {
    $("mode").textContent = "not reachable";
    $("mode").className = "badge";
    return;
  }
  if (r.status === 401) {
    $("login").hidden = false;
    $("mode").textContent = "log in to see the accounts";
    showMessage("This page needs the token: enter it above.", false);
    return;
  }
  if (r.status !== 200) {
    showMessage((r.body && r.body.error) || ("the server answered " + r.status), true);
    return;
  }
  last = r.body;
  draw(last);
}

function draw(d) {
  $("mode").textContent = d.live ? "live run" : "from the ledger";
  $("mode").className = "badge" + (d.live ? " live" : "");
  $("updated").textContent = "updated " + new Date(d.generated).toLocaleTimeString();
  $("login").hidden = !d.need_login;
  $("logout").hidden = d.need_login || !d.actions;
  fillSelect($("f-state"), STATES);
  fillSelect($("f-host"), d.hosts);
  fillSelect($("f-class"), d.classes);
  drawTotals(d.totals);
  drawChart(d.throughput);
  drawAccounts(d);
  if (selected && !d.accounts.some((a) => a.name === selected)) {
    // Filtered out of the list: the detail view stays, refreshed on its own.
  }
}

function fillSelect(sel, values) {
  const have = new Set([...sel.options].map((o) => o.value));
  for (const v of values) {
    if (!have.has(v)) sel.append(el("option", { value: v, text: v }));
  }
}

function drawTotals(t) {
  $("t-accounts").textContent = fmtNum(t.accounts);
  const states = $("t-states");
  states.replaceChildren();
  for (const s of STATES) {
    const n = t.by_state[s] || 0;
    if (!n) continue;
    const b = el("button", { type: "button", class: s, text: n + " " + s, "data-state": s });
    b.addEventListener("click", () => { $("f-state").value = $("f-state").value === s ? "" : s; refresh(); });
    states.append(b);
  }
  const m = t.messages;
  $("t-messages").textContent = fmtNum(m.done) + " / " + fmtNum(m.total);
  $("t-bar").style.width = (m.total ? Math.min(100, 100 * m.done / m.total) : 0) + "%";
  $("t-bytes").textContent = fmtBytes(t.bytes.done) + " / " + fmtBytes(t.bytes.total);
  $("t-skipfail").textContent = fmtNum(m.skipped) + " skipped, " + fmtNum(m.failed) + " failed";
  $("t-rate").textContent = t.rate ? fmtRate(t.rate) : "–";
  $("t-eta").textContent = t.eta_seconds != null ? "about " + fmtDuration(t.eta_seconds) + " left" : "";
}

function drawChart(tp) {
  const svg = $("chart");
  svg.replaceChildren();
  const s = tp.samples || [];
  const W = 800, H = 140;
  if (!s.length) {
    $("chart-note").textContent = "(nothing copied yet)";
    $("chart-from").textContent = $("chart-to").textContent = $("chart-max").textContent = "";
    return;
  }
  const maxN = Math.max(1, ...s.map((x) => x.messages));
  const w = W / s.length;
  const ns = "http://www.w3.org/2000/svg";
  s.forEach((x, i) => {
    const h = (x.messages / maxN) * (H - 4);
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", (i * w).toFixed(2));
    r.setAttribute("y", (H - h).toFixed(2));
    r.setAttribute("width", Math.max(w - 1, 0.5).toFixed(2));
    r.setAttribute("height", h.toFixed(2));
    const t = document.createElementNS(ns, "title");
    t.textContent = new Date(x.start).toLocaleTimeString() + ": " + x.messages + " messages, " + fmtBytes(x.bytes);
    r.append(t);
    svg.append(r);
  });
  $("chart-note").textContent = "(per " + fmtDuration(tp.step_seconds) + ")";
  $("chart-from").textContent = new Date(s[0].start).toLocaleTimeString();
  $("chart-to").textContent = new Date(s[s.length - 1].start).toLocaleTimeString();
  $("chart-max").textContent = "max " + fmtNum(maxN) + " messages per " + fmtDuration(tp.step_seconds);
}

function stateBadge(s) { return el("span", { class: "state " + s, text: s }); }

// runningText says where an account runs now: the fleet worker, or the
// pid on the ledger's machine.
function runningText(r) { return r.worker ? "on " + r.worker : "pid " + r.pid; }

// pauseText says who paused an account, why and until when.
function pauseText(p) {
  return (p.until ? "paused until " + fmtTime(p.until) : "paused") + ": " + p.reason;
}

function pausedByOperator(a) { return a.pause && a.pause.by === "operator"; }

function errorCell(a) {
  const td = el("td");
  if (a.pause) td.append(el("div", { class: "pause-text", text: pauseText(a.pause) }));
  if (a.last_error) {
    td.append(el("div", { class: "error-text", text: a.last_error.text }));
    if (a.last_error.hint) td.append(el("div", { class: "hint", text: a.last_error.hint }));
    if (a.last_error.class) td.append(el("div", { class: "class", text: a.last_error.class }));
  } else if (a.retry_requested) {
    td.append(el("div", { class: "muted", text: "retry asked for " + fmtTime(a.retry_requested) + ": the next run tries again" }));
  }
  return td;
}

function actionButtons(a, d) {
  const span = el("span", { class: "actions" });
  if (!d.actions) return span;
  const add = (action, label) => {
    const b = el("button", { type: "button", text: label, "data-action": action, "data-account": a.name });
    b.addEventListener("click", (ev) => { ev.stopPropagation(); act(a.name, action); });
    span.append(b);
  };
  if (["failed", "partial"].includes(a.state) || a.messages.failed > 0 || a.messages.skipped > 0) add("retry", "retry");
  if (pausedByOperator(a)) add("resume", "resume"); else add("pause", "pause");
  return span;
}

function progressText(a) {
  const m = a.messages;
  if (m.total === 0 && !a.last_run) return a.state === "running" ? "listing…" : "not started yet";
  return fmtNum(m.done) + " / " + fmtNum(m.total) + " messages" +
    (m.failed ? ", " + m.failed + " failed" : "") + (m.skipped ? ", " + m.skipped + " skipped" : "");
}

function drawAccounts(d) {
  const tbody = document.querySelector("#accounts tbody");
  tbody.replaceChildren();
  for (const a of d.accounts) {
    const m = a.messages;
    const pct = m.total ? Math.min(100, 100 * m.done / m.total) : 0;
    const bar = el("div", { class: "bar" }, el("div"));
    bar.firstChild.style.width = pct + "%";
    const tr = el("tr", { "data-account": a.name, "data-state": a.state },
      el("td", {}, el("div", { text: a.name }), el("div", { class: "muted", text: a.source_host ? a.source_host + " → " + a.dest_host : "" })),
      el("td", {}, stateBadge(a.state), a.running_in ? el("div", { class: "muted running-in", text: runningText(a.running_in) }) : null),
      el("td", {}, bar, el("div", { class: "muted", text: progressText(a) })),
      el("td", { class: "num", text: fmtBytes(a.bytes.done) + " / " + fmtBytes(a.bytes.total) }),
      el("td", { class: "num", text: fmtRate(a.rate) }),
      el("td", { class: "num", text: a.eta_seconds != null ? fmtDuration(a.eta_seconds) : "" }),
      errorCell(a),
      el("td", {}, actionButtons(a, d)));
    if (a.name === selected) tr.classList.add("selected");
    tr.addEventListener("click", () => openDetail(a.name));
    tbody.append(tr);
  }
  $("shown").textContent = d.accounts.length + " of " + d.totals.accounts + " accounts shown";
}

async function act(name, action) {
  const r = await api("POST", "api/accounts/" + encodeURIComponent(name) + "/" + action);
  if (r.status === 200) {
    showMessage(r.body.message, false);
  } else if (r.status === 401) {
    $("login").hidden = false;
    showMessage("Log in with the token to " + action + " (" + ((r.body && r.body.error) || "401") + ")", true);
  } else {
    showMessage((r.body && r.body.error) || ("the server answered " + r.status), true);
  }
  refresh();
  if (selected) loadDetail();
}

function openDetail(name) {
  selected = name;
  location.hash = "account=" + encodeURIComponent(name);
  loadDetail();
  if (detailTimer) clearInterval(detailTimer);
  detailTimer = setInterval(loadDetail, DETAIL_MS);
}

function closeDetail() {
  selected = null;
  if (detailTimer) clearInterval(detailTimer);
  detailTimer = null;
  $("detail").hidden = true;
  history.replaceState(null, "", location.pathname);
  if (last) drawAccounts(last);
}

function msgRows(tbody, list) {
  tbody.replaceChildren();
  for (const m of list) {
    tbody.append(el("tr", {}, el("td", { text: m.source_folder || "(POP3)" }), el("td", { text: m.source_id }),
      el("td", { class: "num", text: fmtBytes(m.size) }), el("td", { text: m.reason }), el("td", { text: fmtTime(m.when) })));
  }
}

async function loadDetail() {
  if (!selected) return;
  const name = selected;
  const r = await api("GET", "api/accounts/" + encodeURIComponent(name));
  if (name !== selected) return;
  if (r.status !== 200) {
    showMessage((r.body && r.body.error) || ("the server answered " + r.status), true);
    return;
  }
  const a = r.body;
  const box = $("detail");
  box.hidden = false;
  box.setAttribute("data-account", a.name);
  box.setAttribute("data-state", a.state);
  $("d-name").textContent = a.name;
  $("d-state").className = "state " + a.state;
  $("d-state").textContent = a.state;
  $("d-actions").replaceChildren(actionButtons(a, last || { actions: false }));
  const m = a.messages;
  let sum = fmtNum(m.done) + " of " + fmtNum(m.total) + " messages copied (" + fmtBytes(a.bytes.done) + " of " + fmtBytes(a.bytes.total) + ")";
  if (m.skipped) sum += ", " + m.skipped + " skipped";
  if (m.failed) sum += ", " + m.failed + " failed";
  if (m.pending) sum += ", " + m.pending + " pending";
  if (a.rate) sum += "; " + fmtRate(a.rate);
  if (a.eta_seconds != null) sum += ", about " + fmtDuration(a.eta_seconds) + " left";
  if (a.source_host) sum += ". " + a.source_host + " → " + a.dest_host;
  if (a.running_in) sum += ". Running now, " + runningText(a.running_in);
  if (a.retry_requested) sum += ". Retry asked for " + fmtTime(a.retry_requested) + ".";
  if (a.pause) sum += ". " + pauseText(a.pause).replace(/^p/, "P") + ".";
  $("d-summary").textContent = sum;
  const eb = $("d-error");
  eb.hidden = !a.last_error;
  if (a.last_error) {
    eb.querySelector(".error-text").textContent = a.last_error.text;
    const h = eb.querySelector(".hint");
    h.textContent = a.last_error.hint || "";
    h.hidden = !a.last_error.hint;
  }
  const ft = document.querySelector("#d-folders tbody");
  ft.replaceChildren();
  for (const f of a.folders) {
    ft.append(el("tr", {}, el("td", { text: f.source || "(POP3)" }), el("td", { text: f.dest }),
      el("td", { class: "num", text: fmtNum(f.done) }), el("td", { class: "num", text: fmtNum(f.skipped) }),
      el("td", { class: "num", text: fmtNum(f.failed) }), el("td", { class: "num", text: fmtNum(f.pending) }),
      el("td", { class: "num", text: fmtBytes(f.bytes) })));
  }
  msgRows(document.querySelector("#d-failed tbody"), a.failed_messages);
  msgRows(document.querySelector("#d-skipped tbody"), a.skipped_messages);
  $("d-failed-n").textContent = "(" + m.failed + (m.failed > a.failed_messages.length ? ", first " + a.failed_messages.length + " shown" : "") + ")";
  $("d-skipped-n").textContent = "(" + m.skipped + (m.skipped > a.skipped_messages.length ? ", first " + a.skipped_messages.length + " shown" : "") + ")";
  const rt = document.querySelector("#d-runs tbody");
  rt.replaceChildren();
  for (const run of a.runs) {
    rt.append(el("tr", {}, el("td", { text: fmtTime(run.started) }),
      el("td", { text: run.finished ? fmtTime(run.finished) : "not finished" }),
      el("td", { text: run.result || "running" }), el("td", { class: "num", text: run.copied }),
      el("td", { class: "num", text: run.skipped }), el("td", { class: "num", text: run.failed }),
      el("td", { class: "error-text", text: run.error || "" })));
  }
  if (last) drawAccounts(last);
}

async function login(ev) {
  ev.preventDefault();
  const res = await fetch("api/session", { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: $("token").value }) });
  $("token").value = "";
  if (res.status === 200) {
    showMessage("Logged in.", false);
    $("login").hidden = true;
  } else {
    showMessage("Wrong token.", true);
  }
  refresh();
}

async function logout() {
  await fetch("api/session", { method: "DELETE", credentials: "same-origin" });
  showMessage("Logged out.", false);
  refresh();
}

function start() {
  for (const s of STATES) $("f-state").append(el("option", { value: s, text: s }));
  for (const id of ["f-state", "f-host", "f-class", "f-sort"]) $(id).addEventListener("change", refresh);
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("d-close").addEventListener("click", closeDetail);
  const m = location.hash.match(/^#account=(.*)$/);
  if (m) openDetail(decodeURIComponent(m[1]));
  refresh();
  setInterval(refresh, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
