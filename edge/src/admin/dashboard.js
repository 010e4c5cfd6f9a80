// The Underpass edge dashboard: polls the admin API every 2 s and draws what it returns.
// Data goes into the page only as textContent or SVG attributes, never as markup.
"use strict";

const POLL_MS = 2000;
const POINTS = 60;
const SVG = "http://www.w3.org/2000/svg";
const history = new Map(); // service -> [{t, requests, errors}]

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, cls) {
  const tr = el("tr", undefined, cls);
  for (const c of cells) {
    if (c instanceof Node) { const td = el("td"); td.appendChild(c); tr.appendChild(td); }
    else tr.appendChild(el("td", c === null || c === undefined ? "–" : c));
  }
  return tr;
}

function fill(tbody, rows, columns, emptyText) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    const tr = el("tr", undefined, "empty");
    const td = el("td", emptyText);
    td.colSpan = columns;
    tr.appendChild(td);
    tbody.appendChild(tr);
    return;
  }
  for (const r of rows) tbody.appendChild(r);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const neg = seconds < 0;
  let s = Math.abs(seconds);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60);
  const text = d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${Math.floor(s % 60)}s`;
  return neg ? `expired ${text} ago` : text;
}

function expiryClass(seconds) {
  if (seconds === null || seconds === undefined) return undefined;
  return seconds < 0 ? "bad" : seconds < 86400 ? "warn" : "ok";
}

async function get(path) {
  const r = await fetch(path, { cache: "no-store", credentials: "same-origin" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function drawConnectors(data) {
  document.getElementById("version").textContent = `version ${data.edge.version} · tunnels on ${data.edge.tunnel_addr}`;
  const rows = [];
  for (const c of data.connectors) {
    const state = c.drained ? "drained" : c.online ? "online" : "offline";
    const stateCls = c.drained ? "warn" : c.online ? "ok" : "bad";
    if (c.tunnels.length === 0) {
      rows.push(row([c.name, el("span", state, stateCls), null, null, null, null, null, null, null]));
      continue;
    }
    for (const t of c.tunnels) {
      const exp = el("span", duration(t.certificate.expires_in_seconds), expiryClass(t.certificate.expires_in_seconds));
      rows.push(row([
        c.name,
        el("span", t.draining ? "draining" : state, t.draining ? "warn" : stateCls),
        t.transport, t.remote_addr, t.edge_addr, t.since, t.services.join(", "), t.in_flight, exp,
      ]));
    }
  }
  fill(document.querySelector("#tunnels tbody"), rows, 9, "no connector configured or online");
}

function chart(points) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${POINTS - 1} 100`);
  svg.setAttribute("preserveAspectRatio", "none");
  const base = document.createElementNS(SVG, "line");
  base.setAttribute("class", "base");
  base.setAttribute("x1", "0"); base.setAttribute("x2", String(POINTS - 1));
  base.setAttribute("y1", "99"); base.setAttribute("y2", "99");
  svg.appendChild(base);
  const max = Math.max(1, ...points.map((p) => p.req));
  for (const [key, cls] of [["req", "req"], ["err", "err"]]) {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", cls);
    line.setAttribute("vector-effect", "non-scaling-stroke");
    const offset = POINTS - points.length;
    line.setAttribute("points", points.map((p, i) => `${offset + i},${(98 - (p[key] / max) * 94).toFixed(1)}`).join(" "));
    svg.appendChild(line);
  }
  return svg;
}

function rates(name, s, now) {
  const h = history.get(name) || [];
  h.push({ t: now, requests: s.requests, errors: s.errors + s.denied });
  while (h.length > POINTS + 1) h.shift();
  history.set(name, h);
  const points = [];
  for (let i = 1; i < h.length; i++) {
    const dt = Math.max(0.001, (h[i].t - h[i - 1].t) / 1000);
    points.push({
      req: Math.max(0, h[i].requests - h[i - 1].requests) / dt,
      err: Math.max(0, h[i].errors - h[i - 1].errors) / dt,
    });
  }
  return points;
}

function drawServices(data) {
  const now = Date.now();
  const box = document.getElementById("services");
  box.replaceChildren();
  for (const s of data.services) {
    const card = el("div", undefined, "card");
    const title = el("h3");
    title.appendChild(el("span", s.name));
    title.appendChild(el("span", s.healthy ? `healthy · ${s.tunnels} tunnel(s)` : "no usable tunnel", s.healthy ? "ok" : "bad"));
    card.appendChild(title);
    const points = rates(s.name, s, now);
    const last = points.length ? points[points.length - 1] : { req: 0, err: 0 };
    const figures = el("div", undefined, "figures");
    const fig = (label, value) => { const d = el("span", `${label} `, "muted"); d.appendChild(el("b", value)); figures.appendChild(d); };
    fig("req/s", last.req.toFixed(1));
    fig("err/s", last.err.toFixed(1));
    fig("requests", s.requests);
    fig("errors", s.errors);
    fig("denied", s.denied);
    const l = s.latency_ms;
    fig("p50", l ? `${l.p50} ms` : "–");
    fig("p90", l ? `${l.p90} ms` : "–");
    fig("p99", l ? `${l.p99} ms` : "–");
    card.appendChild(figures);
    card.appendChild(chart(points));
    const legend = el("div", undefined, "legend");
    legend.appendChild(el("span", "— requests/s ", "req"));
    legend.appendChild(el("span", "— errors+denials/s", "err"));
    card.appendChild(legend);
    box.appendChild(card);
  }
}

function drawDenials(data) {
  document.getElementById("denial-total").textContent = `(${data.total} since start)`;
  const rows = data.denials.map((d) => row([d.time, d.principal, d.service, d.method, d.target, d.rule, el("span", d.reason, "bad"), d.status]));
  fill(document.querySelector("#denials tbody"), rows, 8, "no denial since start");
}

function drawAudit(data) {
  const dl = document.getElementById("audit");
  dl.replaceChildren();
  const item = (k, v, cls) => { dl.appendChild(el("dt", k)); dl.appendChild(el("dd", v === null || v === undefined ? "–" : v, cls)); };
  if (!data.configured) { item("audit", "not configured ([audit] file)", "warn"); return; }
  const v = data.verify || {};
  item("verification", v.ok ? "OK: chain and checkpoints verify" : `FAILED: ${v.error}`, v.ok ? "ok" : "bad");
  if (v.ok) {
    item("records", v.records);
    item("checkpoints", v.checkpoints);
    item("gaps", v.gaps ? `${v.gaps} (${v.lost} records lost)` : "none", v.gaps ? "warn" : undefined);
  }
  item("verified at", v.at);
  item("file", data.file);
  item("last record", data.last_record ? `seq ${data.last_record.seq} at ${data.last_record.time}` : null);
  item("last checkpoint", data.last_checkpoint ? `seq ${data.last_checkpoint.seq} at ${data.last_checkpoint.time}` : null);
}

function drawCerts(data) {
  const rows = [];
  for (const c of data.edge) {
    rows.push(row([`edge ${c.component}`, c.identity, c.not_after, el("span", duration(c.expires_in_seconds), expiryClass(c.expires_in_seconds))]));
  }
  for (const c of data.connectors) {
    rows.push(row([`connector ${c.connector} (tunnel ${c.tunnel})`, c.serial, c.not_after, el("span", duration(c.expires_in_seconds), expiryClass(c.expires_in_seconds))]));
  }
  fill(document.querySelector("#certs tbody"), rows, 4, "none");
}

function drawSessions(data) {
  const rows = data.by_principal.map((s) => row([s.service, s.principal, s.sessions]));
  fill(document.querySelector("#sessions tbody"), rows, 3, "no open session");
}

async function poll() {
  const status = document.getElementById("status");
  const parts = [
    ["/api/connectors", drawConnectors],
    ["/api/services", drawServices],
    ["/api/denials", drawDenials],
    ["/api/audit", drawAudit],
    ["/api/certificates", drawCerts],
    ["/api/sessions", drawSessions],
  ];
  const results = await Promise.allSettled(parts.map(([path]) => get(path)));
  const failed = [];
  results.forEach((r, i) => {
    if (r.status === "fulfilled") {
      try { parts[i][1](r.value); } catch (e) { failed.push(String(e)); }
    } else failed.push(String(r.reason));
  });
  status.textContent = failed.length ? `error: ${failed[0]}` : "live";
  status.className = failed.length ? "pill bad" : "pill ok";
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function loop() {
  poll().finally(() => setTimeout(loop, POLL_MS));
}

loop();
