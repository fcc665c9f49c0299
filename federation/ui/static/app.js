// The ubernetes dashboard (issue 17): plain JS, no build step. Everything it shows comes from
// the federation API's list + watch (fetch with a streaming body, one JSON event per line),
// sent with the user's bearer token; DNS answers, fault buttons and experiment reports
// (reports.js) go through /ui/api/.
"use strict";

const state = {
  token: sessionStorage.getItem("ubernetes.token") || "",
  info: null,
  clusters: new Map(), services: new Map(), events: new Map(), history: new Map(),
  historyMissing: false, dns: new Map(), watching: 0, faultError: "",
};
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const key = (o) => `${o.metadata.namespace || ""}/${o.metadata.name}`;

async function api(path, options = {}) {
  const headers = Object.assign({Authorization: `Bearer ${state.token}`}, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, {headers}));
  if (response.status === 401) { logout("the token was refused (401)"); throw new Error("the token was refused (401)"); }
  return response;
}

// List, then watch from the list's resourceVersion; on any end or error, list again after a pause.
async function watch(path, store, { onMissing } = {}) {
  for (;;) {
    try {
      const listed = await api(path);
      if (listed.status === 404 && onMissing) { onMissing(true); await sleep(10000); continue; }
      if (!listed.ok) throw new Error(`${path}: ${listed.status}`);
      if (onMissing) onMissing(false);
      const list = await listed.json();
      store.clear();
      for (const item of list.items || []) store.set(key(item), item);
      render();
      const sep = path.includes("?") ? "&" : "?";
      const response = await api(`${path}${sep}watch=1&resourceVersion=${list.metadata.resourceVersion}`);
      if (!response.ok) throw new Error(`${path} watch: ${response.status}`);
      state.watching++; render();
      try {
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let newline;
          while ((newline = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, newline).trim();
            buffer = buffer.slice(newline + 1);
            if (line) apply(store, JSON.parse(line));
          }
        }
      } finally { state.watching--; render(); }
    } catch (err) {
      if (!state.token) return;
      console.warn("watch", path, err);
    }
    await sleep(1000);
  }
}

function apply(store, event) {
  if (event.type === "ERROR") throw new Error(event.object && event.object.message);
  if (event.type === "BOOKMARK" || !event.object || !event.object.metadata) return;
  if (event.type === "DELETED") store.delete(key(event.object));
  else store.set(key(event.object), event.object);
  render();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function phase(cluster) {
  const conds = (cluster.status || {}).conditions || [];
  const is = (t) => conds.some((c) => c.type === t && c.status === "True");
  if (is("Offline")) return "Offline";
  if (is("Ready")) return "Ready";
  return conds.length ? "NotReady" : "Unknown";
}

let pending = false;
function render() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; draw(); });
}

function draw() {
  $("live").textContent = state.watching > 0 ? `live (${state.watching} watches)` : "connecting";
  $("live").className = state.watching > 0 ? "badge on" : "badge";
  drawTopology(); drawServices(); drawTimeline();
}

function drawTopology() {
  const tree = {};
  for (const c of state.clusters.values()) {
    const labels = c.metadata.labels || {};
    const provider = labels["ubernetes.io/provider"] || (c.spec || {}).provider || "?";
    const region = (c.status || {}).region || labels["topology.kubernetes.io/region"] || "?";
    ((tree[provider] ||= {})[region] ||= []).push(c);
  }
  const faults = state.info && state.info.faults;
  let html = "";
  for (const provider of Object.keys(tree).sort()) {
    html += `<div class="provider"><b>${esc(provider)}</b> `;
    for (const region of Object.keys(tree[provider]).sort()) {
      html += `<div class="region"><div>region <b>${esc(region)}</b></div>`;
      for (const c of tree[provider][region].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
        const p = phase(c), name = c.metadata.name;
        const ready = ((c.status || {}).conditions || []).find((x) => x.type === (p === "Offline" ? "Offline" : "Ready")) || {};
        html += `<div class="cluster ${p}" data-cluster="${esc(name)}"><div><b>${esc(name)}</b> <span class="phase">${p}</span>
          zones ${esc(((c.status || {}).zones || []).join(", "))}</div><div><small>${esc(ready.message || "")}</small></div>`;
        if (faults) html += ["crash", "partition", "blackhole", "heal"].map((a) =>
          `<button data-action="${a}" data-cluster="${esc(name)}">${a}</button>`).join("");
        html += `</div>`;
      }
      html += `</div>`;
    }
    html += `</div>`;
  }
  if (state.faultError) html += `<p class="error">${esc(state.faultError)}</p>`;
  $("topology").innerHTML = html || "<p>no clusters yet</p>";
}

// The latest data-plane vote Event about (service, cluster): ShardUnreachable / ShardReachable.
function lastVote(service, cluster) {
  let best = null;
  for (const e of state.events.values()) {
    const o = e.involvedObject || {};
    if (o.kind !== "Service" || o.name !== service.metadata.name || o.namespace !== service.metadata.namespace) continue;
    if (!/^Shard(Un)?[Rr]eachable$/.test(e.reason) || !(e.message || "").includes(`(cluster ${cluster})`)) continue;
    if (!best || (e.lastTimestamp || "") >= (best.lastTimestamp || "")) best = e;
  }
  return best;
}

function drawServices() {
  let html = "";
  const federated = [...state.services.values()].filter((s) => ((s.status || {}).shards || []).length);
  for (const s of federated.sort((a, b) => key(a).localeCompare(key(b)))) {
    const served = new Set((((s.status || {}).loadBalancer || {}).ingress || []).map((i) => i.ip));
    html += `<h3>${esc(key(s))}</h3><table class="shards"><tr><th>cluster</th><th>address</th><th>ready endpoints</th><th>cluster ready</th><th>in DNS</th><th>votes</th></tr>`;
    for (const shard of s.status.shards) {
      const ips = (shard.ingress || []).map((i) => i.ip);
      const inDns = ips.some((ip) => served.has(ip));
      const vote = lastVote(s, shard.cluster);
      const votedDown = vote && vote.reason === "ShardUnreachable";
      const standing = inDns ? "serving" : votedDown ? "voted down" : "out of DNS";
      const tally = vote ? vote.message.replace(/^.*?: /, "") : "";
      html += `<tr class="${inDns ? "" : "down"}" data-shard="${esc(shard.cluster)}"><td>${esc(shard.cluster)}</td><td>${esc(ips.join(", "))}</td>
        <td>${esc(shard.readyEndpoints)}</td><td>${shard.clusterReady ? "yes" : "no"}</td><td class="standing">${standing}</td><td>${esc(tally)}</td></tr>`;
    }
    html += `</table>`;
    const dns = state.dns.get(key(s));
    html += `<table class="dns"><tr><th>level</th><th>where</th><th>name</th><th>rcode</th><th>CNAME</th><th>addresses</th></tr>`;
    if (dns && dns.error) html += `<tr><td colspan="6" class="error">${esc(dns.error)}</td></tr>`;
    for (const a of (dns && dns.answers) || []) {
      html += `<tr class="${a.cname ? "cname" : ""}" data-level="${esc(a.level)}" data-where="${esc(a.where)}"><td>${esc(a.level)}</td><td>${esc(a.where)}</td><td>${esc(a.name)}</td>
        <td>${esc(a.rcode || a.error)}</td><td class="cname-target">${esc(a.cname || "")}</td><td>${esc(a.addresses.join(", "))}</td></tr>`;
    }
    html += `</table>`;
  }
  $("services").innerHTML = html || "<p>no federated services yet</p>";
}

// One incident's steps as a table, in time order, with the time since its fault and since
// the step before: the live history's FailoverRecords and the report viewer's steps alike.
// steps: [{step, label, time, sinceFault, afterPrevious, detail}] (numbers in seconds).
function stepsTable(steps) {
  const s = (x) => x == null ? "" : `+${Number(x).toFixed(2)} s`;
  let html = `<table class="steps"><tr><th>#</th><th>step</th><th>t</th><th>since fault</th><th>after previous</th><th>detail</th></tr>`;
  steps.forEach((st, n) => {
    html += `<tr class="step" data-step="${esc(st.step)}"><td>${n + 1}</td><td>${esc(st.label)}</td><td>${esc(st.time)}</td>
      <td>${s(st.sinceFault)}</td><td>${s(st.afterPrevious)}</td><td>${esc(st.detail)}</td></tr>`;
  });
  return html + `</table>`;
}

// FailoverRecords grouped by spec.incident, newest incident first, each as its steps.
function drawIncidents() {
  const byIncident = new Map();
  for (const r of state.history.values()) {
    const spec = r.spec || {};
    if (!byIncident.has(spec.incident)) byIncident.set(spec.incident, []);
    byIncident.get(spec.incident).push(spec);
  }
  const incidents = [...byIncident.entries()].map(([id, specs]) => {
    specs.sort((a, b) => String(a.time).localeCompare(String(b.time)) || (a.sinceFault ?? 0) - (b.sinceFault ?? 0));
    return { id, specs, start: specs[0].time };
  }).sort((a, b) => String(b.start).localeCompare(String(a.start)));
  let html = "";
  for (const inc of incidents.slice(0, 10)) {
    let previous = null;
    const steps = inc.specs.map((spec) => {
      const since = spec.sinceFault == null ? null : Number(spec.sinceFault);
      const row = { step: spec.step, label: spec.step, time: String(spec.time || "").replace(/^.*T/, ""),
                    sinceFault: since, afterPrevious: previous == null || since == null ? null : since - previous,
                    detail: [spec.service, spec.message].filter(Boolean).join(": ") };
      if (since != null) previous = since;
      return row;
    });
    html += `<div class="incident live" data-incident="${esc(inc.id)}"><h4>${esc(inc.id)}</h4>${stepsTable(steps)}</div>`;
  }
  $("incidents").innerHTML = state.historyMissing ? "" : (html || "<p class=\"note\">no failover yet</p>");
}

function drawTimeline() {
  drawIncidents();
  const items = [];
  for (const e of state.events.values()) {
    if (!/^Cluster|^Shard|^DNSRecords/.test(e.reason || "")) continue;
    items.push({ time: e.lastTimestamp || e.firstTimestamp, kind: e.type, text: `${e.reason}: ${e.message}` });
  }
  items.sort((a, b) => String(b.time).localeCompare(String(a.time)));
  let html = state.historyMissing ? `<li class="note">history not available (no FailoverRecord resource on this server); showing Events</li>` : "";
  html += items.slice(0, 200).map((i) => `<li class="${esc(i.kind)}">${esc(i.time)} ${esc(i.text)}</li>`).join("");
  $("timeline").innerHTML = html;
}

async function pollDns() {
  while (state.token) {
    if (state.info && state.info.dns) {
      for (const s of state.services.values()) {
        if (!((s.status || {}).shards || []).length) continue;
        try {
          const r = await api(`/ui/api/dns?namespace=${encodeURIComponent(s.metadata.namespace)}&name=${encodeURIComponent(s.metadata.name)}`);
          state.dns.set(key(s), r.ok ? await r.json() : { error: (await r.json()).message });
        } catch (err) { state.dns.set(key(s), { error: String(err) }); }
      }
      render();
    }
    await sleep(1000);
  }
}

async function fault(action, cluster) {
  state.faultError = "";
  const r = await api(`/ui/api/faults/${action}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ cluster }),
  });
  if (!r.ok) state.faultError = `${action} ${cluster}: ${(await r.json()).message}`;
  render();
}

function logout(why) {
  state.token = "";
  sessionStorage.removeItem("ubernetes.token");
  $("main").hidden = true; $("login").hidden = false;
  $("login-error").textContent = why || "";
}

async function start() {
  const r = await api("/ui/api/info");
  if (!r.ok) { logout(`the server answered ${r.status}`); return; }
  state.info = await r.json();
  $("fedname").textContent = `federation ${state.info.federation} (${state.info.domain})`;
  $("login").hidden = true; $("main").hidden = false;
  watch("/apis/federation/v1beta1/clusters", state.clusters);
  watch("/api/v1/services", state.services);
  watch("/api/v1/events", state.events);
  watch("/apis/federation/v1beta1/failoverrecords", state.history,
        { onMissing: (missing) => { state.historyMissing = missing; render(); } });
  pollDns();
  if (state.info.reports) startReports().catch((err) => console.warn("reports", err));  // reports.js
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem("ubernetes.token", state.token);
  start().catch((err) => logout(err.message || String(err)));
});
$("topology").addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (b) fault(b.dataset.action, b.dataset.cluster).catch((err) => { state.faultError = String(err); render(); });
});
if (state.token) start().catch((err) => logout(String(err)));
