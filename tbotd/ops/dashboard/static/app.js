// tbotd dashboard: reads the daemon's JSON API, draws it, and polls a tiny version endpoint
// every 2 s; when the version moves (a cycle, an event), it reads everything again.
// Every value from the daemon goes into the page as text (never as HTML).
"use strict";

const LW = window.LightweightCharts;
const POLL_MS = 2000;
const SPANS = ["1d", "1w", "1m", "1y"];
const PROVENANCE_COLOURS = {
  classic_only: "#8fa1b3", ml_confirmed: "#4caf50", boosted: "#26a69a", reduced: "#ff9800",
  vetoed: "#ef5350", replaced: "#ab47bc", blended: "#29b6f6", ml_abstained: "#9e9e9e",
};
const EXIT_TEXT = { stop_loss: "SL", take_profit: "TP", decision: "" };
const state = { version: null, symbol: null, span: "1d", chart: null, equity: null };

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v; else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path) {
  const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) { location.href = "/login"; throw new Error("signed out"); }
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

const isMissing = (v) => v !== null && typeof v === "object" && "missing" in v;
function show(v, fmt) {
  if (isMissing(v)) return h("span", { class: "na", title: v.why, "data-why": v.why }, "not available");
  if (v === null || v === undefined) return h("span", { class: "na" }, "—");
  return fmt ? fmt(v) : String(v);
}
const pct = (x) => `${(100 * Number(x)).toFixed(1)} %`;
const time = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 16);
const num = (x, d = 2) => Number(x).toLocaleString(undefined, { maximumFractionDigits: d });
const replace = (id, ...nodes) => document.getElementById(id).replaceChildren(...nodes);
const dl = (pairs) => h("dl", {}, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));

function mlCard(symbol, c) {
  const pred = isMissing(c.prediction) ? null : c;
  const dir = pred ? c.direction : null;
  const regime = pred && !isMissing(c.regime)
    ? Object.entries(c.regime).map(([k, p]) => `${k} ${pct(p)}`).join(" · ") : c.regime;
  const d = c.decision && !isMissing(c.decision) ? c.decision : null;
  return h("article", { class: "card", "data-symbol": symbol, "data-candle": pred ? c.candle_time : "" },
    h("h3", {}, symbol, dir ? h("span", { class: `tag ${dir}`, "data-field": "direction" }, dir) : null),
    pred ? h("div", { class: "big", "data-field": "confidence", "data-value": c.confidence },
      pct(c.confidence)) : show(c.prediction),
    dl([
      ["candle", pred ? time(c.candle_time) : "—"],
      ["source", pred ? `${c.source}${c.latency_ms != null ? ` · ${num(c.latency_ms, 1)} ms` : ""}` : "—"],
      ["model", pred ? c.model_version : "—"],
      ["model age", show(pred ? c.model_age_h : null, (x) => `${x} h`)],
      ["expiry", show(c.expiry)],
      ["sd", show(pred ? c.sd : null, (x) => pct(x))],
      ["regime", show(regime)],
      ["votes", show(c.votes)],
      ["consensus", show(c.consensus)],
      ["accuracy", show(c.rolling_accuracy)],
      ["baseline", show(c.baseline_accuracy)],
      ["calibration", show(c.calibration)],
      ["drift", show(c.drift)],
      ["decision", d ? `${d.strategy ?? "?"} · ${d.provenance ?? "no enhancement"} → ${d.result ? d.result.direction : "?"}` : show(c.decision)],
      ["ML abstained", c.abstained_because ? c.abstained_because.join(", ") : "no"],
    ]),
    whyMissing(c));
}

function whyMissing(c) { // each distinct reason once, under the card
  const why = [...new Set(Object.values(c).filter(isMissing).map((v) => v.why))];
  return why.length ? h("p", { class: "note" }, `Not available: ${why.join("; ")}.`) : null;
}

function positionCard(p) {
  return h("article", { class: "card", "data-symbol": p.symbol },
    h("h3", {}, p.symbol, h("span", { class: `tag ${p.side}` }, p.side),
      h("span", { class: `tag ${p.protection}`, "data-field": "protection" }, `protection: ${p.protection}`)),
    dl([
      ["qty", p.qty], ["entry", p.entry_price], ["stop-loss", p.stop_loss ?? "—"],
      ["take-profit", p.take_profit ?? "—"], ["liquidation", p.liquidation_price ?? "—"],
      ["opened", time(p.opened_at)],
      ["problems", p.problems.length ? p.problems.join("; ") : "none"],
      ["entries", p.entries_refused ? `refused: ${p.entries_refused}` : "allowed"],
    ]));
}

function table(columns, rows) {
  return h("table", {}, h("thead", {}, h("tr", {}, columns.map(([name]) => h("th", {}, name)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map(([, get, cls]) =>
      h("td", cls ? { class: cls } : {}, get(r)))))));
}

function renderOverview(o) {
  replace("instance", o.instance);
  replace("mode", o.mode);
  replace("strategy", o.strategy);
  const hl = o.health;
  replace("health", h("span", { class: `tag ${hl.ready ? "ok" : "bad"}`, "data-field": "ready" },
    hl.ready ? "ready" : `not ready: ${hl.reason}`),
    h("span", { "data-cycles": hl.cycles }, ` cycles ${hl.cycles}`), hl.last_cycle ? ` · last ${hl.last_cycle.candle_time.slice(0, 16)}` : "",
    hl.decision_ms != null ? ` · decided in ${num(hl.decision_ms, 0)} ms` : "");
  const cards = o.cards || {};
  replace("cards", ...o.symbols.map((s) => mlCard(s, cards[s] || { prediction: null })));
  const positions = o.positions || [];
  replace("positions", ...(positions.length ? positions.map(positionCard)
    : [h("p", { class: "note", id: "no-positions" }, "No open positions.")]));
  replace("orders", (o.orders || []).length ? table([
    ["symbol", (r) => r.symbol], ["role", (r) => r.role], ["type", (r) => r.type],
    ["side", (r) => r.side], ["qty", (r) => r.qty], ["trigger", (r) => r.trigger_price ?? "—"],
    ["state", (r) => r.state]], o.orders) : h("p", { class: "note" }, "No open orders."));
  const rec = o.last_reconciliation_event;
  const when = hl.last_reconciled ? `Last reconciled with the exchange: ${hl.last_reconciled.slice(0, 16).replace("T", " ")}. ` : "";
  replace("reconciled", when + (rec ? `Last difference: ${time(rec.time)} ${rec.kind} ${rec.symbol ?? ""} — ${rec.message}`
    : "No reconciliation difference recorded."));
  const p = o.predictor || {};
  replace("daemon", dl([
    ["ready", hl.ready ? "yes" : `no — ${hl.reason}`], ["cycles", hl.cycles],
    ["last cycle", hl.last_cycle ? hl.last_cycle.candle_time : "—"],
    ["decision latency", hl.decision_ms != null ? `${num(hl.decision_ms, 1)} ms` : "—"],
    ["database", hl.database_unwritable ? `cannot be written: ${hl.database_unwritable}` : "writable"],
    ["remote ML", p.remote ? `${p.remote.url} (${p.remote.breaker})` : "none configured"],
    ["local ML", p.local && p.local.length ? p.local.join(", ") : (p.local_unavailable || "none")],
    ["risk guard", h("span", { id: "risk-guard" }, riskGuard(o.risk_guard || {}))],
    ["equity", o.equity ? `${o.equity.equity} ${o.equity.currency}` : "—"],
  ]));
  const select = document.getElementById("symbol");
  if (select.options.length !== o.symbols.length) {
    select.replaceChildren(...o.symbols.map((s) => h("option", { value: s }, s)));
    state.symbol = state.symbol || o.symbols[0];
    select.value = state.symbol;
  }
}

function riskGuard(r) {
  // What stops new entries now (a halt, tripped rules), and an operator's command not yet applied.
  if (r.unavailable) return `not available — ${r.unavailable}`;
  const parts = [];
  if (r.halted) parts.push(`HALTED (halt #${r.halt.seq}${r.halt.flatten ? ", flatten" : ""}): no new entries until tbotd resume`);
  for (const t of r.trips || []) {
    parts.push(`tripped: ${t.rule}${t.symbol ? ` on ${t.symbol}` : ""} since ${t.since.slice(0, 16).replace("T", " ")}` +
      (t.until ? ` until ${t.until.slice(0, 16).replace("T", " ")}` : " until tbotd resume") + (t.detail ? ` (${t.detail})` : ""));
  }
  if (r.flatten) {
    const f = r.flatten, open = f.open || [];
    parts.push(`FLATTEN PENDING (asked by ${f.by}): ` + (f.tries
      ? `${open.length} position(s) open after ${f.tries} close(s) (${open.join(", ")}), asked again at every close`
      : "closing every position at the next candle close"));
  }
  if (r.pending) parts.push(`${r.pending.command} #${r.pending.seq} pending: applied at the next candle close`);
  return parts.length ? parts.join("; ") : "armed: nothing stops new entries";
}

function makeChart(id) {
  return LW.createChart(document.getElementById(id), {
    autoSize: true,
    layout: { background: { color: "#161c24" }, textColor: "#d8dee9" },
    grid: { vertLines: { color: "#202833" }, horzLines: { color: "#202833" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
}

function ensureCandleChart() {
  if (state.chart) return state.chart;
  const chart = makeChart("chart");
  const candles = chart.addSeries(LW.CandlestickSeries, {});
  const band = { lineWidth: 1, lineStyle: 2, color: "#7e57c2", priceLineVisible: false, lastValueVisible: false };
  state.chart = {
    chart, candles, markers: LW.createSeriesMarkers(candles, []), lines: [],
    upper: chart.addSeries(LW.LineSeries, band), lower: chart.addSeries(LW.LineSeries, band),
  };
  return state.chart;
}

function snap(times, t) { // the bar a marker belongs to: the last bar starting at or before t
  let lo = 0, hi = times.length - 1;
  if (hi < 0 || t < times[0]) return null;
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (times[mid] <= t) lo = mid; else hi = mid - 1; }
  return times[lo];
}

function renderChart(c) {
  const ch = ensureCandleChart();
  if (c.error) { replace("chart-note", c.error); return; }
  const bars = c.candles.map(([time, open, high, low, close]) => ({ time, open, high, low, close }));
  ch.candles.setData(bars);
  ch.upper.setData(c.sd_band.map(([time, , hi]) => ({ time, value: hi })));
  ch.lower.setData(c.sd_band.map(([time, lo]) => ({ time, value: lo })));
  const times = bars.map((b) => b.time);
  const marks = [];
  for (const e of c.entries) {
    const t = snap(times, Math.floor(e.time / 1000));
    if (t === null) continue;
    const buy = e.side === "buy";
    marks.push({ time: t, position: buy ? "belowBar" : "aboveBar", shape: buy ? "arrowUp" : "arrowDown",
      color: PROVENANCE_COLOURS[e.provenance] || "#2196f3", text: e.provenance || "" });
  }
  for (const x of c.exits) {
    const t = snap(times, Math.floor(x.time / 1000));
    if (t !== null) marks.push({ time: t, position: "inBar", shape: "circle", color: "#eceff4", text: EXIT_TEXT[x.exit_reason] ?? x.exit_reason });
  }
  marks.sort((a, b) => a.time - b.time);
  ch.markers.setMarkers(marks);
  for (const line of ch.lines) ch.candles.removePriceLine(line);
  ch.lines = [];
  const levels = c.protective_orders.filter((o) => o.trigger_price)
    .map((o) => [o.role, Number(o.trigger_price)]);
  if (!levels.length && c.position) {
    if (c.position.stop_loss) levels.push(["stop_loss", Number(c.position.stop_loss)]);
    if (c.position.take_profit) levels.push(["take_profit", Number(c.position.take_profit)]);
  }
  for (const [role, price] of levels) {
    ch.lines.push(ch.candles.createPriceLine({ price, lineWidth: 2, lineStyle: 0,
      color: role === "stop_loss" ? "#ef5350" : "#26a69a", title: role === "stop_loss" ? "SL" : "TP" }));
  }
  document.getElementById("chart").dataset.levels = levels.map(([r, p]) => `${r}:${p}`).join(",");
  document.getElementById("chart").dataset.markers = String(marks.length);
  replace("chart-note", `${c.bars_total} candles${c.bucket > 1 ? `, shown ${c.bucket} per bar` : ""}`);
  replace("legend", "▲▼ entries (coloured by the enhancement layer's provenance; blue: the ML signal alone) · ● exits (SL, TP, by decision) · lines: the live stop-loss and take-profit orders · dashed: the prediction's ±sd");
}

function renderEquity(e) {
  if (!state.equity) {
    const chart = makeChart("equity-chart");
    state.equity = { chart, line: chart.addSeries(LW.LineSeries, { color: "#88c0d0", lineWidth: 2 }),
      dd: chart.addSeries(LW.AreaSeries, { lineColor: "#ef5350", topColor: "rgba(239,83,80,.05)",
        bottomColor: "rgba(239,83,80,.4)", lineWidth: 1 }, 1) };
  }
  state.equity.line.setData(e.equity.map(([time, value]) => ({ time, value })));
  state.equity.dd.setData(e.drawdown_pct.map(([time, value]) => ({ time, value })));
  replace("equity-note", `max drawdown ${num(e.max_drawdown_pct, 2)} % · classic-only counterfactual: `,
    show(e.classic_only), ` (${e.classic_only.why})`);
}

function renderTrades(t) {
  replace("trades", t.trades.length ? table([
    ["exit", (r) => time(r.exit_time)], ["symbol", (r) => r.symbol], ["side", (r) => r.side],
    ["qty", (r) => r.qty], ["entry", (r) => r.entry_price], ["exit price", (r) => r.exit_price],
    ["reason", (r) => r.exit_reason], ["pnl", (r) => `${r.pnl} ${r.currency}`], ["fees", (r) => r.fees]],
  t.trades) : h("p", { class: "note" }, "No closed trades yet."));
}

function renderEvents(e) {
  replace("events", e.events.length ? table([
    ["", (r) => h("span", { class: `tag ${r.severity || ""}` }, r.severity || "event")],
    ["time", (r) => time(r.time)], ["kind", (r) => r.kind], ["symbol", (r) => r.symbol ?? ""],
    ["message", (r) => r.message, "msg"]], e.events) : h("p", { class: "note" }, "No events."));
}

function renderConfig(c) {
  replace("config", table([
    ["key", (r) => r.key], ["value", (r) => (r.value === null ? "—" : Array.isArray(r.value) ? r.value.join(", ") : String(r.value))],
    ["applies", (r) => h("span", { class: `tag ${r.applies === "live" ? "ok" : "warning"}` }, r.applies)]],
  c.keys));
  if (c.allow_write && !document.getElementById("config-preview")) renderEditor(c.keys);
}

// The editor (only with ops.allow_write): the strategy and ML keys this config uses, a diff
// preview checked by the daemon's own config loader, then apply (written, then reloaded).
function renderEditor(keys) {
  const editable = keys.filter((r) => /^(strategy|ml)\./.test(r.key) && !r.secret && r.used
    && !Array.isArray(r.value));
  const inputs = editable.map((r) => {
    const input = typeof r.value === "boolean"
      ? h("select", { "data-key": r.key }, h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"))
      : h("input", { "data-key": r.key, value: r.value === null ? "" : String(r.value) });
    input.value = String(r.value ?? "");
    input.dataset.original = input.value;
    input.dataset.kind = r.value === null ? "string" : typeof r.value;
    return h("label", { class: "field" }, h("span", {}, r.key, " ", h("span", { class: "tag" }, r.applies)), input);
  });
  const preview = h("button", { type: "button", id: "config-preview" }, "Preview");
  const apply = h("button", { type: "button", id: "config-apply", disabled: "" }, "Apply");
  const out = h("div", { id: "config-result", role: "status" });
  const changes = () => Object.fromEntries(inputs.map((l) => l.querySelector("[data-key]"))
    .filter((i) => i.value !== i.dataset.original)
    .map((i) => [i.dataset.key, i.dataset.kind === "number" ? Number(i.value)
      : i.dataset.kind === "boolean" ? i.value === "true" : i.value]));
  const send = async (applyIt) => {
    const r = await fetch("/api/config", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ changes: changes(), apply: applyIt }) });
    const body = await r.json();
    if (!r.ok) {
      apply.disabled = true;
      out.replaceChildren(h("p", { class: "bad" }, body.error), ...(body.problems || []).map((p) => h("p", { class: "bad problem" }, p)));
      return;
    }
    apply.disabled = applyIt;
    out.replaceChildren(body.diff.length ? table([["key", (d) => d.key], ["now", (d) => String(d.old)],
      ["new", (d) => String(d.new)], ["applies", (d) => d.applies]], body.diff) : h("p", {}, "No change."),
    applyIt ? h("p", { class: "note" }, body.applied ? "Applied (reloaded)." : `Written; not applied: ${body.refused || "the file was refused"}`) : null);
    if (applyIt) {
      for (const l of inputs) { const i = l.querySelector("[data-key]"); i.dataset.original = i.value; }
      api("/api/config").then(renderConfig);
    }
  };
  preview.addEventListener("click", () => send(false));
  apply.addEventListener("click", () => send(true));
  replace("editor", h("h3", {}, "Edit strategy and ML settings"), h("div", { class: "fields" }, inputs), preview, " ", apply, out);
}

async function refresh() {
  // What matters first (cards, positions, the chart), then the rest; the server answers in
  // the order asked, so the chart is never queued behind the year-long equity curve.
  renderOverview(await api("/api/overview"));
  const chart = state.symbol ? api(chartPath()) : null;
  const rest = [api("/api/trades"), api("/api/events"), api("/api/equity")];
  if (chart) renderChart(await chart);
  if (!performance.getEntriesByName("tbotd-meaningful").length) performance.mark("tbotd-meaningful");
  const [t, ev, e] = await Promise.all(rest);
  renderTrades(t);
  renderEvents(ev);
  renderEquity(e);
  replace("updated", new Date().toISOString().slice(11, 19));
  if (!performance.getEntriesByName("tbotd-painted").length) performance.mark("tbotd-painted");
}

const chartPath = () => `/api/chart?symbol=${encodeURIComponent(state.symbol)}&span=${state.span}`;

async function poll() {
  try {
    const live = await api("/api/live");
    if (live.version !== state.version) {
      await refresh();
      state.version = live.version;
      document.body.dataset.version = live.version;
    }
  } catch (err) {
    replace("updated", `failed: ${err.message}`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function setup() {
  replace("spans", ...SPANS.map((s) => {
    const b = h("button", { type: "button", class: s === state.span ? "on" : "" }, s);
    b.addEventListener("click", async () => {
      state.span = s;
      for (const x of document.querySelectorAll("#spans button")) x.className = x === b ? "on" : "";
      renderChart(await api(chartPath()));
    });
    return b;
  }));
  document.getElementById("symbol").addEventListener("change", async (ev) => {
    state.symbol = ev.target.value;
    renderChart(await api(chartPath()));
  });
  api("/api/config").then(renderConfig).catch(() => replace("config", "unavailable"));
  poll();
}

setup();
