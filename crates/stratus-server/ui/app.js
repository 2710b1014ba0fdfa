// Stratus dashboard. Plain JavaScript, no framework and no build step: it polls the
// server's read endpoints (every request carries X-Stratus-UI: 1, which the server
// requires with the session cookie) and draws its charts as SVG. Text from the
// server is only ever set with textContent, never parsed as HTML.
"use strict";

const POLL_MS = 3000;
const CHART_POLL_MS = 10000;
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  overview: null,
  selected: null,
  logFunction: "",
  logFilter: "",
  logAfter: 0,
  logKey: "",
  logBusy: false,
  // The dead-letter queues and their message counts last drawn, and which read of
  // them is the latest (an older answer arriving late is dropped).
  dlqSignature: null,
  dlqRead: 0,
  timers: [],
};

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** GET or POST on the server; resolves to {status, data} and never throws. */
async function api(path, options = {}) {
  try {
    const resp = await fetch(path, {
      method: options.method || "GET",
      credentials: "same-origin",
      headers: Object.assign({ "X-Stratus-UI": "1" }, options.body ? { "Content-Type": "application/json" } : {}),
      body: options.body ? JSON.stringify(options.body) : undefined,
    });
    let data = null;
    const text = await resp.text();
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = { message: text }; }
    }
    return { status: resp.status, data };
  } catch (e) {
    return { status: 0, data: { message: "The server cannot be reached: " + e.message } };
  }
}

const fmt = {
  int: (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US")),
  ms: (n) => (n === null || n === undefined ? "–" : n >= 1000 ? (n / 1000).toFixed(2) + " s" : n.toFixed(n < 10 ? 2 : 1) + " ms"),
  pct: (n) => (n === null || n === undefined ? "–" : Math.round(n * 100) + "%"),
  time: (ms) => new Date(ms).toLocaleTimeString("en-GB", { hour12: false }),
  dateTime: (s) => (s ? String(s).replace("T", " ").replace(/\.\d+/, "").replace("+0000", " UTC") : "–"),
};

function setStatus(text, bad) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("bad", !!bad);
}

// ---------------------------------------------------------------- sign-in

function showLogin(message) {
  stopPolling();
  $("dashboard").hidden = true;
  $("who").hidden = true;
  $("login-view").hidden = false;
  const err = $("login-error");
  err.hidden = !message;
  err.textContent = message || "";
  setStatus("");
  $("login-key").focus();
}

async function submitLogin(ev) {
  ev.preventDefault();
  const button = $("login-submit");
  button.disabled = true;
  $("login-error").hidden = true;
  const r = await api("/ui/login", {
    method: "POST",
    body: {
      accessKeyId: $("login-key").value.trim(),
      secretAccessKey: $("login-secret").value,
      durationSeconds: Number($("login-duration").value),
    },
  });
  button.disabled = false;
  if (r.status === 200) {
    $("login-secret").value = "";
    start();
  } else {
    showLogin((r.data && r.data.message) || "Sign-in failed (HTTP " + r.status + ").");
  }
}

async function logout() {
  await api("/ui/logout", { method: "POST" });
  showLogin("Signed out.");
}

// ---------------------------------------------------------------- polling

function stopPolling() {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
}

async function start() {
  const ok = await refreshOverview();
  if (!ok) return;
  $("login-view").hidden = true;
  $("dashboard").hidden = false;
  stopPolling();
  refreshCharts();
  refreshAutoscaling();
  refreshLogs();
  refreshDeadLetters();
  state.timers.push(setInterval(refreshOverview, POLL_MS));
  state.timers.push(setInterval(refreshLogs, POLL_MS));
  state.timers.push(setInterval(refreshCharts, CHART_POLL_MS));
  state.timers.push(setInterval(refreshAutoscaling, CHART_POLL_MS));
  state.timers.push(setInterval(refreshDeadLetters, CHART_POLL_MS));
  state.timers.push(setInterval(refreshQueueDeadLetters, CHART_POLL_MS));
}

/** Loads the overview; answers whether the dashboard may be shown. */
async function refreshOverview() {
  const r = await api("/stratus/v1/ui/overview");
  if (r.status === 401 || (r.status === 403 && r.data && /signature|token|session/i.test(r.data.message || ""))) {
    showLogin(state.overview ? (r.data && r.data.message) : "");
    state.overview = null;
    return false;
  }
  if (r.status !== 200) {
    const msg = (r.data && r.data.message) || "HTTP " + r.status;
    if (!state.overview) {
      showLogin("This key cannot read the dashboard: " + msg);
      return false;
    }
    setStatus("Update failed: " + msg, true);
    return true;
  }
  state.overview = r.data;
  renderOverview(r.data);
  setStatus("Updated " + fmt.time(Date.now()));
  return true;
}

// ---------------------------------------------------------------- overview

function renderOverview(o) {
  const who = o.principal || {};
  $("who").hidden = false;
  $("whoami").textContent = who.accessKeyId ? who.user + " (" + who.accessKeyId + ")" : "no sign-in needed (--no-auth)";
  $("logout").hidden = !who.accessKeyId;

  const fns = o.functions || [];
  const sum = (k) => fns.reduce((a, f) => a + (f[k] || 0), 0);
  const acct = o.account || {};
  const dlqs = deadLetterQueues(o);
  const queued = dlqs.reduce((a, q) => a + q.visible + q.inFlight + q.delayed, 0);
  const tiles = [
    ["Functions", fmt.int(fns.length)],
    ["Invocations", fmt.int(sum("invocations"))],
    ["Errors", fmt.int(sum("errors"))],
    ["Throttles", fmt.int(sum("throttles"))],
    ["Concurrency in use", fmt.int(acct.inUse) + " / " + fmt.int(acct.concurrencyLimit)],
    ["Environments", fmt.int(acct.environments)],
    ["Async backlog", fmt.int(o.asyncPending)],
    ["Dead letters", fmt.int(sum("deadLetters") + queued)],
  ];
  $("tiles").replaceChildren(...tiles.map(([l, v]) => h("div", { class: "tile" }, h("div", { class: "v", text: v }), h("div", { class: "l", text: l }))));

  $("fn-count").textContent = fns.length === 1 ? "1 function" : fns.length + " functions";
  $("fn-empty").hidden = fns.length > 0;
  const body = $("fn-table").tBodies[0];
  // Rows are rebuilt on every poll; keyboard focus stays on the same function.
  const focused = document.activeElement && document.activeElement.closest ? document.activeElement.closest("#fn-table tbody tr") : null;
  const focusName = focused ? focused.dataset.name : null;
  body.replaceChildren(...fns.map(functionRow));
  if (focusName) body.querySelector('tr[data-name="' + CSS.escape(focusName) + '"]')?.focus();

  syncSelect($("chart-function"), fns, "All functions");
  syncSelect($("log-function"), fns, null);
  syncSelect($("dlq-function"), fns, null);
  if (!state.logFunction && fns.length) {
    state.logFunction = fns[0].name;
    $("log-function").value = state.logFunction;
    refreshLogs();
    $("dlq-function").value = state.logFunction;
    refreshDeadLetters();
  }
  if (state.selected && !fns.some((f) => f.name === state.selected)) state.selected = null;
  renderDetail();
  renderQueues(o);
  // The dead-letter queues' contents are read again when their counts change (and
  // every CHART_POLL_MS, for messages changing state).
  const signature = dlqs.map((q) => [q.name, q.deadLetterFor.join("+"), q.visible, q.inFlight, q.delayed].join(":")).join(",");
  if (signature !== state.dlqSignature) {
    state.dlqSignature = signature;
    refreshQueueDeadLetters();
  }
}

/** The queues some queue's redrive policy sends its failures to. */
function deadLetterQueues(o) {
  return ((o && o.queues) || []).filter((q) => q.deadLetterFor && q.deadLetterFor.length);
}

function syncSelect(select, fns, allLabel) {
  const wanted = (allLabel !== null ? [""] : []).concat(fns.map((f) => f.name));
  const have = Array.from(select.options).map((o) => o.value);
  if (wanted.join("\n") === have.join("\n")) return;
  const value = select.value;
  select.replaceChildren(...wanted.map((n) => h("option", { value: n, text: n || allLabel })));
  if (wanted.includes(value)) select.value = value;
}

function concurrencyCell(f) {
  const ceiling = Math.max(f.reserved || 0, f.provisionedRequested || 0, f.concurrent || 0, f.environments.total || 0, 1);
  const pct = (n) => Math.min(100, (100 * n) / ceiling) + "%";
  const bar = h("div", { class: "bar", title: "in use " + f.concurrent + ", provisioned " + f.provisionedAvailable + "/" + f.provisionedRequested + ", reserved " + (f.reserved === null || f.reserved === undefined ? "none" : f.reserved) });
  const parts = [];
  if (f.reserved !== null && f.reserved !== undefined) parts.push(["res", f.reserved]);
  if (f.provisionedRequested) parts.push(["prov", f.provisionedAvailable]);
  parts.push(["use", f.concurrent]);
  for (const [cls, n] of parts) {
    const s = h("span", { class: cls });
    s.style.width = pct(n);
    bar.append(s);
  }
  const label = f.concurrent + " in use · " + (f.provisionedRequested ? f.provisionedAvailable + "/" + f.provisionedRequested + " prov · " : "") + (f.reserved === null || f.reserved === undefined ? "unreserved" : f.reserved + " reserved");
  return h("div", { class: "conc" }, bar, h("span", { class: "muted", text: label }));
}

function functionRow(f) {
  const aliases = f.aliases.map((a) => a.name);
  const versions = f.versions.filter((v) => v.version !== "$LATEST").length;
  const tr = h(
    "tr",
    {
      "data-name": f.name,
      class: state.selected === f.name ? "sel" : null,
      tabindex: 0,
      "aria-selected": state.selected === f.name ? "true" : "false",
      onclick: () => select(f.name),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(f.name); } },
    },
    h("td", {}, h("span", { class: "fn-name", text: f.name })),
    h("td", { text: f.runtime }),
    h("td", {}, h("span", { class: "badge", text: versions + (versions === 1 ? " version" : " versions") }), aliases.map((a) => h("span", { class: "badge", text: a }))),
    h("td", {}, concurrencyCell(f)),
    h("td", { class: "num c-invocations", text: fmt.int(f.invocations) }),
    h("td", { class: "num c-errors " + (f.errors ? "nz-bad" : ""), text: fmt.int(f.errors) }),
    h("td", { class: "num c-throttles " + (f.throttles ? "nz-warn" : ""), text: fmt.int(f.throttles) }),
    h("td", { class: "num", text: fmt.ms(f.avgDurationMs) }),
    h("td", { class: "num", text: f.environments.busy + "/" + f.environments.total }),
    h("td", { class: "num", text: fmt.int(f.asyncPending) }),
    h("td", { class: "num " + (f.deadLetters ? "nz-bad" : ""), text: fmt.int(f.deadLetters) }),
  );
  return tr;
}

function select(name) {
  state.selected = state.selected === name ? null : name;
  if (state.selected) {
    $("chart-function").value = name;
    $("log-function").value = name;
    $("dlq-function").value = name;
    state.logFunction = name;
    refreshCharts();
    refreshLogs();
    refreshDeadLetters();
  }
  if (state.overview) renderOverview(state.overview);
}

function renderDetail() {
  const f = state.overview && (state.overview.functions || []).find((x) => x.name === state.selected);
  $("detail").hidden = !f;
  if (!f) return;
  $("detail-title").textContent = f.name + " · " + f.runtime + " · " + f.memorySize + " MB · " + f.timeout + " s timeout";
  const prov = new Map(f.provisioned.map((p) => [p.qualifier, p]));
  const status = (p) => h("span", { class: "badge " + (p.status === "READY" ? "ok" : p.status === "FAILED" ? "bad" : "warn"), text: p.status, title: p.reason || null });
  $("versions").tBodies[0].replaceChildren(
    ...f.versions.map((v) =>
      h("tr", {},
        h("td", { text: v.version }),
        h("td", { text: fmt.dateTime(v.lastModified) }),
        h("td", { class: "mono", text: (v.codeSha256 || "").slice(0, 12) }),
        h("td", { class: "num", text: v.environments.busy + "/" + v.environments.total }))),
  );
  const aliasRows = f.aliases.map((a) => {
    const extra = Object.entries(a.additionalVersions || {}).map(([v, w]) => " + " + v + " (" + Math.round(w * 100) + "%)").join("");
    // Provisioned on the alias itself, else on the version it points to.
    const own = prov.get(a.name);
    const p = own || prov.get(a.functionVersion);
    const where = own ? "" : " on version " + a.functionVersion;
    return h("tr", {}, h("td", { text: a.name }), h("td", { text: a.functionVersion + extra }), h("td", {}, p ? [p.available + "/" + p.requested + where + " ", status(p)] : "–"));
  });
  $("aliases").tBodies[0].replaceChildren(...(aliasRows.length ? aliasRows : [h("tr", {}, h("td", { colspan: 3, class: "empty", text: "No aliases." }))]));
  const provRows = f.provisioned.map((p) => h("tr", {}, h("td", { text: p.qualifier }), h("td", { class: "num", text: p.available + " / " + p.requested }), h("td", {}, status(p))));
  $("provisioned").tBodies[0].replaceChildren(...(provRows.length ? provRows : [h("tr", {}, h("td", { colspan: 3, class: "empty", text: "None configured." }))]));
}

function renderQueues(o) {
  const qs = o.queues || [];
  const fns = (o.functions || []).filter((f) => f.asyncPending > 0);
  const out = [h("p", {}, "Async events waiting for delivery or a retry: ", h("strong", { id: "async-pending", text: fmt.int(o.asyncPending) }), fns.length ? " (" + fns.map((f) => f.name + ": " + f.asyncPending).join(", ") + ")" : "")];
  if (!qs.length) {
    out.push(h("p", { class: "empty", text: "No queues." }));
  } else {
    out.push(h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", { text: "Queue" }), h("th", { class: "num", text: "Visible" }), h("th", { class: "num", text: "In flight" }), h("th", { class: "num", text: "Delayed" }), h("th", { text: "" }))),
      h("tbody", {}, qs.map((q) => h("tr", {},
        h("td", { text: q.name }),
        h("td", { class: "num", text: fmt.int(q.visible) }),
        h("td", { class: "num", text: fmt.int(q.inFlight) }),
        h("td", { class: "num", text: fmt.int(q.delayed) }),
        h("td", {}, q.deadLetterFor.length ? h("span", { class: "badge warn", text: "dead-letter queue of " + q.deadLetterFor.join(", ") }) : "")))))));
  }
  $("queues").replaceChildren(...out);
}

// ---------------------------------------------------------------- charts

/** Short axis labels: 1.2k, 18ms, 1.5s, 80%. */
const axis = {
  int: (n) => (n >= 10000 ? Math.round(n / 1000) + "k" : n >= 1000 ? (n / 1000).toFixed(1) + "k" : String(Math.round(n))),
  ms: (n) => (n >= 1000 ? (n / 1000).toFixed(1) + "s" : Math.round(n) + "ms"),
  pct: (n) => Math.round(n * 100) + "%",
};

const CHARTS = [
  { key: "Invocations", label: "Invocations", color: "#1d4ed8", fmt: fmt.int, axis: axis.int },
  { key: "Errors", label: "Errors", color: "#dc2626", fmt: fmt.int, axis: axis.int },
  { key: "Throttles", label: "Throttles", color: "#d97706", fmt: fmt.int, axis: axis.int },
  { key: "ColdStarts", label: "Cold starts", color: "#7c3aed", fmt: fmt.int, axis: axis.int },
  { key: "DurationP99", label: "Duration p99", color: "#0891b2", fmt: fmt.ms, axis: axis.ms },
  { key: "ProvisionedConcurrencyUtilizationMax", label: "Provisioned utilization", color: "#059669", fmt: fmt.pct, axis: axis.pct, max: 1 },
];

async function refreshCharts() {
  const fn = $("chart-function").value;
  $("chart-scope").textContent = (fn || "all functions") + ", last 60 minutes";
  const q = "minutes=60" + (fn ? "&function=" + encodeURIComponent(fn) : "");
  const r = await api("/stratus/v1/metrics/series?" + q);
  const points = r.status === 200 && r.data && Array.isArray(r.data.points) ? r.data.points : null;
  const why = r.status === 404 ? "No data yet (this server does not record metrics series)" : r.status === 403 ? "Not allowed for this key" : "No data yet";
  $("charts").replaceChildren(...CHARTS.map((c) => chart(c, points, why)));
}

function chart(c, points, why) {
  const values = points ? points.map((p) => (p[c.key] === null || p[c.key] === undefined ? null : Number(p[c.key]))) : [];
  const present = values.filter((v) => v !== null);
  const last = present.length ? present[present.length - 1] : null;
  const head = h("div", { class: "t" }, h("span", { text: c.label }), h("span", { class: "now", text: points ? c.fmt(last) : "" }));
  if (!points || !points.length) return h("div", { class: "chart", "data-metric": c.key }, head, h("div", { class: "nodata", text: why }));
  const W = 300, H = 110, L = 38, B = 16, T = 6;
  const max = Math.max(c.max || 0, ...present, 1e-9);
  const x = (i) => L + (values.length === 1 ? 0 : (i * (W - L - 4)) / (values.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  let d = "", area = "", open = false, first = 0;
  values.forEach((v, i) => {
    if (v === null) { if (open) area += "L" + x(i - 1) + "," + y(0) + "L" + x(first) + "," + y(0) + "Z"; open = false; return; }
    if (!open) { d += "M" + x(i) + "," + y(v); area += "M" + x(i) + "," + y(v); first = i; open = true; }
    else { d += "L" + x(i) + "," + y(v); area += "L" + x(i) + "," + y(v); }
  });
  if (open) area += "L" + x(values.length - 1) + "," + y(0) + "L" + x(first) + "," + y(0) + "Z";
  const t0 = points[0].timestamp * 1000, t1 = points[points.length - 1].timestamp * 1000;
  const g = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": c.label },
    svg("line", { class: "grid", x1: L, x2: W, y1: y(max), y2: y(max) }),
    svg("line", { class: "grid", x1: L, x2: W, y1: y(0), y2: y(0) }),
    svg("text", { x: L - 4, y: y(max) + 3, "text-anchor": "end" }, c.axis(max)),
    svg("text", { x: L - 4, y: y(0) + 3, "text-anchor": "end" }, c.axis(0)),
    svg("text", { x: L, y: H - 3 }, fmt.time(t0).slice(0, 5)),
    svg("text", { x: W - 2, y: H - 3, "text-anchor": "end" }, fmt.time(t1).slice(0, 5)),
    svg("path", { d: area, fill: c.color, "fill-opacity": 0.12, stroke: "none" }),
    svg("path", { d, fill: "none", stroke: c.color, "stroke-width": 1.6, "vector-effect": "non-scaling-stroke" }),
  );
  // A minute with no neighbour to draw a line to is a dot.
  values.forEach((v, i) => {
    if (v !== null && (values[i - 1] ?? null) === null && (values[i + 1] ?? null) === null) {
      g.append(svg("circle", { cx: x(i), cy: y(v), r: 2.2, fill: c.color }));
    }
  });
  // One invisible column per minute, whose tooltip gives its value.
  values.forEach((v, i) => {
    const wcol = (W - L) / values.length;
    g.append(svg("rect", { x: x(i) - wcol / 2, y: 0, width: wcol, height: H - B, fill: "transparent" }, svg("title", {}, fmt.time(points[i].timestamp * 1000).slice(0, 5) + "  " + c.fmt(v))));
  });
  return h("div", { class: "chart", "data-metric": c.key, "data-total": present.reduce((a, v) => a + v, 0) }, head, g);
}

// ---------------------------------------------------------------- logs

const LOG_PAGE = 1000;
const LOG_KEEP = 500;

async function refreshLogs() {
  const fn = state.logFunction;
  const list = $("logs-list");
  if (!fn || state.logBusy) return;
  state.logBusy = true;
  try {
    await loadLogs(fn, list);
  } finally {
    state.logBusy = false;
  }
}

async function loadLogs(fn, list) {
  const key = fn + "\n" + state.logFilter;
  const fresh = key !== state.logKey;
  let base = "function=" + encodeURIComponent(fn) + "&limit=" + LOG_PAGE;
  if (state.logFilter) base += "&filter=" + encodeURIComponent(state.logFilter);
  // The endpoint pages oldest first: a fresh view starts an hour back and pages
  // forward (keeping the newest lines); later polls ask for what came after.
  let after = fresh ? null : state.logAfter;
  let events = [];
  for (let page = 0; page < (fresh ? 50 : 10); page++) {
    const q = base + (after === null ? "&start=" + (Date.now() - 60 * 60 * 1000) : "&after=" + after);
    const r = await api("/stratus/v1/logs?" + q);
    if (key !== state.logFunction + "\n" + state.logFilter) return; // changed meanwhile
    if (r.status !== 200) {
      list.replaceChildren(h("p", { class: "empty", text: r.status === 403 ? "This key may not read these logs." : "Logs unavailable: " + ((r.data && r.data.message) || r.status) }));
      state.logKey = "";
      return;
    }
    const got = r.data.events || [];
    events = events.concat(got).slice(-LOG_KEEP);
    after = r.data.nextToken || after || 0;
    if (got.length < LOG_PAGE) break;
  }
  state.logAfter = after || 0;
  if (fresh) {
    state.logKey = key;
    list.replaceChildren();
  }
  const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 20;
  list.querySelector(".empty")?.remove();
  for (const e of events) {
    const m = e.message;
    const cls = "log-line" + (/^REPORT /.test(m) ? " report" : /\b(ERROR|Error|Task timed out)\b/.test(m) ? " err" : "");
    list.append(h("div", { class: cls }, h("span", { class: "ts", text: fmt.time(e.timestamp) }), m));
  }
  while (list.childElementCount > LOG_KEEP) list.firstElementChild.remove();
  if (!list.childElementCount) list.append(h("p", { class: "empty", text: state.logFilter ? "No lines match in the last hour." : "No log lines in the last hour." }));
  if (stick || fresh) list.scrollTop = list.scrollHeight;
}

// ---------------------------------------------------------------- autoscaling

async function refreshAutoscaling() {
  const r = await api("/stratus/v1/autoscaling");
  const box = $("autoscaling");
  if (r.status !== 200 || !r.data) {
    box.replaceChildren(h("p", { class: "empty", text: r.status === 404 ? "No data yet: this server does not run autoscaling." : r.status === 403 ? "This key may not read autoscaling." : "No data yet." }));
    return;
  }
  const targets = r.data.targets || [];
  const acts = (r.data.activities || []).slice().sort((a, b) => String(b.time).localeCompare(String(a.time)));
  const out = [];
  if (!targets.length) out.push(h("p", { class: "empty", text: "No scalable targets." }));
  else out.push(h("table", {},
    h("thead", {}, h("tr", {}, h("th", { text: "Target" }), h("th", { class: "num", text: "Current" }), h("th", { class: "num", text: "Min–max" }), h("th", { class: "num", text: "Target utilization" }), h("th", { class: "num", text: "Scheduled" }))),
    h("tbody", {}, targets.map((t) => h("tr", {},
      h("td", { text: t.function + ":" + t.qualifier }),
      h("td", { class: "num", text: fmt.int(t.current) }),
      h("td", { class: "num", text: t.min + "–" + t.max }),
      h("td", { class: "num", text: t.targetValue === null || t.targetValue === undefined ? "–" : fmt.pct(t.targetValue) }),
      h("td", { class: "num", text: fmt.int((t.scheduledActions || []).length) }))))));
  out.push(h("h3", { text: "Activities" }));
  if (!acts.length) out.push(h("p", { class: "empty", text: "No scaling activity yet." }));
  else out.push(h("div", { class: "activities" }, acts.slice(0, 50).map((a) => h("div", { class: "act" },
    h("div", {}, h("strong", { text: a.resourceId + ": " + a.from + " → " + a.to }), " ", h("span", { class: "badge " + (a.status === "Successful" ? "ok" : "warn"), text: a.status })),
    h("div", { text: a.description || "" }),
    h("div", { class: "when", text: fmt.dateTime(a.time) + (a.metricValue === null || a.metricValue === undefined ? "" : " · metric " + Number(a.metricValue).toFixed(3)) + (a.cause ? " · " + a.cause : "") })))));
  box.replaceChildren(...out);
}

// ---------------------------------------------------------------- dead letters

async function refreshDeadLetters() {
  const fn = $("dlq-function").value;
  const box = $("dead-letters");
  if (!fn) return;
  const r = await api("/stratus/v1/dead-letters?limit=1000&function=" + encodeURIComponent(fn));
  if (fn !== $("dlq-function").value) return;
  if (r.status !== 200) {
    box.replaceChildren(h("p", { class: "empty", text: r.status === 403 ? "This key may not read dead letters." : "Unavailable: " + ((r.data && r.data.message) || r.status) }));
    return;
  }
  // Oldest first from the server; the newest 50 are shown, newest on top.
  const all = r.data.deadLetters || [];
  const list = all.slice(-50).reverse();
  if (!list.length) {
    box.replaceChildren(h("p", { class: "empty", text: "No dead letters for " + fn + "." }));
    return;
  }
  const more = all.length > list.length ? [h("p", { class: "muted", text: "The newest " + list.length + " of " + (all.length >= 1000 ? "1,000 or more" : all.length) + "." })] : [];
  box.replaceChildren(...more, ...list.map((d) => h("div", { class: "dl" },
    h("div", {}, h("span", { class: "badge bad", text: d.condition }), h("span", { class: "mono", text: d.requestId }), h("span", { class: "muted", text: " · " + d.attempts + (d.attempts === 1 ? " attempt · " : " attempts · ") + new Date(d.timestamp).toLocaleString("en-GB") })),
    d.error ? h("div", { class: "error-text", text: d.error }) : null,
    h("pre", { text: d.payload }))));
}

/** Every dead-letter queue's oldest messages, read without receiving them. */
async function refreshQueueDeadLetters() {
  const box = $("dlq-queues");
  const dlqs = deadLetterQueues(state.overview);
  const read = ++state.dlqRead;
  if (!dlqs.length) {
    box.replaceChildren(h("p", { class: "empty", text: "No queue has a dead-letter queue." }));
    return;
  }
  const answers = await Promise.all(dlqs.map((q) => api("/stratus/v1/dead-letters?limit=20&queue=" + encodeURIComponent(q.name))));
  if (read !== state.dlqRead) return;
  box.replaceChildren(...dlqs.map((q, i) => queueDeadLetters(q, answers[i])));
}

function queueDeadLetters(q, r) {
  const head = h("div", { class: "q-head" }, h("strong", { class: "mono", text: q.name }), h("span", { class: "muted", text: "dead-letter queue of " + q.deadLetterFor.join(", ") }));
  const box = h("div", { class: "dlq-queue", "data-queue": q.name }, head);
  if (r.status !== 200) {
    box.append(h("p", { class: "empty", text: r.status === 403 ? "This key may not read dead letters." : "Unavailable: " + ((r.data && r.data.message) || r.status) }));
    return box;
  }
  const d = r.data;
  const total = d.visible + d.inFlight + d.delayed;
  head.append(h("span", { class: "badge " + (total ? "bad" : "ok"), text: fmt.int(total) + (total === 1 ? " message" : " messages") }));
  const list = d.messages || [];
  if (!list.length) {
    box.append(h("p", { class: "empty", text: "Empty." }));
    return box;
  }
  if (total > list.length) box.append(h("p", { class: "muted", text: "The oldest " + list.length + " of " + fmt.int(total) + "." }));
  const sourceName = (arn) => (arn ? String(arn).split(":").pop() : null);
  for (const m of list) {
    const attrs = Object.entries(m.messageAttributes || {}).map(([k, a]) => k + "=" + (a.StringValue !== undefined ? a.StringValue : "(" + a.DataType + ")")).join(", ");
    const from = sourceName(m.deadLetterQueueSourceArn);
    box.append(h("div", { class: "dl sqs-dl", "data-message-id": m.messageId },
      h("div", {},
        h("span", { class: "badge " + (m.state === "visible" ? "bad" : "warn"), text: m.state }),
        h("span", { class: "mono", text: m.messageId }),
        h("span", { class: "muted", text: " · sent " + new Date(m.sentTimestamp).toLocaleString("en-GB") + (from ? " · from " + from : "") + (m.receiveCount ? " · received " + m.receiveCount + (m.receiveCount === 1 ? " time here" : " times here") : "") })),
      attrs ? h("div", { class: "muted", text: "Attributes: " + attrs }) : null,
      h("pre", { text: m.body })));
  }
  return box;
}

// ---------------------------------------------------------------- wiring

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", submitLogin);
  $("logout").addEventListener("click", logout);
  $("detail-close").addEventListener("click", () => select(state.selected));
  $("chart-function").addEventListener("change", refreshCharts);
  $("log-function").addEventListener("change", (e) => { state.logFunction = e.target.value; refreshLogs(); });
  let debounce = 0;
  $("log-filter").addEventListener("input", (e) => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { state.logFilter = e.target.value; refreshLogs(); }, 250);
  });
  $("dlq-function").addEventListener("change", refreshDeadLetters);
  start().then(() => {
    if ($("dashboard").hidden && $("login-view").hidden) showLogin("");
  });
});
