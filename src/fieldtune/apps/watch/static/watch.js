/* fieldtune watch: draws the trend charts (vendored uPlot) and sends corrections. No build step. */
(function () {
  "use strict";

  var ROOT = document.body.dataset.root || "";
  var COLORS = {
    bars: "rgba(84, 110, 145, 0.30)",
    barsStroke: "rgba(84, 110, 145, 0.65)",
    negative: "#b3261e",
    net: "#1b7a56",
    alert: "#b3261e",
    shade: "rgba(179, 38, 30, 0.10)"
  };
  var HEIGHT = 190;

  function utc(ts) {
    return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  }

  var stamp = uPlot.fmtDate("{YYYY}-{MM}-{DD} {HH}:{mm}");

  var hourMinute = uPlot.fmtDate("{HH}:{mm}");
  var monthDay = uPlot.fmtDate("{MMM} {D}");

  // 24-hour UTC ticks; the date under the first tick of each day (a risk desk reads 16:00, not 4pm)
  function timeLabels(u, splits, axisIdx, space, incr) {
    var lastDay = null;
    return splits.map(function (ts) {
      var d = utc(ts);
      var day = monthDay(d);
      if (incr >= 86400) return day;
      var label = hourMinute(d) + (day !== lastDay ? "\n" + day : "");
      lastDay = day;
      return label;
    });
  }

  function percent(u, v) {
    return v == null ? "–" : Math.round(v * 100) + "%";
  }

  function fixed(u, v) {
    return v == null ? "–" : v.toFixed(2);
  }

  // Alert buckets: a dashed red line in the middle of the bucket; the page's own alert shaded.
  function markers(alertX, bucket, highlight) {
    function shade(u) {
      if (highlight == null) return;
      var x0 = u.valToPos(highlight, "x", true);
      var x1 = u.valToPos(highlight + bucket, "x", true);
      u.ctx.save();
      u.ctx.fillStyle = COLORS.shade;
      u.ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
      u.ctx.restore();
    }
    function lines(u) {
      var ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = COLORS.alert;
      ctx.fillStyle = COLORS.alert;
      ctx.lineWidth = Math.max(1, devicePixelRatio);
      ctx.setLineDash([5 * devicePixelRatio, 4 * devicePixelRatio]);
      alertX.forEach(function (x) {
        var px = Math.round(u.valToPos(x + bucket / 2, "x", true));
        ctx.beginPath();
        ctx.moveTo(px, u.bbox.top);
        ctx.lineTo(px, u.bbox.top + u.bbox.height);
        ctx.stroke();
        var s = 5 * devicePixelRatio;  // a small flag on top, visible at any zoom
        ctx.beginPath();
        ctx.moveTo(px - s, u.bbox.top);
        ctx.lineTo(px + s, u.bbox.top);
        ctx.lineTo(px, u.bbox.top + s * 1.4);
        ctx.closePath();
        ctx.fill();
      });
      ctx.restore();
    }
    return {hooks: {drawClear: [shade], draw: [lines]}};
  }

  function makeChart(el, c, bucket, highlight) {
    var half = bucket / 2;
    // x = the middle of each bucket, so bars (centred) and lines share one position
    var x = c.x.map(function (t) { return t + half; });
    var opts = {
      width: Math.max(320, el.clientWidth),
      height: HEIGHT,
      tzDate: utc,
      cursor: {drag: {x: true, y: false}},
      legend: {live: true},
      scales: {
        x: {time: true, range: function (u, min, max) { return [min - half, max + half]; }},
        n: {range: function (u, min, max) { return [0, Math.max(4, max * 1.15)]; }},
        share: {range: [-1, 1]}
      },
      series: [
        {label: "bucket", value: function (u, ts) { return ts == null ? "–" : stamp(utc(ts - half)); }},
        {label: "stories", scale: "n", fill: COLORS.bars, stroke: COLORS.barsStroke, width: 1,
          value: function (u, v) { return v == null ? "–" : String(v); },
          paths: uPlot.paths.bars({size: [0.85, 60], align: 0}), points: {show: false}},
        {label: "negative share", scale: "share", stroke: COLORS.negative, width: 2, spanGaps: true,
          value: percent, points: {size: 4, fill: COLORS.negative}},
        {label: "net sentiment", scale: "share", stroke: COLORS.net, width: 1.5, dash: [6, 4], spanGaps: true,
          value: fixed, points: {size: 3, fill: COLORS.net}}
      ],
      axes: [
        {stroke: "#556", grid: {stroke: "#eef0f3"}, values: timeLabels, space: 60},
        {scale: "n", label: "stories", stroke: "#556", size: 52, grid: {stroke: "#eef0f3"}},
        {scale: "share", side: 1, label: "share · net", stroke: "#556", size: 52, grid: {show: false},
          values: function (u, vals) { return vals.map(function (v) { return v.toFixed(1); }); }}
      ],
      plugins: [markers(c.alert_x, bucket, highlight)]
    };
    var chart = new uPlot(opts, [x, c.volumes, c.neg_share_series, c.net_series], el);
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        var w = Math.max(320, el.clientWidth);
        if (w !== chart.width) chart.setSize({width: w, height: HEIGHT});
      }).observe(el);
    }
    return chart;
  }

  function drawCharts() {
    var node = document.getElementById("chart-data");
    if (!node) return;
    var data = JSON.parse(node.textContent);
    document.querySelectorAll(".chart[data-chart-index]").forEach(function (el) {
      var c = data.charts[Number(el.dataset.chartIndex)];
      if (c) makeChart(el, c, data.bucket, data.highlight);
    });
  }

  function postJSON(path, body) {
    return fetch(ROOT + path, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) throw new Error((data.error && data.error.message) || "HTTP " + r.status);
        return data;
      });
    });
  }

  function show(status, text, ok) {
    status.textContent = text;
    status.className = "status " + (ok ? "ok" : "bad");
  }

  function wireCorrections() {
    document.querySelectorAll("form.correction").forEach(function (form) {
      var topicsChanged = false;  // send topics only when the analyst touched them
      form.querySelectorAll("input[name=topics]").forEach(function (box) {
        box.addEventListener("change", function () { topicsChanged = true; });
      });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var status = form.querySelector(".status");
        var body = {item_id: form.dataset.itemId, sentiment: form.elements.sentiment.value};
        if (topicsChanged) {
          body.topics = Array.prototype.map.call(form.querySelectorAll("input[name=topics]:checked"),
            function (box) { return box.value; });
        }
        show(status, "saving…", true);
        postJSON("/v1/watch/feedback", body)
          .then(function () { show(status, "saved", true); })
          .catch(function (e) { show(status, e.message, false); });
      });
    });
  }

  function wireBaseline() {
    document.querySelectorAll(".baseline-button").forEach(function (button) {
      button.addEventListener("click", function () {
        var status = button.parentNode.querySelector(".status");
        postJSON("/v1/watch/baseline", {kind: button.dataset.kind, key: button.dataset.key})
          .then(function (r) { show(status, "baseline accepted from " + r.since.slice(0, 16).replace("T", " "), true); })
          .catch(function (e) { show(status, e.message, false); });
      });
    });
  }

  drawCharts();
  wireCorrections();
  wireBaseline();
})();
