// kascan HTML report: the page's only script (allowed by its hash in the CSP).
// It reads the JSON block and builds the tables with textContent only (never innerHTML).
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("kascan-data").textContent);
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "text") e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function text(s) { return document.createTextNode(s == null ? "" : String(s)); }
  function loc(l) { return (l.repo ? l.repo + ":" : "") + l.path + ":" + l.line + ":" + l.column; }
  function commitText(c) {
    if (!c) return "";
    return c.date + "  " + c.sha.slice(0, 12) + "  " + c.author + (c.email ? " <" + c.email + ">" : "");
  }

  // the per-key table
  var body = document.querySelector("#keys tbody");
  data.keys.forEach(function (k) {
    var first = k.first;
    var others = k.locations.filter(function (l) { return !first || loc(l) !== loc(first); });
    var where = el("ul", {"class": "where"});
    others.slice(0, 5).forEach(function (l) { where.appendChild(el("li", {"class": "mono", text: loc(l)})); });
    var whereCell = el("td", {"data-sort": String(others.length)}, [where]);
    if (others.length > 5) {
      var more = el("ul", {"class": "where"});
      others.slice(5).forEach(function (l) { more.appendChild(el("li", {"class": "mono", text: loc(l)})); });
      whereCell.appendChild(el("details", null, [el("summary", {text: (others.length - 5) + " more"}), more]));
    }
    if (!others.length) where.appendChild(el("li", {"class": "muted", text: "nowhere else"}));
    var firstCell = el("td", {"data-sort": first && first.commit ? first.commit.date : (first ? "" : "~")});
    if (first) {
      firstCell.appendChild(el("div", {"class": "mono", text: loc(first)}));
      if (first.commit) firstCell.appendChild(el("div", {"class": "muted mono", text: commitText(first.commit)}));
    }
    var status = el("span", {"class": "status " + k.status, text: k.status});
    var row = el("tr", {"data-status": k.status}, [
      el("td", {"data-sort": String(k.rank)}, [status, k.organization ? el("div", {"class": "muted", text: k.organization}) : null]),
      el("td", {"class": "mono", "data-sort": k.key}, [text(k.key), el("div", {"class": "muted", text: k.fingerprint.slice(0, 19) + "\u2026"})]),
      el("td", {"data-sort": k.repos.join(" ")}, [text(k.repos.length ? k.repos.join(", ") : "\u2014")]),
      firstCell,
      whereCell,
      el("td", {"class": "num", "data-sort": String(k.locations.length), text: String(k.locations.length)})
    ]);
    row.setAttribute("data-text", [k.status, k.key, k.fingerprint, k.organization || ""].concat(
      k.repos, k.locations.map(loc), first && first.commit ? [commitText(first.commit)] : []).join("\n").toLowerCase());
    body.appendChild(row);
  });

  // filtering: free text and status
  var search = document.getElementById("filter"), statusSel = document.getElementById("status");
  var shownCount = document.getElementById("shown");
  function applyFilter() {
    var q = search.value.trim().toLowerCase(), st = statusSel.value, n = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      var ok = (!q || r.getAttribute("data-text").indexOf(q) !== -1) && (!st || r.getAttribute("data-status") === st);
      r.hidden = !ok; if (ok) n++;
    });
    shownCount.textContent = n + " of " + body.rows.length + " keys shown";
  }
  search.addEventListener("input", applyFilter);
  statusSel.addEventListener("change", applyFilter);

  // sorting: click a column heading (again to reverse)
  function sortable(table) {
    var heads = table.querySelectorAll("th");
    Array.prototype.forEach.call(heads, function (th, i) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var tb = table.tBodies[0], rows = Array.prototype.slice.call(tb.rows);
        var numeric = th.classList.contains("num") || th.hasAttribute("data-numeric");
        rows.sort(function (a, b) {
          var x = a.cells[i].getAttribute("data-sort"), y = b.cells[i].getAttribute("data-sort");
          if (x == null) x = a.cells[i].textContent; if (y == null) y = b.cells[i].textContent;
          var c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
          return asc ? c : -c;
        });
        rows.forEach(function (r) { tb.appendChild(r); });
      });
    });
  }

  // counts per repository
  var rbody = document.querySelector("#repos tbody");
  data.repos.forEach(function (r) {
    rbody.appendChild(el("tr", null, [
      el("td", {"class": "mono", text: r.repo || "(this scan)"}),
      el("td", {"class": "num", "data-sort": String(r.keys), text: String(r.keys)}),
      el("td", {"class": "num", "data-sort": String(r.live), text: String(r.live)}),
      el("td", {"class": "num", "data-sort": String(r.findings), text: String(r.findings)}),
      el("td", {"class": "num", "data-sort": String(r.commits), text: r.commits ? String(r.commits) : "\u2014"}),
      el("td", {text: r.status + (r.error ? ": " + r.error : "")})
    ]));
  });
  sortable(document.getElementById("keys"));
  sortable(document.getElementById("repos"));

  // timeline: keys introduced per month, then the introductions in order
  var intros = data.intros, tl = document.getElementById("timeline");
  if (!intros.length) {
    tl.appendChild(el("p", {"class": "muted", text: "No commit dates: this was not a scan of git history."}));
  } else {
    var months = {}, order = [];
    intros.forEach(function (x) {
      var m = x.date.slice(0, 7);
      if (!(m in months)) { months[m] = 0; order.push(m); }
      months[m]++;
    });
    order.sort();
    var all = [], y0 = Number(order[0].slice(0, 4)), m0 = Number(order[0].slice(5, 7));
    var last = order[order.length - 1];
    for (var y = y0, m = m0; all.length < 600; ) {
      var key = y + "-" + (m < 10 ? "0" : "") + m;
      all.push(key);
      if (key >= last) break;
      m++; if (m > 12) { m = 1; y++; }
    }
    var max = Math.max.apply(null, order.map(function (k) { return months[k]; }));
    var ns = "http://www.w3.org/2000/svg", bw = Math.max(6, Math.min(40, Math.floor(1100 / all.length))), h = 120;
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", String(all.length * bw + 40)); svg.setAttribute("height", String(h + 40));
    svg.setAttribute("role", "img"); svg.setAttribute("aria-label", "keys introduced per month");
    all.forEach(function (k, i) {
      var n = months[k] || 0, bh = n ? Math.max(2, Math.round(n / max * h)) : 0;
      var r = document.createElementNS(ns, "rect");
      r.setAttribute("class", "bar"); r.setAttribute("x", String(20 + i * bw)); r.setAttribute("y", String(16 + h - bh));
      r.setAttribute("width", String(bw - 2)); r.setAttribute("height", String(bh));
      var t = document.createElementNS(ns, "title"); t.textContent = k + ": " + n + (n === 1 ? " key" : " keys");
      r.appendChild(t); svg.appendChild(r);
      if (n) {
        var count = document.createElementNS(ns, "text");
        count.setAttribute("x", String(20 + i * bw + (bw - 2) / 2)); count.setAttribute("y", String(12 + h - bh));
        count.setAttribute("text-anchor", "middle"); count.textContent = String(n);
        svg.appendChild(count);
      }
      var room = Math.ceil(52 / bw);  // a label is ~50 px wide
      if (i === 0 || i === all.length - 1 || (k.slice(5) === "01" && i >= room && all.length - 1 - i >= room)) {
        var lab = document.createElementNS(ns, "text");
        lab.setAttribute("x", String(20 + i * bw)); lab.setAttribute("y", String(h + 32)); lab.textContent = k;
        svg.appendChild(lab);
      }
    });
    var axis = document.createElementNS(ns, "line");
    axis.setAttribute("x1", "18"); axis.setAttribute("x2", String(20 + all.length * bw));
    axis.setAttribute("y1", String(h + 16.5)); axis.setAttribute("y2", String(h + 16.5));
    axis.setAttribute("class", "axis");
    svg.appendChild(axis);
    tl.appendChild(svg);
    var list = el("table", {id: "intro-list"}, [el("thead", null, [el("tr", null, [
      el("th", {text: "Date"}), el("th", {text: "Key"}), el("th", {text: "Where"}), el("th", {text: "Commit"})])]),
      el("tbody")]);
    intros.forEach(function (x) {
      list.tBodies[0].appendChild(el("tr", null, [
        el("td", {"class": "mono nowrap", "data-sort": x.date, text: x.date.slice(0, 10)}),
        el("td", {"class": "mono", text: x.key}),
        el("td", {"class": "mono", text: loc(x)}), el("td", {"class": "mono", text: commitText(x.commit)})]));
    });
    tl.appendChild(list);
    sortable(list);
  }
  applyFilter();
  document.body.setAttribute("data-rendered", String(data.keys.length));
})();
