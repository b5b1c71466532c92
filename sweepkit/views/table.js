// An interactive table, W&B Tables' sort, filter and group offline: the one component both
// pages draw logged tables with, the report (one self-contained file) and the dashboard
// (which draws it again every refresh, handing back the same `state`).
//
//   sweepkitTable(root, data, state, prefix)
//
// data: {columns, rows, images?}. A cell {image: i} shows data.images[i] (the report's
// data: URIs, each image once), a cell {image: "url"} an image's URL (the dashboard).
// state: the caller's object, kept between draws: sort, filters, grouping.
// prefix: the controls' ids (`${prefix}-filter`, -group, -count; -wrong, -truth and -guess
// for a prediction table), unique on the page.
// A table with `guess` and `truth` columns (a prediction table) also filters wrong
// guesses only, one truth or one guess. Plain DOM code, no library, no network.
const sweepkitTable = (() => {
"use strict";

return function sweepkitTable(root, data, state = {}, prefix = "pt") {
  const columns = data.columns;
  const col = Object.fromEntries(columns.map((name, i) => [name, i]));
  const predictions = "guess" in col && "truth" in col;
  Object.assign(state, {sortBy: null, descending: false, text: "", groupBy: "", wrongOnly: false, truth: "", guess: ""}, {...state});
  const isImage = i => data.rows.some(row => row[i] && typeof row[i] === "object" && "image" in row[i]);
  const groupable = columns.filter((name, i) => !isImage(i));
  addStyle();

  const controls = element("div", {className: "controls"});
  const filter = element("input", {id: `${prefix}-filter`, placeholder: "filter rows", value: state.text});
  filter.dataset.filter = prefix;
  controls.append(filter);
  if (predictions) {
    const wrong = element("input", {type: "checkbox", id: `${prefix}-wrong`, checked: state.wrongOnly});
    controls.append(label(wrong, "wrong guesses only"));
    wrong.addEventListener("change", () => { state.wrongOnly = wrong.checked; draw(); });
    for (const name of ["truth", "guess"]) {
      const choice = select(`${prefix}-${name}`, [["", "any"], ...distinct(col[name]).map(v => [String(v), String(v)])], state[name]);
      controls.append(label(choice, name));
      choice.addEventListener("change", () => { state[name] = choice.value; draw(); });
    }
  }
  const group = select(`${prefix}-group`, [["", "nothing"], ...groupable.map(name => [name, name])], state.groupBy);
  controls.append(label(group, "group by"));
  const count = element("span", {id: `${prefix}-count`, className: "count"});
  controls.append(count);

  const head = element("tr");
  columns.forEach((name, i) => {
    const th = element("th", {textContent: name});
    th.dataset.column = name;
    th.addEventListener("click", () => {  // a click sorts ascending; a second, descending
      state.descending = state.sortBy === i ? !state.descending : false;
      state.sortBy = i;
      draw();
    });
    head.append(th);
  });
  const thead = element("thead"), tbody = element("tbody"), table = element("table");
  thead.append(head);
  table.append(thead, tbody);
  root.classList.add("ptable");
  root.replaceChildren(controls, table);

  filter.addEventListener("input", () => { state.text = filter.value; draw(); });
  group.addEventListener("change", () => { state.groupBy = group.value; draw(); });
  draw();

  function wrongGuess(row) {
    return predictions && row[col.guess] !== row[col.truth];
  }

  function visibleRows() {
    const text = state.text.toLowerCase();
    return data.rows.filter(row =>
      (!state.wrongOnly || wrongGuess(row)) &&
      (!predictions || state.truth === "" || String(row[col.truth]) === state.truth) &&
      (!predictions || state.guess === "" || String(row[col.guess]) === state.guess) &&
      (!text || row.some(cell => cell !== null && typeof cell !== "object" && String(cell).toLowerCase().includes(text))));
  }

  function draw() {
    const rows = visibleRows();
    if (state.sortBy !== null) {  // Array.sort is stable: groups keep this order
      rows.sort((a, b) => (state.descending ? -1 : 1) * order(a[state.sortBy], b[state.sortBy]));
    }
    head.querySelectorAll("th").forEach((th, i) => {
      if (i === state.sortBy) th.setAttribute("aria-sort", state.descending ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
    tbody.replaceChildren();
    if (state.groupBy in col) {
      const key = col[state.groupBy], groups = new Map();
      rows.forEach(row => {
        if (!groups.has(row[key])) groups.set(row[key], []);
        groups.get(row[key]).push(row);
      });
      [...groups.keys()].sort(order).forEach(value => {
        const members = groups.get(value);
        const wrongs = predictions ? `, ${members.filter(wrongGuess).length} wrong` : "";
        const tr = element("tr", {className: "group-row"});
        tr.dataset.group = value;
        tr.append(element("th", {colSpan: columns.length,
          textContent: `${state.groupBy} ${value}: ${members.length} row${members.length === 1 ? "" : "s"}${wrongs}`}));
        tbody.append(tr, ...members.map(rowElement));
      });
    } else {
      tbody.append(...rows.map(rowElement));
    }
    count.textContent = `showing ${rows.length} of ${data.rows.length} rows`;
  }

  function rowElement(row) {
    const tr = element("tr", {className: wrongGuess(row) ? "data-row wrong" : "data-row"});
    columns.forEach((name, i) => {
      const cell = row[i], score = name.startsWith("score_") && typeof cell === "number";
      const td = element("td", {className: score ? "score" : name});
      if (cell && typeof cell === "object" && "image" in cell) {
        const src = typeof cell.image === "number" ? data.images[cell.image] : cell.image;
        td.append(element("img", {src, alt: `image ${"id" in col ? row[col.id] : ""}`.trim()}));
      } else if (score) {
        td.textContent = cell.toFixed(3);
        // the score as a bar behind its number, as W&B Tables shades numbers
        td.style.background = `linear-gradient(90deg, #c8e6c9 ${(100 * cell).toFixed(0)}%, transparent 0)`;
      } else {
        td.textContent = cell ?? "";
      }
      tr.append(td);
    });
    return tr;
  }

  function distinct(i) {
    return [...new Set(data.rows.map(row => row[i]))].sort(order);
  }

  function select(id, options, chosen) {
    const s = element("select", {id});
    options.forEach(([value, text]) => s.append(element("option", {value, textContent: text})));
    s.value = chosen;
    return s;
  }

  // "[x] wrong guesses only", but "truth [any]": a checkbox before its words, a select after.
  function label(input, text) {
    const l = element("label");
    if (input.type === "checkbox") l.append(input, " " + text);
    else l.append(text + " ", input);
    return l;
  }
};

// Numbers by value, then text in natural order ("run 2" before "run 10"), empty cells last.
function order(x, y) {
  if (x === null || x === undefined) return y === null || y === undefined ? 0 : 1;
  if (y === null || y === undefined) return -1;
  if (typeof x === "number" && typeof y === "number") return x - y;
  return String(x).localeCompare(String(y), undefined, {numeric: true});
}

function element(tag, properties = {}) {
  return Object.assign(document.createElement(tag), properties);
}

function addStyle() {
  if (document.getElementById("sweepkit-table-style")) return;
  const style = element("style", {id: "sweepkit-table-style", textContent: `
    .ptable .controls { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; margin: .5rem 0; }
    .ptable th { cursor: pointer; user-select: none; white-space: nowrap; }
    .ptable th[aria-sort="ascending"]::after { content: " \\25B2"; }
    .ptable th[aria-sort="descending"]::after { content: " \\25BC"; }
    .ptable tr.wrong td.guess { color: #c62828; font-weight: 600; }
    .ptable tr.group-row th { text-align: left; background: #f1f3f4; cursor: default; }
    .ptable td.score { font-variant-numeric: tabular-nums; }
    .ptable img { width: 28px; height: 28px; image-rendering: pixelated; }`});
  document.head.append(style);
}
})();
