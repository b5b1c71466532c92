// The report's prediction table: sort, filter and group rows of the JSON that
// sweepkit/report/table.py writes into the page (id="prediction-data").
// Plain DOM code, no library: the report must work from one file, offline.
(function () {
  "use strict";
  const root = document.getElementById("prediction-table");
  const data = JSON.parse(document.getElementById("prediction-data").textContent);
  const columns = data.columns;           // id, image, guess, truth, score_0 .. score_9
  const col = Object.fromEntries(columns.map((name, i) => [name, i]));
  const state = { sortBy: null, descending: false, wrongOnly: false, truth: "", guess: "", groupBy: "" };

  // Controls: a checkbox, three selects, and a line saying how many rows are shown.
  const controls = element("div", { className: "controls" });
  const wrong = element("input", { type: "checkbox", id: "pt-wrong" });
  controls.append(label(wrong, "wrong guesses only"));
  const truth = select("pt-truth", [["", "any"], ...classes("truth")]);
  const guess = select("pt-guess", [["", "any"], ...classes("guess")]);
  const group = select("pt-group", [["", "nothing"], ["guess", "guess"], ["truth", "truth"]]);
  controls.append(label(truth, "truth"), label(guess, "guess"), label(group, "group by"));
  const count = element("span", { id: "pt-count" });
  controls.append(count);

  const table = element("table");
  const head = element("tr");
  columns.forEach((name, i) => {
    const th = element("th", { textContent: name });
    th.dataset.column = name;
    th.addEventListener("click", () => sortBy(i));
    head.append(th);
  });
  const thead = element("thead");
  thead.append(head);
  const tbody = element("tbody");
  table.append(thead, tbody);
  root.append(controls, table);

  wrong.addEventListener("change", () => { state.wrongOnly = wrong.checked; draw(); });
  truth.addEventListener("change", () => { state.truth = truth.value; draw(); });
  guess.addEventListener("change", () => { state.guess = guess.value; draw(); });
  group.addEventListener("change", () => { state.groupBy = group.value; draw(); });
  draw();

  // A click sorts by the column, ascending; a second click on it, descending.
  function sortBy(i) {
    state.descending = state.sortBy === i ? !state.descending : false;
    state.sortBy = i;
    draw();
  }

  function visibleRows() {
    return data.rows.filter((row) =>
      (!state.wrongOnly || row[col.guess] !== row[col.truth]) &&
      (state.truth === "" || row[col.truth] === Number(state.truth)) &&
      (state.guess === "" || row[col.guess] === Number(state.guess)));
  }

  function compare(a, b) {
    if (state.sortBy === null) return 0;
    const x = a[state.sortBy], y = b[state.sortBy];
    const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
    return state.descending ? -order : order;
  }

  function draw() {
    const rows = visibleRows().sort(compare);  // Array.sort is stable: groups keep the order
    head.querySelectorAll("th").forEach((th, i) => {
      if (i === state.sortBy) th.setAttribute("aria-sort", state.descending ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
    tbody.replaceChildren();
    if (state.groupBy) {
      const key = col[state.groupBy];
      const groups = new Map();
      rows.forEach((row) => {
        if (!groups.has(row[key])) groups.set(row[key], []);
        groups.get(row[key]).push(row);
      });
      [...groups.keys()].sort((a, b) => a - b).forEach((value) => {
        const members = groups.get(value);
        const wrongCount = members.filter((r) => r[col.guess] !== r[col.truth]).length;
        const tr = element("tr", { className: "group-row" });
        tr.dataset.group = value;
        tr.append(element("th", {
          colSpan: columns.length,
          textContent: `${state.groupBy} ${value}: ${members.length} row${members.length === 1 ? "" : "s"}, ${wrongCount} wrong`,
        }));
        tbody.append(tr);
        members.forEach((row) => tbody.append(rowElement(row)));
      });
    } else {
      rows.forEach((row) => tbody.append(rowElement(row)));
    }
    count.textContent = `showing ${rows.length} of ${data.rows.length} rows`;
  }

  function rowElement(row) {
    const tr = element("tr", { className: row[col.guess] !== row[col.truth] ? "data-row wrong" : "data-row" });
    columns.forEach((name, i) => {
      const td = element("td", { className: name.startsWith("score_") ? "score" : name });
      if (name === "image") {
        if (row[i] >= 0) td.append(element("img", { src: data.images[row[i]], alt: `image ${row[col.id]}` }));
      } else if (name.startsWith("score_")) {
        td.textContent = row[i].toFixed(3);
        // The score as a bar behind its number, as W&B Tables shades numbers.
        td.style.background = `linear-gradient(90deg, #c8e6c9 ${(100 * row[i]).toFixed(0)}%, transparent 0)`;
      } else {
        td.textContent = row[i];
      }
      tr.append(td);
    });
    return tr;
  }

  function classes(name) {
    const values = [...new Set(data.rows.map((row) => row[col[name]]))].sort((a, b) => a - b);
    return values.map((v) => [String(v), String(v)]);
  }

  function select(id, options) {
    const s = element("select", { id });
    options.forEach(([value, text]) => s.append(element("option", { value, textContent: text })));
    return s;
  }

  // "[x] wrong guesses only", but "truth [any]": a checkbox before its words, a select after.
  function label(input, text) {
    const l = element("label");
    if (input.type === "checkbox") l.append(input, " " + text);
    else l.append(text + " ", input);
    return l;
  }

  function element(tag, properties = {}) {
    return Object.assign(document.createElement(tag), properties);
  }
})();
