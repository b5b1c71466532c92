// sweepkit's dashboard: three views (every sweep, one sweep, one run) drawn from the JSON the
// server reads from the store and the runs' logs, asked again every 2 s and redrawn in place.
// A run's scalars are asked for from where the page is (`since`): a refresh carries only
// what is new. No library, no network beyond the server this page came from.
"use strict";

const EVERY_MS = 2000;
const token = new URLSearchParams(location.search).get("token");
let current = null; // the view being shown: {route, state}

async function api(path, params = {}) {
  const query = new URLSearchParams(params);
  if (token) query.set("token", token);
  const response = await fetch(`${path}?${query}`);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status}`);
  return body;
}

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function num(value) {
  if (typeof value !== "number") return esc(value);
  return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3) ? value.toPrecision(4) : String(+value.toPrecision(4));
}

function link(hash, text) {
  return `<a href="${esc(hash)}">${esc(text)}</a>`;  // only the hash changes: the token stays
}

// --- charts, as inline SVG ---------------------------------------------------------------

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

function lineChart(series, {xLabel = "step", width = 420, height = 220, markers = false} = {}) {
  const points = series.flatMap(s => s.points);
  if (!points.length) return `<p class="missing">nothing logged yet</p>`;
  const xs = points.map(p => p[0]), ys = points.map(p => p[1]);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= Math.abs(y0) || 1; y1 += Math.abs(y1) || 1; }
  const [left, right, top, bottom] = [48, 10, 10, 30];
  const X = x => left + (x - x0) / (x1 - x0) * (width - left - right);
  const Y = y => height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom);
  const lines = series.map((s, i) => {
    const color = COLORS[i % COLORS.length];
    const path = s.points.map(p => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    const dots = markers || s.points.length < 3
      ? s.points.map(p => `<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="2.5" fill="${color}"/>`).join("") : "";
    const run = s.id ? ` data-run="${esc(s.id)}" data-points="${s.points.length}"` : "";
    return `<polyline${run} fill="none" stroke="${color}" stroke-width="1.5" points="${path}"><title>${esc(s.name)}</title></polyline>${dots}`;
  }).join("");
  const legend = series.length > 1 ? series.map((s, i) =>
    `<text x="${left + 4}" y="${top + 10 + 11 * i}" style="fill:${COLORS[i % COLORS.length]}">${esc(s.name)}</text>`).join("") : "";
  return `<svg width="${width}" height="${height}" role="img">
    <line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" stroke="#999"/>
    <line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" stroke="#999"/>
    <text x="${left}" y="${height - bottom + 12}">${num(x0)}</text>
    <text x="${width - right}" y="${height - bottom + 12}" text-anchor="end">${num(x1)}</text>
    <text x="${(left + width) / 2}" y="${height - 4}" text-anchor="middle">${esc(xLabel)}</text>
    <text x="${left - 4}" y="${height - bottom}" text-anchor="end">${num(y0)}</text>
    <text x="${left - 4}" y="${top + 8}" text-anchor="end">${num(y1)}</text>
    ${lines}${legend}</svg>`;
}

// viridis, as the report colours its parallel coordinates: dark is low, yellow is high
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function viridis(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1), i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const mix = VIRIDIS[i].map((c, k) => Math.round(c + (VIRIDIS[i + 1][k] - c) * (x - i)));
  return `rgb(${mix.join(",")})`;
}

function parallelChart(plot, width = 760, height = 260) {
  if (plot.missing) return `<p class="missing">${esc(plot.missing)}</p>`;
  const [left, right, top, bottom] = [20, 80, 26, 12];
  const last = plot.axes.length - 1;
  const X = j => left + j * (width - left - right) / Math.max(1, last);
  const Y = y => height - bottom - y * (height - top - bottom);
  const metrics = plot.runs.map(r => r[2]);
  const [lo, hi] = [Math.min(...metrics), Math.max(...metrics)];
  const lines = plot.runs.map(([id, name, metric], i) => {
    const points = plot.axes.map((axis, j) => `${X(j).toFixed(1)},${Y(axis.positions[i]).toFixed(1)}`).join(" ");
    return `<polyline data-run="${esc(id)}" fill="none" stroke-opacity="0.8" stroke-width="1.5"
      stroke="${viridis(hi === lo ? 0.5 : (metric - lo) / (hi - lo))}" points="${points}"><title>${esc(name)}: ${num(metric)}</title></polyline>`;
  }).join("");
  const axes = plot.axes.map((axis, j) => `<g class="axis" data-axis="${esc(axis.name)}">
    <line x1="${X(j)}" y1="${Y(0)}" x2="${X(j)}" y2="${Y(1)}" stroke="#888"/>
    <text x="${X(j)}" y="${top - 12}" text-anchor="middle" class="axis-name">${esc(axis.name)}${axis.log ? " (log)" : ""}</text>
    ${axis.ticks.map(([y, label]) => `<text x="${X(j) + 4}" y="${Y(y) + 3}" class="tick">${esc(label)}</text>`).join("")}</g>`).join("");
  return `<svg width="${width}" height="${height}" role="img">${lines}${axes}</svg>`;
}

function importanceTable(result, metric) {
  if (!result) return `<p class="missing">computing…</p>`;
  if (result.missing) return `<p class="missing">${esc(result.missing)}</p>`;
  const bar = (value, cls) => `<i class="${cls}" style="width:${Math.round(Math.abs(value) * 100)}px"></i>`;
  const rows = result.rows.map(([name, corr, forest]) => `<tr data-parameter="${esc(name)}"><td class="text">${esc(name)}</td>
    <td class="text">${corr === null ? "—" : `${bar(corr, corr >= 0 ? "pos" : "neg")} ${corr >= 0 ? "+" : ""}${corr.toFixed(2)}`}</td>
    <td class="text">${bar(forest, "imp")} ${forest.toFixed(2)}</td></tr>`).join("");
  const notes = [`From ${result.runs} finished runs.`];
  if (result.rough) notes.push("Few runs: a rough guide, not a measurement.");
  if (result.constant.length) notes.push(`Left out, one value in every run: ${result.constant.join(", ")}.`);
  return `<table id="importance"><tr><th class="text">parameter</th><th class="text">correlation with ${esc(metric || "the metric")}</th>
    <th class="text">importance (random forest)</th></tr>${rows}</table><p>${esc(notes.join(" "))}</p>`;
}

function confusion(rows) {
  const classes = [...new Set(rows.flatMap(r => [r[0], r[1]]))].sort((a, b) =>
    (/^\d+$/.test(a) && /^\d+$/.test(b)) ? a - b : a.localeCompare(b));
  const counts = new Map(rows.map(r => [`${r[0]}\u0000${r[1]}`, 0]));
  rows.forEach(r => counts.set(`${r[0]}\u0000${r[1]}`, counts.get(`${r[0]}\u0000${r[1]}`) + r[2]));
  const top = Math.max(1, ...counts.values());
  const head = classes.map(c => `<th>${esc(c)}</th>`).join("");
  const body = classes.map(a => `<tr><th>${esc(a)}</th>` + classes.map(p => {
    const n = counts.get(`${a}\u0000${p}`) || 0, shade = n / top;
    return `<td style="background:rgba(31,119,180,${shade.toFixed(2)});color:${shade > .5 ? "#fff" : "#000"}">${num(n)}</td>`;
  }).join("") + "</tr>").join("");
  return `<table class="confusion"><tr><th>actual \\ predicted</th>${head}</tr>${body}</table>`;
}

// --- tables: sweepkitTable (sweepkit/views/table.js, the report's too) draws logged tables;
// the runs table sorts by a click on a column ---------------------------------------------

function withToken(url) {
  return token ? `${url}&token=${encodeURIComponent(token)}` : url;
}

document.addEventListener("click", event => {
  const th = event.target.closest("th[data-sort]");
  if (!th) return;
  const table = th.closest("table"), index = [...th.parentNode.children].indexOf(th);
  const rows = [...table.querySelectorAll("tr")].slice(1);
  const down = th.dataset.order !== "up";
  th.dataset.order = down ? "up" : "down";
  const value = tr => { const text = tr.children[index].textContent; const n = Number(text); return text !== "" && !isNaN(n) ? n : text; };
  rows.sort((a, b) => { const [x, y] = [value(a), value(b)]; const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y)); return down ? c : -c; });
  rows.forEach(r => table.appendChild(r));
  table.dataset.sortedBy = index;
  table.dataset.sortedDown = down;
});

function mountTables(tables) {
  // Drawn again each refresh from the new rows, with the sort, filters and grouping kept.
  const states = current.tables;
  document.querySelectorAll("div.logged[data-key]").forEach((root, i) => {
    const other = root.classList.contains("compared");
    const key = root.dataset.key, table = other ? current.compared[key] : tables[key], kept = other ? `${key}\u0000compared` : key;
    const rows = table.rows.map(row => row.map(cell => cell && cell.image ? {image: withToken(cell.image)} : cell));
    sweepkitTable(root, {...table, rows}, states[kept] || (states[kept] = {}), `table${i}`);
  });
}

// --- the three views -----------------------------------------------------------------------

function sweepsView(sweeps) {
  if (!sweeps.length) return `<p class="missing">No sweep in this store yet: sweepkit create SWEEP.yaml</p>`;
  const rows = sweeps.map(s => `<tr data-sweep="${esc(s.id)}"><td class="text">${link(`#/sweep/${s.id}`, s.id)}</td>
    <td class="text">${esc(s.name || "")}</td><td class="text">${esc(s.method)}</td><td class="text">${esc(s.state)}</td>
    <td class="text">${esc(Object.entries(s.counts).map(([k, n]) => `${n} ${k}`).join(", ") || "no runs yet")}</td>
    <td class="text">${esc(s.metric ? `${s.goal === "maximize" ? "max" : "min"} ${s.metric}` : "")}</td>
    <td>${s.best ? num(s.best.metric) : ""}</td></tr>`).join("");
  return `<h2>Sweeps</h2><table><tr><th class="text">sweep</th><th class="text">name</th><th class="text">method</th>
    <th class="text">state</th><th class="text">runs</th><th class="text">metric</th><th>best</th></tr>${rows}</table>`;
}

function sweepView(s, importance, curves) {
  const best = s.best && s.best.id;
  const overRuns = lineChart([
    {name: "run", points: s.over_runs.map(([value], i) => [i + 1, value])},
    {name: "best so far", points: s.over_runs.map(([, soFar], i) => [i + 1, soFar])},
  ], {xLabel: "run, in the order runs started", width: 640, markers: true});
  const head = ["run", "state", ...s.parameters, s.metric || "metric", "runtime", "error"];
  const rows = s.runs.map(r => `<tr data-run="${esc(r.id)}" data-state="${esc(r.state)}"${r.id === best ? ' class="best"' : ""}>
    <td class="text">${link(`#/sweep/${s.id}/run/${r.id}`, r.name)}</td><td class="text state-${esc(r.state)}">${esc(r.state)}</td>
    ${s.parameters.map(p => `<td>${num(r.config[p])}</td>`).join("")}<td>${num(r.metric)}</td>
    <td>${r.runtime === null ? "" : num(Math.round(r.runtime))} s</td><td class="text error">${esc(r.error)}</td></tr>`).join("");
  return `<h2>${esc(s.label)} <small>${esc(s.method)}, ${esc(s.state)}${s.metric ? `, ${s.goal} ${esc(s.metric)}` : ""}</small></h2>
    <p>${esc(Object.entries(s.counts).map(([k, n]) => `${n} ${k}`).join(", ") || "no runs yet")}${s.best ? `; best: ${esc(s.best.name || s.best.id)} ${num(s.best.metric)}` : ""}</p>
    <div class="charts"><figure data-chart="metric-over-runs"><figcaption>${esc(s.metric || "metric")}, run by run</figcaption>${overRuns}</figure>
    <figure data-chart="metric-curves"><figcaption>${esc(s.metric || "metric")} by step: the best finished runs and the running ones</figcaption>${
      lineChart(Object.entries(curves).map(([id, c]) => ({name: `${c.name}${c.state === "running" ? " (running)" : ""}`, points: c.points, id})))}</figure>
    <figure data-chart="parallel-coordinates"><figcaption>Parameters and ${esc(s.metric || "metric")}, a line per run</figcaption>${parallelChart(s.parallel)}</figure></div>
    <h3>Parameter importance</h3>${importanceTable(importance, s.metric)}
    <h3>Runs</h3><table id="runs" data-sorted><tr>${head.map((h, i) => `<th class="text" data-sort="${i}">${esc(h)}</th>`).join("")}</tr>${rows}</table>`;
}

function runView(run, scalars) {
  const title = `<h2>${link(`#/sweep/${current.route.sweep}`, current.route.sweep)} / ${esc(run.name)}
    <small class="state-${esc(run.state)}">${esc(run.state)}</small></h2>
    <p>${esc(Object.entries(run.config).map(([k, v]) => `${k}=${v}`).join(", "))}</p>${run.error ? `<p class="error">${esc(run.error)}</p>` : ""}`;
  if (!run.logged) return title + `<p class="missing">Nothing to show of what it logged: ${esc(run.why)}.</p>`;
  const curves = Object.entries(scalars).map(([key, points]) =>
    `<figure data-key="${esc(key)}" data-points="${points.length}"><figcaption>${esc(key)}</figcaption>${lineChart([{name: key, points}])}</figure>`).join("");
  const charts = run.logged.charts;
  const conf = (charts.confusion || []).map(c => `<figure data-key="${esc(c.key)}"><figcaption>${esc(c.key)}</figcaption>${confusion(c.rows)}</figure>`).join("");
  const curveCharts = ["roc", "pr"].flatMap(kind => (charts[kind] || []).map(c =>
    `<figure data-key="${esc(c.key)}" data-kind="${kind}"><figcaption>${esc(c.key)}</figcaption>${lineChart(
      Object.entries(c.classes).map(([name, points]) => ({name, points})),
      {xLabel: kind === "roc" ? "false positive rate" : "recall"})}</figure>`)).join("");
  const tables = Object.keys(run.logged.tables).map(key => tableView(run, key)).join("");
  const images = Object.entries(run.logged.images).map(([key, shown]) => `<h4>${esc(key)}</h4><div class="images" data-key="${esc(key)}">` +
    shown.map(([url, caption]) => `<figure><img alt="${esc(caption)}" src="${esc(withToken(url))}"><figcaption>${esc(caption)}</figcaption></figure>`).join("") + "</div>").join("");
  const section = (name, body) => body ? `<h3>${name}</h3><div class="charts">${body}</div>` : "";
  return title + section("Scalars", curves) + section("Confusion matrices", conf) + section("Curves", curveCharts)
    + (tables ? `<h3>Tables</h3>${tables}` : "") + (images ? `<h3>Images</h3>${images}` : "");
}

// A table alone, or beside another version of it: an earlier step of this run, or another
// run's last (W&B Tables' comparison of two runs or two epochs, side by side).
function tableView(run, key) {
  const steps = run.logged.table_steps[key] || [];
  const chosen = current.compare[key] || "";
  const options = [["", "nothing"],
    ...steps.slice(0, -1).map((step, i) => [`v${i}`, `its step ${step} (version ${i + 1} of ${steps.length})`]),
    ...run.others.map(([id, name]) => [`r${id}`, `run ${name}`])];
  const choice = `<label>compare with <select data-compare="${esc(key)}">${options.map(([value, text]) =>
    `<option value="${esc(value)}"${value === chosen ? " selected" : ""}>${esc(text)}</option>`).join("")}</select></label>`;
  const own = `<div class="logged" data-key="${esc(key)}"></div>`;
  const other = chosen && current.compared[key];
  if (!other) return `<h4>${esc(key)}</h4>${choice}${own}`;
  const beside = other.error ? `<p class="missing">${esc(other.error)}</p>`
    : `<p>run ${esc(other.name)}, step ${esc(other.step)}</p><div class="logged compared" data-key="${esc(key)}"></div>`;
  return `<h4>${esc(key)}</h4>${choice}<div class="side-by-side"><div><p>this run, step ${esc(steps[steps.length - 1])}</p>${own}</div>
    <div data-compared="${esc(key)}">${beside}</div></div>`;
}

function addCurves(shown, curves) {
  // The metric's curves of the runs the server picks (the best finished, the running), each
  // run's new points added to those the page has; a run no longer picked drops out.
  shown.curves = Object.fromEntries(curves.runs.map(r =>
    [r.id, {name: r.name, state: r.state, points: (shown.curves[r.id] ? shown.curves[r.id].points : []).concat(r.points)}]));
}

async function compared(shown) {
  // The other side of each comparison, asked again each refresh (another run may log more).
  for (const [key, chosen] of Object.entries(shown.compare)) {
    if (!chosen) continue;
    const [run, version] = chosen[0] === "v" ? [shown.route.run, chosen.slice(1)] : [chosen.slice(1), -1];
    try {
      shown.compared[key] = await api(`/api/sweeps/${shown.route.sweep}/runs/${run}/tables/${encodeURIComponent(key)}`, {version});
    } catch (error) {
      shown.compared[key] = {error: error.message};
    }
  }
}

document.addEventListener("change", event => {
  const key = event.target.dataset.compare;
  if (key === undefined) return;
  current.compare[key] = event.target.value;
  delete current.compared[key];
  refresh();
});

// --- routing and refreshing ----------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (parts[0] === "sweep" && parts[2] === "run") return {view: "run", sweep: parts[1], run: parts[3]};
  if (parts[0] === "sweep") return {view: "sweep", sweep: parts[1]};
  return {view: "sweeps"};
}

let inFlight = null; // the refresh under way: never two at once, or a run's points would be asked for twice

async function refresh() {
  if (inFlight) { inFlight.again = true; return; }
  inFlight = {again: false};
  try {
    await refreshOnce();
  } finally {
    const again = inFlight.again;
    inFlight = null;
    if (again) refresh();
  }
}

async function refreshOnce() {
  const shown = current;
  try {
    let html, tables = {};
    if (shown.route.view === "sweeps") {
      html = sweepsView(await api("/api/sweeps"));
    } else if (shown.route.view === "sweep") {
      const have = Object.fromEntries(Object.entries(shown.curves).map(([id, c]) => [id, c.points.length]));
      const sweep = await api(`/api/sweeps/${shown.route.sweep}`, {since: JSON.stringify(have)});
      addCurves(shown, sweep.curves);
      const finished = sweep.counts.finished || 0;
      if (shown.importanceAt !== finished) {  // asked again only when more runs finished
        shown.importance = await api(`/api/sweeps/${shown.route.sweep}/importance`);
        shown.importanceAt = finished;
      }
      html = sweepView(sweep, shown.importance, shown.curves);
    } else {
      const have = Object.fromEntries(Object.entries(shown.scalars).map(([k, pts]) => [k, pts.length]));
      const run = await api(`/api/sweeps/${shown.route.sweep}/runs/${shown.route.run}`, {since: JSON.stringify(have)});
      if (run.logged) for (const [key, points] of Object.entries(run.logged.scalars)) {
        shown.scalars[key] = (shown.scalars[key] || []).concat(points);
      }
      await compared(shown);
      html = runView(run, shown.scalars);
      if (run.logged) tables = run.logged.tables;
    }
    if (shown !== current) return; // the user went elsewhere meanwhile
    keepingInput(() => {
      document.getElementById("view").innerHTML = html;
      mountTables(tables);
    });
    document.getElementById("problem").textContent = "";
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  } catch (error) {
    document.getElementById("problem").textContent = `Could not read it just now: ${error.message}`;
  }
}

function keepingInput(redraw) {
  // What the user is typing into keeps its focus, and the runs table its order.
  const active = document.activeElement && document.activeElement.id;
  const caret = active && document.activeElement.selectionStart;
  const runs = document.getElementById("runs");
  const order = runs && runs.dataset.sortedBy !== undefined ? [runs.dataset.sortedBy, runs.dataset.sortedDown] : null;
  redraw();
  const again = active && document.getElementById(active);
  if (again) {
    again.focus();
    if (typeof caret === "number" && again.setSelectionRange) again.setSelectionRange(caret, caret);
  }
  const table = document.getElementById("runs");
  if (table && order) {
    const th = table.querySelector(`th[data-sort="${order[0]}"]`);
    th.dataset.order = order[1] === "true" ? "down" : "up";
    th.click();
  }
}

function show() {
  current = {route: route(), scalars: {}, tables: {}, compare: {}, compared: {}, curves: {}};
  document.getElementById("view").innerHTML = "";
  refresh();
}

window.addEventListener("hashchange", show);
show();
setInterval(() => refresh(), EVERY_MS);
