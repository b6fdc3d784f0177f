// imunban console: the only script of the pages (CSP script-src 'self': no inline script, no handlers
// in attributes). It keeps the overview and the outcome tail live over server-sent events, draws the
// throughput charts with uPlot (their history read from the API), and asks before destructive buttons. Data goes into the page with
// textContent only, never as HTML.
(function () {
  "use strict";

  function pad(n) { return String(n).padStart(2, "0"); }

  var fmt = {
    num: function (v) { return v === null || v === undefined ? "-" : Number(v).toLocaleString("en-US"); },
    rate: function (v) { return v === null || v === undefined ? "-" : Number(v).toLocaleString("en-US", { maximumFractionDigits: 1 }); },
    pct: function (v) { return v === null || v === undefined ? "-" : Math.round(v * 100) + " %"; },
    time: function (v) {
      if (!v) { return "-"; }
      var d = new Date(Number(v));
      return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
        pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + "Z";
    },
    bytes: function (v) {
      if (v === null || v === undefined) { return "-"; }
      var n = Number(v), units = ["B", "KiB", "MiB", "GiB"], i = 0;
      while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
      return i === 0 ? n + " B" : n.toFixed(1) + " " + units[i];
    },
    maxbytes: function (v) { return Number(v) === 0 ? "no limit" : fmt.bytes(v); },
    span: function (v) {
      if (v === null || v === undefined) { return "-"; }
      var ms = Math.abs(Number(v));
      if (ms < 1000) { return ms + " ms"; }
      var s = ms / 1000;
      if (s < 60) { return s.toFixed(1) + " s"; }
      var rest = Math.floor(s), parts = [], units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
      units.forEach(function (u) {
        var amount = Math.floor(rest / u[1]);
        rest = rest % u[1];
        if (amount || parts.length) { parts.push(amount + u[0]); }
      });
      return parts.slice(0, 2).join(" ");
    }
  };

  function pick(obj, path) {
    return path.split(".").reduce(function (o, k) { return o === null || o === undefined ? undefined : o[k]; }, obj);
  }

  // -- confirmations and selection ---------------------------------------------------------------

  document.addEventListener("click", function (ev) {
    var button = ev.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) { ev.preventDefault(); }
  });
  document.addEventListener("change", function (ev) {
    // The header's app switcher: picking an app reloads this page for it (?app=NAME).
    if (ev.target.matches("select[data-autosubmit]")) { ev.target.form.submit(); return; }
    if (!ev.target.matches("[data-select-all]")) { return; }
    var form = ev.target.closest("form");
    form.querySelectorAll("input[type=checkbox][name=sel]").forEach(function (box) { box.checked = ev.target.checked; });
  });

  // An htmx request the console refused (a bad filter or lookup: 400 with the message as text):
  // show the message above the page, as text, instead of leaving the old result in place silently.
  document.addEventListener("htmx:responseError", function (ev) {
    var box = document.getElementById("request-error"), xhr = ev.detail.xhr;
    if (!box || !xhr) { return; }
    var type = xhr.getResponseHeader("content-type") || "";
    box.textContent = type.indexOf("text/plain") === 0 ? xhr.responseText : "request failed (" + xhr.status + ")";
    box.classList.remove("hidden");
  });
  document.addEventListener("htmx:beforeRequest", function () {
    var box = document.getElementById("request-error");
    if (box) { box.classList.add("hidden"); }
  });

  // -- overview ----------------------------------------------------------------------------------

  function td(text, cls) {
    var cell = document.createElement("td");
    cell.textContent = text;
    if (cls) { cell.className = cls; }
    return cell;
  }

  // A cell linking to the trace of request (group, member) of this page's app.
  function traceCell(group, member) {
    var cell = td("", "mono"), link = document.createElement("a");
    var query = new URLSearchParams({group_id: group, member: member, app: document.body.getAttribute("data-app")});
    link.href = root() + "/trace?" + query.toString();
    link.textContent = member;
    cell.appendChild(link);
    return cell;
  }

  function pill(text, cls) {
    var span = document.createElement("span");
    span.className = "pill " + cls;
    span.textContent = text;
    return span;
  }

  // The console's path prefix behind a reverse proxy ("" at the root): every URL the script builds starts with it.
  function root() { return document.body.getAttribute("data-root") || ""; }

  function renderHold(hold, hint) {
    var banner = document.getElementById("hold-banner");
    if (banner) {
      banner.classList.toggle("hidden", !hold);
      if (hold) {
        banner.querySelector("[data-hold=code]").textContent = hold.code;
        banner.querySelector("[data-hold=info]").textContent = hold.info;
        banner.querySelector("[data-hold=since]").textContent = fmt.time(hold.since_ms);
        banner.querySelector("[data-hold=next]").textContent = fmt.time(hold.next_probe_ms);
      }
      var hintEl = banner.querySelector("[data-hold=hint]"), link = banner.querySelector("[data-hold=runbook]");
      if (hintEl) { hintEl.textContent = hint ? hint.action : ""; }
      if (link) { link.setAttribute("href", root() + "/runbook" + (hint ? "#" + hint.anchor : "")); }
    }
    var box = document.getElementById("hold-box");
    if (!box) { return; }
    box.replaceChildren();
    var p = document.createElement("p");
    if (!hold) {
      p.className = "ok-text";
      p.textContent = "No hold.";
      box.appendChild(p);
      return;
    }
    p.className = "hold-text";
    p.textContent = "Held by ErrorCode " + hold.code;
    var info = document.createElement("p");
    info.textContent = hold.info;
    var dl = document.createElement("dl");
    [["since", fmt.time(hold.since_ms)], ["next probe", fmt.time(hold.next_probe_ms)], ["probes", String(hold.probes)],
     ["probe allowed from", hold.probe_allowed_ms ? fmt.time(hold.probe_allowed_ms) : "any time"]]
      .forEach(function (kv) {
        var dt = document.createElement("dt"), dd = document.createElement("dd");
        dt.textContent = kv[0];
        dd.textContent = kv[1];
        dl.append(dt, dd);
      });
    box.append(p, info, dl);
    if (hint) {
      var todo = document.createElement("p"), a = document.createElement("a");
      todo.className = "hint";
      todo.textContent = "What to do: " + hint.action + " ";
      a.setAttribute("href", root() + "/runbook#" + hint.anchor);
      a.textContent = "runbook";
      todo.appendChild(a);
      box.appendChild(todo);
    }
  }

  // The app's state (imunban.state): the pill and its reason, and the banner of a paused, stalled or full app.
  function renderState(state, banner) {
    var pillEl = document.getElementById("state-pill");
    if (pillEl && state) {
      pillEl.textContent = state.state.toUpperCase();
      pillEl.className = "pill state-" + state.state;
    }
    var reason = document.getElementById("state-reason");
    if (reason && state) { reason.textContent = state.reason; }
    var el = document.getElementById("state-banner");
    if (!el) { return; }
    el.className = "state-banner" + (banner ? " state-" + banner.kind : " hidden");
    el.querySelector("[data-banner=title]").textContent = banner ? banner.title : "";
    el.querySelector("[data-banner=text]").textContent = banner ? banner.text : "";
    el.querySelector("[data-banner=hint]").textContent = banner ? banner.hint : "";
    el.querySelector("[data-banner=runbook]").setAttribute("href", root() + "/runbook" + (banner ? "#" + banner.anchor : ""));
    var resume = document.getElementById("banner-resume");
    if (resume) { resume.classList.toggle("hidden", !banner || banner.kind !== "paused"); }
  }

  function renderWorkers(workers) {
    var body = document.querySelector("#workers tbody");
    if (!body) { return; }
    body.replaceChildren();
    if (!workers.length) {
      var row = document.createElement("tr"), cell = td("No worker has ticked in the last hour.", "muted");
      cell.colSpan = 3;
      row.appendChild(cell);
      body.appendChild(row);
      return;
    }
    workers.forEach(function (w) {
      var row = document.createElement("tr"), state = document.createElement("td");
      state.appendChild(pill(w.alive ? "alive" : "silent", w.alive ? "ok" : "held"));
      row.append(td(w.worker, "mono"), td(fmt.span(w.age_ms) + " ago"), state);
      body.appendChild(row);
    });
  }

  // Time axis labels: ISO 8601 in UTC, "HH:MM" with the date on the first tick and at midnight; ticks at least
  // 90 px apart so they never overlap.
  function isoTicks(u, splits) {
    var lastDay = null;
    return splits.map(function (t) {
      var d = new Date(t * 1000), day = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
      var hm = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
      var label = day !== lastDay ? hm + "\n" + day : hm;
      lastDay = day;
      return label;
    });
  }

  // One panel: members/s, or calls/s with the limit as a dashed line on the same (calls/s) scale.
  function makeChart(el, label, color, limit) {
    if (!window.uPlot) { return null; }
    var series = [{}, { label: label, stroke: color, fill: color === "#15803d" ? "rgba(21,128,61,0.08)" : "rgba(37,99,235,0.08)", width: 2 }];
    if (limit) { series.push({ label: "limit " + limit + " calls/s", stroke: "#b91c1c", dash: [6, 4], width: 1 }); }
    var opts = {
      width: el.clientWidth || 700,
      height: 200,
      tzDate: function (ts) { return window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      series: series,
      scales: { x: { time: true }, y: { range: function (u, min, max) {
        return [0, Math.max(limit ? limit * 1.15 : 10, (max || 0) * 1.1)];
      } } },
      axes: [{ space: 90, values: isoTicks, size: 44 }, { label: label, size: 60 }]
    };
    var chart = new window.uPlot(opts, series.map(function () { return []; }), el);
    window.addEventListener("resize", function () { chart.setSize({ width: el.clientWidth, height: 200 }); });
    return chart;
  }

  // The history lives in Redis (GET api/throughput): read on load and every 30 s, not with every live update.
  function startCharts(el) {
    var callsEl = document.getElementById("chart-calls"), charts = null;
    function load() {
      fetch(el.getAttribute("data-history"), { credentials: "same-origin", headers: { "accept": "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (doc) {
          if (!doc) { return; }
          if (!charts) {
            charts = [makeChart(el, "members/s", "#15803d", 0), callsEl && makeChart(callsEl, "calls/s", "#2563eb", doc.limit_per_s)];
          }
          if (charts[0]) { charts[0].setData([doc.t, doc.delivered]); }
          if (charts[1]) { charts[1].setData([doc.t, doc.calls, doc.t.map(function () { return doc.limit_per_s; })]); }
        })
        .catch(function () { /* the next load tries again; the live cards say whether Redis answers */ });
    }
    load();
    window.setInterval(load, 30000);
  }

  function startOverview(section) {
    var chartEl = document.getElementById("chart");
    if (chartEl) { startCharts(chartEl); }
    var source = new EventSource(section.getAttribute("data-events"));
    source.addEventListener("overview", function (ev) {
      var doc = JSON.parse(ev.data);
      section.querySelectorAll("[data-k]").forEach(function (el) {
        var value = pick(doc, el.getAttribute("data-k"));
        var kind = el.getAttribute("data-f");
        if (kind === "bar") {
          var used = Math.min(1, Number(value || 0));
          el.style.width = (used * 100).toFixed(1) + "%";
          el.classList.toggle("high", used > 0.9);
          return;
        }
        var target = el.querySelector("a") || el;
        target.textContent = (fmt[kind] || String)(value);
      });
      section.querySelectorAll("[data-warn]").forEach(function (el) {
        el.classList.toggle("alert", Number(pick(doc, el.getAttribute("data-warn"))) > 0);
      });
      renderHold(doc.status.hold, doc.hold_hint);
      renderState(doc.state, doc.banner);
      renderWorkers(doc.workers);
    });
    window.addEventListener("beforeunload", function () { source.close(); });
  }

  // -- outcome tail ------------------------------------------------------------------------------

  function startOutcomes(table) {
    var body = table.querySelector("tbody");
    var source = new EventSource(table.getAttribute("data-events"));
    source.addEventListener("outcomes", function (ev) {
      var entries = JSON.parse(ev.data);
      if (!entries.length) { return; }
      var empty = body.querySelector("tr.empty");
      if (empty) { empty.remove(); }
      entries.forEach(function (e) {
        var row = document.createElement("tr"), outcome = document.createElement("td");
        outcome.appendChild(pill(e.outcome, "out-" + e.outcome));
        row.append(td(fmt.time(e.at_ms)), outcome);
        if (e.outcome === "audit") {
          var who = td(e.role + " · " + e.action + " × " + e.count);
          who.colSpan = 2;
          row.appendChild(who);
        } else {
          row.append(td(e.group_id, "mono"), traceCell(e.group_id, e.member));
        }
        row.append(td(e.code), td(e.info, "info"), td(e.attempts, "num"));
        body.insertBefore(row, body.firstChild);
      });
      while (body.rows.length > 500) { body.deleteRow(body.rows.length - 1); }
    });
    window.addEventListener("beforeunload", function () { source.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var overview = document.getElementById("overview");
    if (overview) { startOverview(overview); }
    var tail = document.getElementById("outcomes-tail");
    if (tail) { startOutcomes(tail); }
  });
})();
