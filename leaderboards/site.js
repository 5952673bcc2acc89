(function () {
  "use strict";
  var node = document.getElementById("board-data");
  if (!node) return;
  var board = JSON.parse(node.textContent);
  var app = document.getElementById("app");
  var COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
  var state = {sort: "rank", dir: "asc", filter: "", shown: board.columns.slice(), plot: {}, unknownSort: null};
  var SORTABLE = {rank: "#", model: "Model", config: "Config", vs_top: "\u0394 #1", params: "Params",
                  paper: "Paper", delta: "\u0394 paper", commit: "Commit", date: "Date"};

  function sortKey(text) {  // a column's key, or its header text as shown ("Rank-1", "mAP"), any case
    var wanted = String(text).toLowerCase(), found = null;
    board.metrics.forEach(function (m) { if (m.toLowerCase() === wanted || label(m).toLowerCase() === wanted) found = m; });
    Object.keys(SORTABLE).forEach(function (k) { if (k.toLowerCase() === wanted || SORTABLE[k].toLowerCase() === wanted) found = k; });
    return found;
  }

  function readHash() {
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("="); if (i < 0) return;
      var k = decodeURIComponent(kv.slice(0, i)), v = decodeURIComponent(kv.slice(i + 1));
      if (k === "sort") {
        var key = sortKey(v);
        if (key) state.sort = key; else state.unknownSort = v;  // said on the page, not ignored silently
      }
      else if (k === "dir") state.dir = v === "desc" ? "desc" : "asc";
      else if (k === "filter") state.filter = v;
      else if (k === "metrics") state.shown = v.split(",").filter(function (m) { return board.metrics.indexOf(m) >= 0; });
      else if (k === "plot") v.split(";").forEach(function (part) {
        var j = part.indexOf(":"); if (j < 0) return;
        state.plot[part.slice(0, j)] = part.slice(j + 1).split(",").map(Number);
      });
    });
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }
  function fmt(v, d) { return v === null || v === undefined ? "\u2014" : Number(v).toFixed(d === undefined ? 1 : d); }
  function signed(v) { return (v > 0 ? "+" : "") + fmt(v); }
  function label(m) { return board.labels[m] || m; }
  function value(row, key) {
    if (key === "rank") return row.rank === null ? Infinity : row.rank;
    if (key === "model" || key === "config" || key === "commit" || key === "date") return row[key] || "";
    if (key === "params") return row.params === null ? -1 : row.params;
    if (key === "paper") return row.paper === null ? -Infinity : row.paper;
    if (key === "delta") return row.paper_difference === null ? -Infinity : row.paper_difference;
    if (key === "vs_top") return row.bootstrap ? row.bootstrap.vs_top.difference : -Infinity;
    var m = row.metrics[key];
    return m && m.mean !== null ? m.mean : -Infinity;
  }
  function sortedRows(rows) {
    var sign = state.dir === "desc" ? -1 : 1;
    return rows.map(function (r, i) { return [r, i]; }).sort(function (a, b) {
      var x = value(a[0], state.sort), y = value(b[0], state.sort);
      if (x < y) return -sign; if (x > y) return sign; return a[1] - b[1];
    }).map(function (p) { return p[0]; });
  }
  function rowText(row) {  // every column's text, so the filter reaches any of them
    var parts = [row.model, row.config, row.control || "", row.tuned || "", row.n, row.fewer_seeds ? "fewer seeds" : "",
                 row.paper_status || "",
                 row.commit, row.date, row.rank === null ? "" : "#" + row.rank];
    Object.keys(row.metrics).forEach(function (m) { if (row.metrics[m].mean !== null) parts.push(fmt(row.metrics[m].mean)); });
    return parts.join(" ").toLowerCase();
  }
  function visible(row) {
    var q = state.filter.toLowerCase().trim();
    if (!q) return true;
    var text = rowText(row);
    return q.split(/\s+/).every(function (word) { return text.indexOf(word) >= 0; });
  }
  function setHash() {
    var parts = ["sort=" + encodeURIComponent(state.sort), "dir=" + state.dir, "metrics=" + state.shown.join(",")];
    if (state.filter) parts.push("filter=" + encodeURIComponent(state.filter));
    var plots = Object.keys(state.plot).map(function (f) { return f + ":" + state.plot[f].join(","); });
    if (plots.length) parts.push("plot=" + plots.join(";"));
    history.replaceState(null, "", "#" + parts.join("&"));
  }

  function controls() {
    var box = el("div", {"class": "controls"});
    var filter = el("input", {type: "search", id: "filter", placeholder: "filter: words in any column"});
    filter.value = state.filter;
    filter.addEventListener("input", function () { state.filter = filter.value; render(); });
    box.appendChild(filter);
    var toggles = el("span", {id: "metric-toggles"}, "metrics: ");
    board.metrics.forEach(function (m) {
      var lab = el("label"), cb = el("input", {type: "checkbox", "data-metric": m});
      cb.checked = state.shown.indexOf(m) >= 0;
      cb.addEventListener("change", function () {
        state.shown = board.metrics.filter(function (k) {
          return k === m ? cb.checked : state.shown.indexOf(k) >= 0;
        });
        render();
      });
      lab.appendChild(cb); lab.appendChild(document.createTextNode(" " + label(m) + " "));
      toggles.appendChild(lab);
    });
    box.appendChild(toggles);
    return box;
  }

  function table(section, key) {
    var cols = [["plot", "plot"], ["n", "Seeds"], ["rank", "#"], ["model", "Model"], ["config", "Config"]]
      .concat(state.shown.map(function (m) { return [m, label(m)]; }))
      .concat([["vs_top", "\u0394 #1 " + label(board.main_score) + " [95% CI]"], ["params", "Params"],
               ["paper", "Paper " + label(board.reference_score)], ["delta", "\u0394 paper"],
               ["status", "Reproduction"], ["commit", "Commit"], ["date", "Date"]]);
    var t = el("table", {"class": "board", "data-fold": section.fold, "data-version": section.version});
    var head = el("tr");
    cols.forEach(function (c) {
      var th = el("th", {"data-key": c[0]}, c[1]);
      if (c[0] === state.sort) th.className = "sorted-" + state.dir;
      if (c[0] !== "plot" && c[0] !== "n" && c[0] !== "status") th.addEventListener("click", function () {
        if (state.sort === c[0]) state.dir = state.dir === "asc" ? "desc" : "asc";
        else { state.sort = c[0]; state.dir = c[0] === "rank" || c[0] === "model" || c[0] === "config" ? "asc" : "desc"; }
        render();
      });
      head.appendChild(th);
    });
    t.appendChild(head);
    var chosen = state.plot[key];
    var wrap = el("div", {"class": "table-scroll"});  // a wide board scrolls inside the page, never cut
    wrap.appendChild(t);
    sortedRows(section.rows).filter(visible).forEach(function (row) {
      var index = section.rows.indexOf(row);
      var tr = el("tr", {"data-model": row.model, "data-index": String(index)});
      if (!row.complete) tr.className = "incomplete";
      if (row.fewer_seeds) tr.className += " fewer-seeds";
      if (row.control) tr.className += " control";
      cols.forEach(function (c) {
        var td = el("td"), k = c[0];
        if (k === "plot") {
          var cb = el("input", {type: "checkbox"});
          cb.checked = chosen.indexOf(index) >= 0;
          cb.addEventListener("change", function () {
            state.plot[key] = cb.checked ? chosen.concat([index]) : chosen.filter(function (i) { return i !== index; });
            render();
          });
          td.appendChild(cb);
        } else if (k === "rank") { td.textContent = row.rank === null ? "\u2014" : row.rank; td.className = "num"; }
        else if (k === "model") {
          td.textContent = row.model + (row.tuned ? " (tuned: " + row.tuned + ")" : "") + (row.control ? " (" + row.control + ")" : "");
          td.className = "model";
        } else if (k === "config") { td.textContent = row.config; td.className = "config"; }
        else if (k === "vs_top") {
          td.className = "num";
          if (row.rank === 1) td.textContent = "top";
          else if (row.bootstrap) {
            var b = row.bootstrap.vs_top;
            td.textContent = signed(b.difference) + " [" + signed(b.ci95[0]) + ", " + signed(b.ci95[1]) + "]" + (b.tied ? " tied" : "");
            td.className += b.tied ? " tie" : "";
          } else td.textContent = "\u2014";
        } else if (k === "n") {
          td.textContent = row.n; td.className = "num" + (row.fewer_seeds ? " few" : "");
          if (row.fewer_seeds) td.title = "fewer seeds than the protocol's: its rank and ties rest on less";
        }
        else if (k === "params") {  // compact, the exact count on hover
          td.className = "num";
          td.textContent = row.params === null ? "\u2014" : row.params >= 1e6 ? (row.params / 1e6).toFixed(2) + "M" :
            row.params >= 1e3 ? (row.params / 1e3).toFixed(1) + "K" : String(row.params);
          if (row.params !== null) td.title = row.params.toLocaleString("en") + " parameters";
        }
        else if (k === "paper") {
          td.textContent = fmt(row.paper) + (row.paper !== null && row.paper_marks ? " " + row.paper_marks : "");
          td.className = "num"; if (row.paper_kind) td.title = row.paper_kind;
        }
        else if (k === "delta") {
          td.className = "num";
          td.textContent = row.paper_difference === null ? "\u2014" : signed(row.paper_difference);
          var vp = row.bootstrap && row.bootstrap.vs_paper;
          if (vp && row.paper_difference !== null) td.textContent += " [" + signed(vp.ci95[0]) + ", " + signed(vp.ci95[1]) + "]";
        } else if (k === "status") { td.textContent = row.paper_status || "\u2014"; td.className = "status"; }
        else if (k === "commit") {
          td.textContent = row.commit;
          td.title = Object.keys(row.versions).map(function (v) { return v + " " + row.versions[v]; }).join(", ");
          // only web links: a results file is someone else's data (javascript: and the like are dropped)
          var seeds = Object.keys(row.links).filter(function (s) { return /^https?:\/\//i.test(String(row.links[s])); });
          if (seeds.length) {
            td.textContent = "";
            td.appendChild(document.createTextNode(row.commit + " "));
            seeds.forEach(function (s) { td.appendChild(el("a", {href: row.links[s]}, "s" + s)); td.appendChild(document.createTextNode(" ")); });
          }
        } else if (k === "date") td.textContent = row.date;
        else {
          var m = row.metrics[k]; td.className = "num";
          if (!m || m.mean === null) td.textContent = "\u2014";
          else {
            td.textContent = fmt(m.mean) + (Object.keys(m.seeds).length > 1 ? " \u00b1 " + fmt(m.std) : "");
            td.title = Object.keys(m.seeds).map(function (s) { return "seed " + s + ": " + fmt(m.seeds[s]); }).join("\n");
          }
        }
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    return wrap;
  }

  function axes(g, w, h, pad, xmax, xlabel, ylabel, ymin, ymax, xticks) {
    g.appendChild(svg("line", {x1: pad, y1: h - pad, x2: w - 10, y2: h - pad, stroke: "#888"}));
    g.appendChild(svg("line", {x1: pad, y1: 10, x2: pad, y2: h - pad, stroke: "#888"}));
    for (var y = ymin; y <= ymax + 1e-9; y += (ymax - ymin) / 4) {
      var py = h - pad - (y - ymin) / (ymax - ymin) * (h - pad - 10);
      g.appendChild(svg("line", {x1: pad - 4, y1: py, x2: w - 10, y2: py, stroke: "#eee"}));
      var t = svg("text", {x: pad - 6, y: py + 4, "text-anchor": "end"}); t.textContent = Math.round(y); g.appendChild(t);
    }
    xticks.forEach(function (tick) {
      var t = svg("text", {x: tick[0], y: h - pad + 14, "text-anchor": "middle"}); t.textContent = tick[1]; g.appendChild(t);
    });
    var xl = svg("text", {x: (w + pad) / 2, y: h - 4, "text-anchor": "middle"}); xl.textContent = xlabel; g.appendChild(xl);
    var yl = svg("text", {x: 12, y: h / 2, transform: "rotate(-90 12 " + h / 2 + ")", "text-anchor": "middle"});
    yl.textContent = ylabel; g.appendChild(yl);
  }

  function cmcPlot(section, key) {
    var w = 460, h = 280, pad = 42, chosen = state.plot[key];
    var s = svg("svg", {width: w, height: h, "class": "cmc", "data-fold": section.fold, "data-version": section.version});
    var curves = chosen.map(function (i) { return section.rows[i]; }).filter(function (r) { return r && Object.keys(r.cmc).length; });
    var ranks = Math.max.apply(null, [2].concat(curves.map(function (r) {
      return Math.min.apply(null, Object.keys(r.cmc).map(function (k) { return r.cmc[k].length; }));
    })));
    var x = function (k) { return pad + (k - 1) / (ranks - 1) * (w - pad - 10); };
    var y = function (v) { return h - pad - v * (h - pad - 10); };
    var step = Math.max(1, Math.ceil(ranks / 10));
    var ticks = [];
    for (var k = 1; k <= ranks; k += step) ticks.push([x(k), k]);
    axes(s, w, h, pad, ranks, "rank", "identification rate (%)", 0, 100, ticks);
    var legend = el("div", {"class": "legend"});
    curves.forEach(function (row, c) {
      var colour = COLOURS[c % COLOURS.length];
      var seeds = Object.keys(row.cmc).map(function (k) { return row.cmc[k].slice(0, ranks); });
      var mean = [], lo = [], hi = [];
      for (var i = 0; i < ranks; i++) {
        var vals = seeds.map(function (v) { return v[i]; });
        mean.push(vals.reduce(function (a, b) { return a + b; }, 0) / vals.length);
        lo.push(Math.min.apply(null, vals)); hi.push(Math.max.apply(null, vals));
      }
      if (seeds.length > 1) {
        var band = lo.map(function (v, i) { return x(i + 1) + "," + y(v); })
          .concat(hi.map(function (v, i) { return x(i + 1) + "," + y(v); }).reverse());
        s.appendChild(svg("polygon", {points: band.join(" "), fill: colour, "fill-opacity": 0.15, stroke: "none", "class": "band"}));
      }
      s.appendChild(svg("polyline", {points: mean.map(function (v, i) { return x(i + 1) + "," + y(v); }).join(" "),
        fill: "none", stroke: colour, "stroke-width": 2, "class": "mean", "data-model": row.model}));
      var item = el("span"); var sw = el("span", {"class": "swatch", style: "background:" + colour});
      item.appendChild(sw); item.appendChild(document.createTextNode(row.model + " (" + row.config + ")"));
      legend.appendChild(item);
    });
    var box = el("div"); box.appendChild(el("div", {"class": "note"}, "CMC of the ticked rows: mean over seeds, band = the seeds' range"));
    box.appendChild(s); box.appendChild(legend);
    return box;
  }

  function scatter(section) {
    var rows = sortedRows(section.rows).filter(visible).filter(function (r) { return r.metrics[board.main_score]; });
    var w = Math.max(300, 60 + rows.length * 34), h = 280, pad = 42;
    var s = svg("svg", {width: w, height: h, "class": "scatter", "data-fold": section.fold, "data-version": section.version});
    var all = [];
    rows.forEach(function (r) { var m = r.metrics[board.main_score].seeds; Object.keys(m).forEach(function (k) { all.push(m[k]); }); });
    var ymin = Math.max(0, Math.floor((Math.min.apply(null, all.concat([100])) - 5) / 10) * 10);
    var ymax = Math.min(100, Math.ceil((Math.max.apply(null, all.concat([0])) + 5) / 10) * 10);
    if (ymax <= ymin) ymax = ymin + 10;
    var x = function (i) { return pad + 20 + i * 34; };
    var y = function (v) { return h - pad - (v - ymin) / (ymax - ymin) * (h - pad - 10); };
    axes(s, w, h, pad, rows.length, "rows in table order", label(board.main_score) + " per seed (%)", ymin, ymax,
         rows.map(function (r, i) { return [x(i), r.rank === null ? "\u2014" : "#" + r.rank]; }));
    rows.forEach(function (r, i) {
      var m = r.metrics[board.main_score];
      Object.keys(m.seeds).forEach(function (k) {
        var dot = svg("circle", {cx: x(i), cy: y(m.seeds[k]), r: 3.5, fill: COLOURS[i % COLOURS.length], "class": "seed"});
        var tip = svg("title"); tip.textContent = r.model + " (" + r.config + ") seed " + k + ": " + fmt(m.seeds[k]);
        dot.appendChild(tip); s.appendChild(dot);
      });
      if (m.mean !== null) s.appendChild(svg("line", {x1: x(i) - 8, x2: x(i) + 8, y1: y(m.mean), y2: y(m.mean), stroke: "#222"}));
    });
    var box = el("div"); box.appendChild(el("div", {"class": "note"}, label(board.main_score) + " of every seed (dots) and the mean (bar)"));
    box.appendChild(s);
    return box;
  }

  var content = el("div", {id: "content"});
  function render() {
    content.textContent = "";
    board.sections.forEach(function (section) {
      var key = section.version + "/" + section.fold;
      if (!state.plot[key]) state.plot[key] = section.rows.map(function (r, i) { return [r, i]; })
        .filter(function (p) { return p[0].rank !== null && p[0].rank <= 3; }).map(function (p) { return p[1]; });
      content.appendChild(el("h2", {}, section.title));
      content.appendChild(table(section, key));
      if (board.paper_legend && section.rows.some(function (r) { return r.paper !== null && r.paper_marks; }))
        content.appendChild(el("p", {"class": "note paper-legend"}, "Paper: the published value (its source under " +
          "Published); its marks say what kind of number it is: " + board.paper_legend + "."));
      var plots = el("div", {"class": "plots"});
      plots.appendChild(cmcPlot(section, key));
      plots.appendChild(scatter(section));
      content.appendChild(plots);
    });
    setHash();
  }
  function start() {
    app.textContent = "";
    app.appendChild(el("p", {"class": "meta"}, board.mode + "; main score " + label(board.main_score) + " (" +
      (board.higher_is_better ? "higher" : "lower") + " is better). Values in percent, mean \u00b1 std over seeds; " +
      "hover a value for each seed. \u0394 #1: difference to the first row with a 95% paired-bootstrap interval; " +
      "'tied' when it contains 0."));
    app.appendChild(el("p", {"class": "note"}, "Seeds, before the rank: finished / expected; " +
      "\"protocol N\" (in orange) marks a row run with fewer seeds than the protocol's N, whose rank and ties rest on less."));
    if (board.reference_source) app.appendChild(el("p", {"class": "note"}, "Paper values: " + board.reference_source));
    if (state.unknownSort !== null) app.appendChild(el("p", {"class": "warning", id: "sort-warning"},
      "The address asks to sort by \"" + state.unknownSort + "\", which is not a column here; sorted by rank. " +
      "Use a column's key or its header text: " + Object.keys(SORTABLE).concat(board.metrics.map(label)).join(", ") + "."));
    app.appendChild(controls());
    app.appendChild(content);
    render();
  }
  readHash();
  start();
})();
