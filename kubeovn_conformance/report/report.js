// Renders the report from the embedded JSON. Every name comes from manifests, so text goes
// in through textContent only (never innerHTML), and links only when they are https.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var SYMBOL = {"pass": "ok", "fail": "FAIL", "known": "known", "undefined": "undef",
                "infra-error": "INFRA", "skipped": "skip"};
  var cells = {};
  data.cells.forEach(function (c) { cells[c.case + "\u0000" + c.col] = c; });

  // ---- truth tables, parsed only when a cell is opened ----------------------------------
  // A cell's `tables` are ids into data.pool, a list of JSON texts shared by every cell that
  // has the same table (html.py). Each comes back in the shape matrix.tables() gives.
  var parsed = {};
  function frag(i) {
    if (!Object.prototype.hasOwnProperty.call(parsed, i)) { parsed[i] = JSON.parse(data.pool[i]); }
    return parsed[i];
  }
  function probes(i) {
    return frag(i).map(function (p) {
      var o = {};
      data.probe_fields.forEach(function (k, j) { o[k] = p[j]; });
      return o;
    });
  }
  function table(i) {
    var t = frag(i), rows = frag(t.rows), cols = frag(t.cols);
    var out = {step: t.step, title: t.title, path: t.path, protocol: t.protocol, rows: rows, cols: cols,
               mismatches: probes(t.mismatches), errors: probes(t.errors), undefined: probes(t.undefined)};
    data.marks.forEach(function (name, m) {
      var text = frag(t.marks[m]);
      out[name] = rows.map(function (_, r) { return text.substr(r * cols.length, cols.length).split(""); });
    });
    return out;
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function link(url, text) {
    if (!/^https:\/\//.test(url)) { return el("span", {}, text); }
    var a = el("a", {"rel": "noreferrer"}, text);
    a.href = url;
    return a;
  }

  // ---- filters -------------------------------------------------------------------------
  var filters = {mode: "", direction: "", path: "", protocol: ""};
  function values(key) {
    var seen = {};
    if (key === "mode") { data.columns.forEach(function (c) { seen[c.mode] = 1; }); }
    else { data.cases.forEach(function (c) { c[key + "s"].forEach(function (v) { seen[v] = 1; }); }); }
    return Object.keys(seen).sort();
  }
  function buildFilters() {
    var box = document.getElementById("filters");
    Object.keys(filters).forEach(function (key) {
      var label = el("label", {}, key + " ");
      var sel = el("select", {"data-filter": key});
      sel.appendChild(el("option", {"value": ""}, "all"));
      values(key).forEach(function (v) { sel.appendChild(el("option", {"value": v}, v)); });
      sel.addEventListener("change", function () { filters[key] = sel.value; applyFilters(); });
      label.appendChild(sel);
      box.appendChild(label);
    });
  }
  function caseVisible(c) {
    return ["direction", "path", "protocol"].every(function (k) {
      var have = c[k + "s"];
      // A case with policies in both directions belongs under ingress and under egress.
      if (k === "direction" && have.indexOf("both") >= 0 && /^(ingress|egress)$/.test(filters[k])) {
        return true;
      }
      return !filters[k] || have.indexOf(filters[k]) >= 0;
    });
  }
  function applyFilters() {
    data.columns.forEach(function (col, i) {
      var hide = filters.mode && col.mode !== filters.mode;
      document.querySelectorAll("[data-colidx='" + i + "']").forEach(function (e) {
        e.classList.toggle("hidden", !!hide);
      });
    });
    data.cases.forEach(function (c, i) { rowElements[i].classList.toggle("hidden", !caseVisible(c)); });
    document.querySelectorAll("[data-table-path]").forEach(function (e) {
      var hide = (filters.path && e.getAttribute("data-table-path") !== filters.path) ||
        (filters.protocol && e.getAttribute("data-table-protocol") !== filters.protocol);
      e.classList.toggle("hidden", !!hide);
    });
    var grid = document.getElementById("grid");
    grid.setAttribute("data-visible-cells",
      String(grid.querySelectorAll("tbody tr:not(.hidden) td.cell:not(.hidden):not(.s-none)").length));
  }

  // ---- grid ----------------------------------------------------------------------------
  var rowElements = [];
  function buildGrid() {
    var grid = document.getElementById("grid");
    var head = el("tr");
    head.appendChild(el("th", {}, "case"));
    data.columns.forEach(function (col, i) {
      head.appendChild(el("th", {"data-colidx": String(i), "title": col.run_id}, col.label));
    });
    var thead = el("thead");
    thead.appendChild(head);
    grid.appendChild(thead);
    var tbody = el("tbody");
    var counts = {};
    data.states.forEach(function (s) { counts[s] = 0; });
    data.cases.forEach(function (c, r) {
      var tr = el("tr", {"data-row": String(r)});
      rowElements.push(tr);
      tr.appendChild(el("th", {"class": "case"}, c.name));
      data.columns.forEach(function (col, i) {
        var cell = cells[c.name + "\u0000" + col.key];
        var td = el("td", {"data-colidx": String(i)});
        if (!cell) {
          td.className = "cell s-none";
          td.textContent = "-";
        } else {
          counts[cell.state] += 1;
          td.className = "cell s-" + cell.state + (cell.fixed ? " fixed" : "");
          td.setAttribute("data-state", cell.state);
          td.setAttribute("data-case", c.name);
          td.setAttribute("data-col", col.key);
          var b = el("button", {"type": "button",
            "title": c.name + " @ " + col.label + ": " + cell.state + (cell.fixed ? " (fixed?)" : "")},
            SYMBOL[cell.state] + (cell.fixed ? " fixed?" : ""));
          b.addEventListener("click", function () {
            location.hash = "cell=" + encodeURIComponent(c.name) + "&col=" + encodeURIComponent(col.key);
          });
          td.appendChild(b);
        }
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    grid.appendChild(tbody);
    data.states.forEach(function (s) { grid.setAttribute("data-count-" + s, String(counts[s])); });
    grid.setAttribute("data-count-fixed", String(data.cells.filter(function (c) { return c.fixed; }).length));
  }

  // ---- details -------------------------------------------------------------------------
  function truthTable(t, name) {
    var table = el("table", {"class": "tt", "data-kind": name});
    table.appendChild(el("caption", {}, name));
    var head = el("tr");
    head.appendChild(el("th"));
    t.cols.forEach(function (c) { head.appendChild(el("th", {"title": c}, c)); });
    table.appendChild(head);
    t.rows.forEach(function (r, i) {
      var tr = el("tr");
      tr.appendChild(el("th", {"class": "row"}, r));
      t[name][i].forEach(function (m, j) {
        var cls = "m-" + (m === "?" ? "q" : m === "." ? "dot" : m === " " ? "none" : m) +
          (name === "diff" ? " diff" : "");
        // Node placement (kind): cross-node cells get a dashed frame, both classes a title.
        var where = t.placement ? t.placement[i][j] : "-";
        var attrs = {"class": cls + (where === "c" ? " x-node" : "")};
        if (where === "c" || where === "s") {
          attrs.title = r + " -> " + t.cols[j] + ": " + (where === "c" ? "cross-node" : "same-node");
          attrs["data-placement"] = where === "c" ? "cross-node" : "same-node";
        }
        tr.appendChild(el("td", attrs, m));
      });
      table.appendChild(tr);
    });
    return table;
  }
  function probeList(title, probes) {
    var box = el("div");
    box.appendChild(el("h4", {}, title + " (" + probes.length + ")"));
    var ul = el("ul", {"class": "probes"});
    probes.forEach(function (p) {
      var via = p.path + " " + p.port + "/" + p.protocol +
        (p.target_port !== null && String(p.target_port) !== String(p.port) ? " -> " + p.target_port : "");
      ul.appendChild(el("li", {}, p.client + " -> " + p.target + " via " + via + ": expected " +
        p.verdict + ", observed " + (p.observed || "nothing") + " after " + p.attempts +
        " attempt(s). Reason: " + (p.reason || "none given") +
        (p.detail ? ". Error: " + p.detail : "")));
    });
    box.appendChild(ul);
    return box;
  }
  function stat(box, label, value) {
    var s = el("div", {"class": "stat"});
    s.appendChild(el("span", {"class": "muted"}, label + ": "));
    s.appendChild(el("span", {"data-stat": label}, value));
    box.appendChild(s);
  }
  function openDetails(caseName, colKey) {
    var started = performance.now();
    var cell = cells[caseName + "\u0000" + colKey];
    var box = document.getElementById("details");
    while (box.firstChild) { box.removeChild(box.firstChild); }
    document.querySelectorAll("td.cell.selected").forEach(function (e) { e.classList.remove("selected"); });
    if (!cell) { box.appendChild(el("p", {"class": "muted"}, "No such cell: " + caseName)); return; }
    document.querySelectorAll("td.cell").forEach(function (td) {
      if (td.getAttribute("data-case") === caseName && td.getAttribute("data-col") === colKey) {
        td.classList.add("selected");
      }
    });
    var col = data.columns.filter(function (c) { return c.key === colKey; })[0];
    box.setAttribute("data-open", "1");
    box.setAttribute("data-case", caseName);
    box.appendChild(el("h2", {}, caseName + " @ " + col.label));
    var badge = el("span", {"class": "s-" + cell.state, "data-state": cell.state},
      " " + cell.state + (cell.fixed ? " (fixed?)" : "") + " ");
    box.appendChild(badge);
    if (cell.issue) {
      var p = el("p", {"class": "issue"}, (cell.fixed ? "Matches a known issue but passed: " :
        "Known issue: ") );
      p.appendChild(link(cell.issue.url, cell.issue.id));
      p.appendChild(document.createTextNode(" " + cell.issue.explanation));
      box.appendChild(p);
    }
    var stats = el("div", {"class": "stats"});
    stat(stats, "probes", cell.probes);
    stat(stats, "mismatches", cell.mismatches);
    // The runner leaves convergence empty when a step never agreed before its deadline.
    stat(stats, "convergence", cell.convergence_ms !== null ? Math.round(cell.convergence_ms) + " ms" :
      (cell.probes ? "never agreed before the deadline" : "n/a"));
    stat(stats, "duration", cell.duration_s === null ? "n/a" : cell.duration_s + " s");
    stat(stats, "run", col.run_id + " (" + col.backend + ")");
    if (cell.skip_reason) { stat(stats, "skipped", cell.skip_reason); }
    if (cell.leaks) {
      stat(stats, "leaks", cell.leaks + " samples saw a stable verdict flip, within " +
        Math.round(cell.leak_span_ms) + " ms of applying a step");
    }
    if (cell.placement) {
      stat(stats, "placement", cell.placement["same-node"] + " same-node, " +
        cell.placement["cross-node"] + " cross-node cells (dashed frame = cross-node)");
    }
    box.appendChild(stats);
    cell.tables.map(table).forEach(function (t) {
      var sec = el("section", {"class": "tt-group", "data-table-path": t.path, "data-table-protocol": t.protocol});
      sec.appendChild(el("h3", {}, t.step + ": " + t.title));
      var row = el("div", {"class": "tables"});
      ["expected", "observed", "diff"].forEach(function (n) { row.appendChild(truthTable(t, n)); });
      sec.appendChild(row);
      if (t.mismatches.length) { sec.appendChild(probeList("Mismatches", t.mismatches)); }
      if (t.errors.length) { sec.appendChild(probeList("Probe errors", t.errors)); }
      if (t.undefined.length) {
        var d = el("details");
        d.appendChild(el("summary", {}, "Implementation-defined probes (" + t.undefined.length + ")"));
        d.appendChild(probeList("Undefined", t.undefined));
        sec.appendChild(d);
      }
      box.appendChild(sec);
    });
    if (!cell.tables.length) { box.appendChild(el("p", {"class": "muted"}, "No probes recorded.")); }
    applyFilters();
    box.setAttribute("data-open-ms", String(Math.round(performance.now() - started)));
  }
  // The hash makes views linkable: #cell=CASE&col=VERSION|MODE opens a cell's details,
  // #mode=underlay&protocol=UDP (any filter key) sets filters.
  function fromHash(scroll) {
    var params = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) { params[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1)); }
    });
    Object.keys(filters).forEach(function (key) {
      if (key in params) {
        filters[key] = params[key];
        document.querySelector("select[data-filter='" + key + "']").value = params[key];
      }
    });
    applyFilters();
    if ("cell" in params && "col" in params) {
      openDetails(params.cell, params.col);
      // Only after a click: a page opened on a link (or screenshotted) keeps the grid in view.
      if (scroll) { document.getElementById("details").scrollIntoView(); }
    }
  }

  buildFilters();
  buildGrid();
  window.addEventListener("hashchange", function () { fromHash(true); });
  fromHash(false);
  // Milliseconds from navigation start (reading and parsing the page included) to a usable
  // grid: the browser test and `make bench` read it.
  document.getElementById("grid").setAttribute("data-ready-ms", String(Math.round(performance.now())));
  document.body.setAttribute("data-ready", "1");
})();
