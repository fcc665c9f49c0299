// The experiment-report viewer (issue 17): the reports under the API server's --reports-dir,
// each drawn from its events.jsonl as an SVG timeline (lanes of segments, incidents shaded,
// the steps of each incident marked), beside the run's own PNG. The model comes ready from
// GET /ui/api/reports/NAME (federation/ui/reporttimeline.py); this file only draws it.
// Uses app.js's api(), esc(), $() and stepsTable().
"use strict";

const reports = { items: [], open: null, zoom: null, pictureUrl: null };
const STATE_COLOURS = {
  Ready: "#2e7d32", Offline: "#c62828", NotReady: "#ef6c00", Unknown: "#9e9e9e",
  clean: "#1565c0", dead: "#ef6c00", failed: "#c62828", ok: "#2e7d32",
};
const secs = (x) => x == null ? "-" : `${Number(x).toFixed(2)} s`;

async function startReports() {
  $("reports-section").hidden = false;
  await listReports();
}

async function listReports() {
  const r = await api("/ui/api/reports");
  const body = await r.json();
  if (!r.ok) { $("report-list").innerHTML = `<p class="error">${esc(body.message)}</p>`; return; }
  reports.items = body.items;
  let html = `<table class="reports"><tr><th>report</th><th>scenario</th><th>written</th><th>expectations</th><th></th></tr>`;
  for (const it of reports.items) {
    const met = it.expectationsMet == null ? "-" : it.expectationsMet ? "met" : "FAILED";
    html += `<tr class="report" data-report="${esc(it.name)}"><td>${esc(it.name)}</td><td>${esc(it.scenario)}</td>
      <td>${esc(it.modified)}</td><td>${met}</td><td><button class="open-report" data-report="${esc(it.name)}">open</button></td></tr>`;
  }
  html += `</table>`;
  $("report-list").innerHTML = reports.items.length ? html : "<p>no reports yet (ubernetes experiment run --out DIR under the reports directory, or upload one)</p>";
}

async function openReport(name) {
  const r = await api(`/ui/api/reports/${name.split("/").map(encodeURIComponent).join("/")}`);
  const body = await r.json();
  if (!r.ok) { $("report-view").innerHTML = `<p class="error">${esc(body.message)}</p>`; return; }
  reports.open = body; reports.zoom = null;
  if (reports.pictureUrl) URL.revokeObjectURL(reports.pictureUrl);
  reports.pictureUrl = null;
  if (body.picture) {
    const p = await api(`/ui/api/reports/${name.split("/").map(encodeURIComponent).join("/")}/picture`);
    if (p.ok) reports.pictureUrl = URL.createObjectURL(await p.blob());
  }
  drawReport();
}

function drawReport() {
  const rep = reports.open, tl = rep.timeline;
  let html = `<h3 id="report-title">${esc(rep.name)}: ${esc(tl.scenario || "?")}</h3>`;
  for (const w of rep.warnings) html += `<p class="warning">${esc(w)}</p>`;
  html += `<div class="report-columns"><div class="report-drawing">${svgTimeline(tl)}
    <div id="report-cursor" class="cursor-readout">move over the timeline for the time; click an incident to zoom</div></div>`;
  if (reports.pictureUrl) html += `<div class="report-picture"><img id="report-picture" alt="timeline.png of the run" src="${reports.pictureUrl}"></div>`;
  html += `</div>`;
  for (const inc of tl.incidents) {
    html += `<div class="incident" data-incident="${esc(inc.id)}"><h4>${esc(inc.id)}: ${esc(inc.what)}
      <small>(t ${secs(inc.from)} to ${secs(inc.to)})</small> <button class="zoom" data-incident="${esc(inc.id)}">zoom</button>
      </h4>${stepsTable(inc.steps.map((st) => Object.assign({}, st, { time: secs(st.t), detail: st.detail })))}`;
    if (inc.notReached.length) html += `<p class="note">not reached in this run: ${esc(inc.notReached.join(", "))}</p>`;
    if (inc.clientRequests != null) html += `<p class="note">${inc.clientFailures} of ${inc.clientRequests} client requests failed in this window</p>`;
    html += `</div>`;
  }
  const ex = Object.entries(tl.expectations || {});
  if (ex.length) html += `<ul class="expectations">${ex.map(([k, v]) => `<li class="${v.ok ? "ok" : "error"}">${v.ok ? "PASS" : "FAIL"} ${esc(k)}${v.ok ? "" : ": " + esc(v.detail)}</li>`).join("")}</ul>`;
  if (rep.markdown) html += `<details><summary>report.md</summary><pre>${esc(rep.markdown)}</pre></details>`;
  $("report-view").innerHTML = html;
}

// The drawing: one row per cluster condition, per DNS name and for the clients, over [x0, x1].
function svgTimeline(tl) {
  const x0 = reports.zoom ? reports.zoom[0] : 0, x1 = reports.zoom ? reports.zoom[1] : Math.max(tl.duration, 0.001);
  const W = 900, left = 230, right = 10, row = 22, top = 34;
  const lanes = [
    ...tl.clusters.map((c) => ({ label: c.name, title: "condition", segments: c.segments })),
    // a name's lane is labelled by what follows ".svc." (its place and the domain); the full name on hover
    ...tl.dns.map((d) => ({ label: d.name.includes(".svc.") ? d.name.split(".svc.").pop() : d.name, title: "DNS " + d.name, segments: d.segments })),
    { label: "clients", title: "client requests", segments: tl.clients },
  ];
  const H = top + lanes.length * row + 24;
  const x = (t) => left + (Math.min(Math.max(t, x0), x1) - x0) / (x1 - x0) * (W - left - right);
  let svg = `<svg id="report-svg" class="report-timeline" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" data-x0="${x0}" data-x1="${x1}" data-left="${left}" data-right="${right}">`;
  for (const inc of tl.incidents) {
    if (inc.to < x0 || inc.from > x1) continue;
    svg += `<rect class="incident-window" data-incident="${esc(inc.id)}" x="${x(inc.from)}" y="${top - 6}" width="${Math.max(1, x(inc.to) - x(inc.from))}" height="${lanes.length * row + 6}"><title>${esc(inc.id)}: ${esc(inc.what)}</title></rect>`;
  }
  lanes.forEach((lane, i) => {
    const y = top + i * row;
    const short = lane.label.length > 36 ? "…" + lane.label.slice(-35) : lane.label;
    svg += `<text class="lane-label" x="${left - 6}" y="${y + row / 2 + 4}" text-anchor="end"><title>${esc(lane.title)}</title>${esc(short)}</text>`;
    for (const s of lane.segments) {
      if (s.to < x0 || s.from > x1) continue;
      const detail = s.detail ? ` ${esc(JSON.stringify(s.detail))}` : "";
      svg += `<rect class="segment ${esc(s.state)}" x="${x(s.from)}" y="${y + 3}" width="${Math.max(0.5, x(s.to) - x(s.from))}" height="${row - 6}" fill="${STATE_COLOURS[s.state] || "#777"}"><title>${esc(lane.title)}: ${esc(s.state)} from ${secs(s.from)} to ${secs(s.to)} (${s.samples} sample${s.samples === 1 ? "" : "s"})${detail}</title></rect>`;
    }
  });
  for (const inc of tl.incidents) {
    for (const [n, s] of inc.steps.entries()) {
      if (s.t < x0 || s.t > x1) continue;
      svg += `<text class="step-number" x="${x(s.t)}" y="${top - 10 - (n % 2) * 9}" text-anchor="middle">${n + 1}</text>`;
      svg += `<line class="step-mark" data-step="${esc(s.step)}" x1="${x(s.t)}" x2="${x(s.t)}" y1="${top - 8}" y2="${top + lanes.length * row}"><title>${esc(s.label)} at ${secs(s.t)} (+${secs(s.sinceFault)} after the fault): ${esc(s.detail)}</title></line>`;
    }
  }
  // ticks every 1, 2 or 5 times a power of ten, about eight over the shown span
  const raw = (x1 - x0) / 8, power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((v) => v >= raw);
  for (let t = Math.ceil(x0 / step) * step; t <= x1 + 1e-9; t += step) {
    svg += `<text class="tick" x="${x(t)}" y="${H - 6}" text-anchor="middle">${+t.toFixed(3)}</text>`;
  }
  svg += `<line id="report-cursor-line" x1="0" x2="0" y1="${top - 8}" y2="${top + lanes.length * row}" visibility="hidden"/></svg>`;
  return svg;
}

function cursorAt(ev) {
  const svg = ev.target.closest("svg.report-timeline");
  if (!svg) return null;
  const box = svg.getBoundingClientRect();
  const px = (ev.clientX - box.left) * (svg.viewBox.baseVal.width / box.width);
  const left = Number(svg.dataset.left), width = svg.viewBox.baseVal.width - left - Number(svg.dataset.right);
  const x0 = Number(svg.dataset.x0), x1 = Number(svg.dataset.x1);
  return { svg, px, t: x0 + (px - left) / width * (x1 - x0), inside: px >= left };
}

function zoomTo(id) {
  const inc = reports.open.timeline.incidents.find((i) => i.id === id);
  if (!inc) return;
  const pad = Math.max(1, (inc.to - inc.from) * 0.1);
  reports.zoom = reports.zoom && reports.zoom.id === id ? null : Object.assign([Math.max(0, inc.from - pad), Math.min(reports.open.timeline.duration, inc.to + pad)], { id });
  drawReport();
}

function reportsWire() {
  $("report-list").addEventListener("click", (ev) => {
    const b = ev.target.closest("button.open-report");
    if (b) openReport(b.dataset.report).catch((err) => { $("report-view").textContent = String(err); });
  });
  $("report-view").addEventListener("click", (ev) => {
    const z = ev.target.closest("button.zoom, rect.incident-window");
    if (z) zoomTo(z.dataset.incident);
  });
  $("report-view").addEventListener("mousemove", (ev) => {
    const c = cursorAt(ev);
    if (!c) return;
    const line = c.svg.querySelector("#report-cursor-line");
    line.setAttribute("visibility", c.inside ? "visible" : "hidden");
    line.setAttribute("x1", c.px); line.setAttribute("x2", c.px);
    if (c.inside) $("report-cursor").textContent = `t = ${c.t.toFixed(2)} s`;
  });
  $("upload-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData();
    data.append("name", $("upload-name").value.trim());
    if ($("upload-events").files[0]) data.append("events", $("upload-events").files[0]);
    if ($("upload-picture").files[0]) data.append("picture", $("upload-picture").files[0]);
    const r = await api("/ui/api/reports", { method: "POST", body: data });
    const body = await r.json();
    $("upload-status").textContent = r.ok ? `stored as ${body.name}` : `${r.status}: ${body.message}`;
    $("upload-status").className = r.ok ? "" : "error";
    if (r.ok) { await listReports(); await openReport(body.name); }
  });
}
reportsWire();
