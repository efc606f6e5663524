/* Cohort table: search, filter, sort and page the embedded cohort JSON (issue #11 item 3).
   Vanilla JavaScript, no library, nothing fetched: the page works offline as one file.
   Values are put into the page with textContent only (never as HTML). */
(function () {
  "use strict";
  var source = document.getElementById("cohort-data");
  var table = document.getElementById("cohort-table");
  if (!source || !table) { return; }
  var data = JSON.parse(source.textContent);
  var S = data.strings;
  var c = {};
  data.columns.forEach(function (name, i) { c[name] = i; });
  var tierRank = {};
  data.tiers.forEach(function (t, i) { tierRank[t] = i; });
  var pageSize = data.page_size;
  var withOpen = table.querySelector("th[data-sort=open_alerts]") !== null;
  function str(i) { return i === null ? null : S[i]; }
  var all = data.rows.map(function (r, i) {
    var words = [r[c.patient_id]].concat(r[c.alerts].map(str), r[c.alterations].map(str));
    return { r: r, rank: i, hay: words.join("\n").toLowerCase() };
  });
  /* sort keys: null sorts last in both directions; ties keep the default (urgency) order */
  var keys = {
    urgency: function (x) { return x.rank; },
    patient: function (x) { return x.r[c.patient_id]; },
    tier: function (x) { var t = x.r[c.status]; return t === null ? data.tiers.length : tierRank[t]; },
    last_draw: function (x) { return x.r[c.last_draw_date]; },
    next_due: function (x) { return x.r[c.next_draw_due]; },
    open_alerts: function (x) { return x.r[c.open_alerts]; }
  };
  var firstDir = { open_alerts: -1 };
  var state = { q: [], tier: "", team: "", key: "urgency", dir: 1, page: 0 };
  var view = all;

  function compare(a, b) {
    var f = keys[state.key];
    var x = f(a);
    var y = f(b);
    if (x !== y) {
      if (x === null || x === undefined) { return 1; }
      if (y === null || y === undefined) { return -1; }
      return (x < y ? -1 : 1) * state.dir;
    }
    return a.rank - b.rank;
  }
  function keep(x) {
    var r = x.r;
    if (state.tier === "OVERDUE" && r[c.days_overdue] === null) { return false; }
    if (state.tier === "NONE" && r[c.status] !== null) { return false; }
    if (state.tier && state.tier !== "OVERDUE" && state.tier !== "NONE" && r[c.status] !== state.tier) { return false; }
    if (state.team === "__none__" && r[c.care_team] !== null) { return false; }
    if (state.team && state.team !== "__none__" && str(r[c.care_team]) !== state.team) { return false; }
    for (var i = 0; i < state.q.length; i++) {
      if (x.hay.indexOf(state.q[i]) < 0) { return false; }
    }
    return true;
  }
  function node(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function cell(tr, cls) { var td = node("td", cls); tr.appendChild(td); return td; }
  function tierClass(t) { return "tier-" + (t === null ? "none" : t.toLowerCase().replace(/_/g, "-")); }
  function row(x) {
    var r = x.r;
    var overdue = r[c.days_overdue] !== null;
    var tr = node("tr", overdue ? "patient overdue" : "patient");
    tr.setAttribute("data-patient", r[c.patient_id]);
    var td = cell(tr, "mono");
    td.appendChild(document.createTextNode(r[c.patient_id]));
    if (r[c.care_team] !== null) {
      td.appendChild(node("br"));
      td.appendChild(node("span", "small muted", str(r[c.care_team])));
    }
    cell(tr).appendChild(node("span", "tier " + tierClass(r[c.status]), data.tier_words[String(r[c.status])]));
    td = cell(tr);
    if (r[c.therapy_drug] !== null) {
      var line = r[c.therapy_line] ? " (line " + r[c.therapy_line] + ")" : "";
      td.appendChild(document.createTextNode(str(r[c.therapy_drug]) + line));
      if (r[c.therapy_start]) {
        td.appendChild(node("br"));
        td.appendChild(node("span", "small muted", "since " + r[c.therapy_start]));
      }
    } else {
      td.appendChild(node("span", "muted", "none recorded"));
    }
    cell(tr, "date").textContent = r[c.last_draw_date] || "no draws";
    td = cell(tr, "date");
    td.appendChild(document.createTextNode(r[c.next_draw_due] || "not scheduled"));
    if (overdue) {
      td.appendChild(node("br"));
      td.appendChild(node("span", "badge badge-overdue", "OVERDUE by " + r[c.days_overdue] + " days"));
    }
    td = cell(tr);
    if (r[c.open_alerts]) {
      var badge = node("span", "badge badge-overdue", r[c.open_alerts] + " unacknowledged");
      badge.setAttribute("data-open-alerts", r[c.open_alerts]);
      td.appendChild(badge);
    }
    if (r[c.alerts].length) {
      var ul = node("ul", "items small");
      r[c.alerts].forEach(function (a) { ul.appendChild(node("li", null, str(a))); });
      td.appendChild(ul);
    } else {
      td.appendChild(node("span", "muted", "none"));
    }
    td = cell(tr, "small");
    if (r[c.alterations].length) {
      td.textContent = r[c.alterations].map(str).join(", ");
    } else {
      td.appendChild(node("span", "muted", "none"));
    }
    if (withOpen) { cell(tr, "num").textContent = r[c.open_alerts] === null ? "" : r[c.open_alerts]; }
    return tr;
  }
  var tbody = table.tBodies[0];
  var status = document.getElementById("cohort-status");
  var prev = document.getElementById("page-prev");
  var next = document.getElementById("page-next");
  var label = document.getElementById("page-label");
  function render() {
    var pages = Math.max(1, Math.ceil(view.length / pageSize));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * pageSize;
    var shown = view.slice(start, start + pageSize);
    var frag = document.createDocumentFragment();
    shown.forEach(function (x) { frag.appendChild(row(x)); });
    tbody.replaceChildren(frag);
    var filtered = view.length !== all.length ? " (filtered from " + all.length + ")" : "";
    status.textContent = view.length
      ? "Showing " + (start + 1) + "-" + (start + shown.length) + " of " + view.length + " patients" + filtered + "."
      : "No patient matches" + filtered + ".";
    label.textContent = "page " + (state.page + 1) + " of " + pages;
    prev.disabled = state.page === 0;
    next.disabled = state.page >= pages - 1;
    table.querySelectorAll("th[data-sort]").forEach(function (th) {
      var k = th.getAttribute("data-sort");
      if (k === state.key) { th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending"); }
      else { th.removeAttribute("aria-sort"); }
    });
  }
  function apply() {
    view = all.filter(keep);
    if (state.key !== "urgency") { view.sort(compare); }
    state.page = 0;
    render();
  }
  var timer = null;
  document.getElementById("search").addEventListener("input", function (ev) {
    var text = ev.target.value.toLowerCase().trim();
    clearTimeout(timer);
    timer = setTimeout(function () {
      state.q = text ? text.split(/\s+/) : [];
      apply();
    }, 120);
  });
  document.getElementById("filter-tier").addEventListener("change", function (ev) {
    state.tier = ev.target.value; apply();
  });
  document.getElementById("filter-team").addEventListener("change", function (ev) {
    state.team = ev.target.value; apply();
  });
  document.getElementById("sort-reset").addEventListener("click", function () {
    state.key = "urgency"; state.dir = 1; apply();
  });
  table.querySelectorAll("th[data-sort]").forEach(function (th) {
    th.tabIndex = 0;
    function sortBy() {
      var k = th.getAttribute("data-sort");
      if (state.key === k) { state.dir = -state.dir; }
      else { state.key = k; state.dir = firstDir[k] || 1; }
      apply();
    }
    th.addEventListener("click", sortBy);
    th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { sortBy(); } });
  });
  prev.addEventListener("click", function () { state.page -= 1; render(); });
  next.addEventListener("click", function () { state.page += 1; render(); });
  document.getElementById("cohort-controls").hidden = false;
  document.getElementById("cohort-pager").hidden = false;
  render();
}());
