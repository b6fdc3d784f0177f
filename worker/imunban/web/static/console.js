// imunban console: the only script of the pages (CSP script-src 'self': no inline script, no handlers
// in attributes). It keeps the overview and the outcome tail live over server-sent events, draws the
// throughput chart with uPlot, and asks before destructive buttons. Data goes into the page with
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
    link.href = "/trace?" + query.toString();
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

  function renderHold(hold) {
    var banner = document.getElementById("hold-banner");
    if (banner) {
      banner.classList.toggle("hidden", !hold);
      if (hold) {
        banner.querySelector("[data-hold=code]").textContent = hold.code;
        banner.querySelector("[data-hold=info]").textContent = hold.info;
        banner.querySelector("[data-hold=since]").textContent = fmt.time(hold.since_ms);
        banner.querySelector("[data-hold=next]").textContent = fmt.time(hold.next_probe_ms);
      }
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

  function makeChart(el) {
    if (!window.uPlot) { return null; }
    var limit = Number(el.getAttribute("data-limit"));
    var opts = {
      width: el.clientWidth || 700,
      height: 300,
      series: [
        {},
        { label: "delivered/s", stroke: "#15803d", fill: "rgba(21,128,61,0.08)", width: 2, scale: "m" },
        { label: "calls/s", stroke: "#2563eb", width: 2, scale: "c" },
        { label: "limit", stroke: "#b91c1c", dash: [6, 4], width: 1, scale: "c" }
      ],
      scales: { m: { range: function (u, min, max) { return [0, Math.max(10, max * 1.1)]; } },
                c: { range: function () { return [0, limit * 1.15]; } } },
      axes: [{}, { scale: "m", label: "members/s" }, { scale: "c", side: 1, label: "calls/s", grid: { show: false } }]
    };
    var chart = new window.uPlot(opts, [[], [], [], []], el);
    window.addEventListener("resize", function () { chart.setSize({ width: el.clientWidth, height: 300 }); });
    return chart;
  }

  function startOverview(root) {
    var chartEl = document.getElementById("chart");
    var chart = null;
    var source = new EventSource(root.getAttribute("data-events"));
    source.addEventListener("overview", function (ev) {
      var doc = JSON.parse(ev.data);
      root.querySelectorAll("[data-k]").forEach(function (el) {
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
      root.querySelectorAll("[data-warn]").forEach(function (el) {
        el.classList.toggle("alert", Number(pick(doc, el.getAttribute("data-warn"))) > 0);
      });
      renderHold(doc.status.hold);
      renderState(doc.state, doc.banner);
      renderWorkers(doc.workers);
      if (!chart && chartEl) { chart = makeChart(chartEl); }
      if (chart) {
        var s = doc.series, limit = doc.rates.limit_per_s;
        chart.setData([s.t, s.delivered, s.calls, s.t.map(function () { return limit; })]);
      }
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
