// Candles of one instrument and timeframe (lightweight-charts v5) with overlays: sessions shaded
// behind the candles, fair-value gaps and liquidation zones as boxes, each trade's entry, stop and
// targets as lines over the trade's own time span, entry and exit markers. One series primitive
// draws the boxes and lines; live 'price' events move a last-price line and pull new bars.
(function () {
  'use strict';

  const LC = window.LightweightCharts;
  const RELOAD_MIN_MS = 5000;   // at most one live reload per this interval
  const COLORS = {
    up: '#16a34a', down: '#dc2626',
    fvgBelow: [22, 163, 74], fvgAbove: [220, 38, 38],
    zoneLong: [234, 88, 12], zoneShort: [124, 58, 237],
    session: { asia: [234, 179, 8], eu: [37, 99, 235], us: [22, 163, 74] },
    entry: '#2563eb', stop: '#dc2626', target: '#16a34a', exit: '#475569',
  };

  function rgba(rgb, alpha) { return `rgba(${rgb[0]}, ${rgb[1]}, ${rgb[2]}, ${alpha})`; }

  function money(value) {
    const n = Number(value);
    if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (Math.abs(n) >= 1e3) return (n / 1e3).toFixed(0) + 'k';
    return n.toFixed(0);
  }

  // --- time -> position on the loaded bars ----------------------------------------------
  // Logical index of a time: bar i opens at i, fractional inside a bar, extrapolated outside.
  function timeIndex(times, step) {
    return function (t) {
      const n = times.length;
      if (!n) return null;
      if (t <= times[0]) return (t - times[0]) / step;
      if (t >= times[n - 1]) return n - 1 + (t - times[n - 1]) / step;
      let lo = 0;
      let hi = n - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (times[mid] <= t) lo = mid; else hi = mid;
      }
      return lo + Math.min(1, (t - times[lo]) / step);  // a time inside missing bars sticks to the bar before
    };
  }

  // --- the overlay primitive --------------------------------------------------------------
  class OverlayView {
    constructor(owner, zOrder, layer) { this.owner = owner; this.z = zOrder; this.layer = layer; }
    zOrder() { return this.z; }
    renderer() { return { draw: (target) => this.owner.draw(target, this.layer) }; }
  }

  // Boxes {from, to, top, bottom, fill, stroke, label} and lines {from, to, price, color, dash, label};
  // times in epoch seconds (to null: up to the right edge), prices null: the pane's full height.
  class Overlay {
    constructor() {
      this.shapes = { back: [], front: [] };
      this.indexOf = null;
      this.views = [new OverlayView(this, 'bottom', 'back'), new OverlayView(this, 'normal', 'front')];
    }
    attached(param) { this.chart = param.chart; this.series = param.series; this.requestUpdate = param.requestUpdate; }
    detached() { this.chart = null; this.series = null; }
    paneViews() { return this.views; }
    updateAllViews() {}
    set(shapes, indexOf) {
      this.shapes = shapes;
      this.indexOf = indexOf;
      if (this.requestUpdate) this.requestUpdate();
    }

    x(time, width) {
      if (time === null || time === undefined) return width;
      const logical = this.indexOf(time) - 0.5;  // a bar's open time is its left edge
      const scale = this.chart.timeScale();
      const i = Math.floor(logical);
      const a = scale.logicalToCoordinate(i);
      const b = scale.logicalToCoordinate(i + 1);
      if (a === null || b === null) return null;
      return a + (logical - i) * (b - a);
    }

    y(price, fallback) {
      if (price === null || price === undefined) return fallback;
      const y = this.series.priceToCoordinate(Number(price));
      return y === null ? fallback : y;
    }

    draw(target, layer) {
      if (!this.chart || !this.indexOf) return;
      const shapes = this.shapes[layer];
      target.useMediaCoordinateSpace(({ context: ctx, mediaSize }) => {
        for (const s of shapes) {
          const x1 = Math.max(0, this.x(s.from, mediaSize.width) ?? 0);
          const x2 = Math.min(mediaSize.width, this.x(s.to, mediaSize.width) ?? mediaSize.width);
          if (x2 <= 0 || x1 >= mediaSize.width || x2 <= x1) continue;
          if ('price' in s) this.line(ctx, s, x1, x2, mediaSize.height);
          else this.box(ctx, s, x1, x2, mediaSize.height);
        }
      });
    }

    box(ctx, s, x1, x2, height) {
      const yTop = this.y(s.top, 0);
      const yBottom = this.y(s.bottom, height);
      const top = Math.min(yTop, yBottom);
      const h = Math.max(1, Math.abs(yBottom - yTop));
      if (s.fill) { ctx.fillStyle = s.fill; ctx.fillRect(x1, top, x2 - x1, h); }
      if (s.stroke) {
        ctx.strokeStyle = s.stroke;
        ctx.lineWidth = 1;
        ctx.setLineDash(s.dash || []);
        ctx.strokeRect(x1 + 0.5, top + 0.5, x2 - x1 - 1, h - 1);
        ctx.setLineDash([]);
      }
      if (s.label) this.text(ctx, s.label, x1 + 3, top + 11, s.labelColor || '#334155');
    }

    line(ctx, s, x1, x2) {
      const y = this.y(s.price, null);
      if (y === null) return;
      ctx.strokeStyle = s.color;
      ctx.lineWidth = s.width || 1;
      ctx.setLineDash(s.dash || []);
      ctx.beginPath();
      ctx.moveTo(x1, Math.round(y) + 0.5);
      ctx.lineTo(x2, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.setLineDash([]);
      if (s.label) this.text(ctx, s.label, x1 + 3, y - 3, s.color);
    }

    text(ctx, label, x, y, color) {
      ctx.font = '11px system-ui, sans-serif';
      ctx.fillStyle = color;
      ctx.fillText(label, x, y);
    }
  }

  // --- overlays from the server's answer ---------------------------------------------------
  function sessionShapes(data) {
    const back = [];
    const front = [];
    for (const s of data.sessions) {
      const rgb = COLORS.session[s.name] || [100, 116, 139];
      back.push({ from: s.from, to: s.to, top: null, bottom: null, fill: rgba(rgb, 0.07), label: s.label,
        labelColor: rgba(rgb, 0.9) });
      for (const price of [s.high, s.low]) {
        if (price !== null) front.push({ from: s.from, to: s.to, price, color: rgba(rgb, 0.6), dash: [2, 3] });
      }
    }
    return { back, front };
  }

  function fvgShapes(data, step) {
    const out = [];
    for (const run of data.fvg.nearest) {
      const rgb = run.side === 'below' ? COLORS.fvgBelow : COLORS.fvgAbove;
      out.push({ from: run.from, to: run.to + step, top: run.top, bottom: run.bottom,
        fill: rgba(rgb, run.state === 'fresh' ? 0.2 : 0.1) });
    }
    for (const gap of data.fvg.formed) {
      const rgb = gap.direction === 'bullish' ? COLORS.fvgBelow : COLORS.fvgAbove;
      out.push({ from: gap.time - 2 * step, to: gap.time + step, top: gap.top, bottom: gap.bottom,
        stroke: rgba(rgb, 0.8), dash: [3, 2] });
    }
    return out;
  }

  function zoneShapes(data) {
    return data.liquidation_zones.map((z) => {
      const rgb = z.side === 'long' ? COLORS.zoneLong : COLORS.zoneShort;
      return { from: z.known_at, to: z.valid_until, top: z.price_high, bottom: z.price_low,
        fill: rgba(rgb, 0.14), stroke: rgba(rgb, 0.5), label: `${z.side} liq $${money(z.size_usd)}`,
        labelColor: rgba(rgb, 1) };
    });
  }

  function tradeLines(trade) {
    const to = trade.closed_at;  // null while open: the lines run to the right edge
    const lines = [{ from: trade.opened_at, to, price: trade.entry_price, color: COLORS.entry, width: 2,
      label: `${trade.side} entry ${trade.entry_price}` }];
    if (trade.initial_stop_price && trade.initial_stop_price !== trade.stop_price) {
      lines.push({ from: trade.opened_at, to, price: trade.initial_stop_price, color: COLORS.stop, dash: [1, 3],
        label: `initial SL ${trade.initial_stop_price}` });
    }
    lines.push({ from: trade.opened_at, to, price: trade.stop_price, color: COLORS.stop, dash: [5, 3],
      label: `SL ${trade.stop_price}` });
    for (const tp of trade.take_profits) {
      lines.push({ from: trade.opened_at, to, price: tp.price, color: COLORS.target, dash: tp.filled ? [1, 3] : [5, 3],
        label: `${tp.label} ${tp.price}${tp.filled ? ' ✓' : ''}` });
    }
    return lines;
  }

  function tradeMarkers(data, snap) {
    const markers = [];
    for (const t of data.trades) {
      const long = t.side === 'LONG';
      const opened = snap(t.opened_at);
      if (opened !== null) {
        markers.push({ time: opened, position: long ? 'belowBar' : 'aboveBar', shape: long ? 'arrowUp' : 'arrowDown',
          color: COLORS.entry, text: `${t.side} ${t.quantity} @ ${t.entry_price}` });
      }
      const closed = t.closed_at === null ? null : snap(t.closed_at);
      if (closed !== null) {
        const pnl = Number(t.realized_pnl_usdt);
        markers.push({ time: closed, position: long ? 'aboveBar' : 'belowBar', shape: 'circle',
          color: pnl >= 0 ? COLORS.up : COLORS.down,
          text: `exit ${t.exit_price}${t.exit_reason ? ' (' + t.exit_reason + ')' : ''} ${pnl >= 0 ? '+' : ''}${pnl.toFixed(2)}` });
      }
    }
    return markers.sort((a, b) => a.time - b.time);
  }

  // --- the page -------------------------------------------------------------------------------
  function createChart(container) {
    const chart = LC.createChart(container, {
      autoSize: true,
      layout: { background: { color: '#ffffff' }, textColor: '#334155', fontFamily: 'system-ui, sans-serif' },
      grid: { vertLines: { color: '#f1f5f9' }, horzLines: { color: '#f1f5f9' } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: '#e2e8f0' },
      rightPriceScale: { borderColor: '#e2e8f0' },
      crosshair: { mode: LC.CrosshairMode.Normal },
    });
    const candles = chart.addSeries(LC.CandlestickSeries, {
      upColor: COLORS.up, downColor: COLORS.down, borderVisible: false,
      wickUpColor: COLORS.up, wickDownColor: COLORS.down,
    });
    const volume = chart.addSeries(LC.HistogramSeries, { priceScaleId: '', priceFormat: { type: 'volume' },
      lastValueVisible: false, priceLineVisible: false });
    volume.priceScale().applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
    const overlay = new Overlay();
    candles.attachPrimitive(overlay);
    const markers = LC.createSeriesMarkers(candles, []);
    return { chart, candles, volume, overlay, markers };
  }

  function init(root, instruments) {
    const form = root.querySelector('[data-controls]');
    const status = root.querySelector('[data-status]');
    const parts = createChart(root.querySelector('[data-chart]'));
    const view = { params: null, data: null, live: false, priceLines: [], lastLine: null, reloadAt: 0, timer: null };

    function fillTimeframes(wanted) {
      const chosen = instruments.find((i) => String(i.id) === form.elements.instrument.value) || instruments[0];
      const select = form.elements.timeframe;
      select.replaceChildren(...chosen.timeframes.map((tf) => new Option(tf, tf)));
      const fallback = chosen.timeframes.includes(root.dataset.defaultTimeframe) ? root.dataset.defaultTimeframe : chosen.timeframes[0];
      select.value = chosen.timeframes.includes(wanted) ? wanted : fallback;
    }

    function paramsFromForm() {
      const option = form.elements.instrument.selectedOptions[0];
      const params = { symbol: option.dataset.symbol, source: option.dataset.source, timeframe: form.elements.timeframe.value,
        bars: form.elements.bars.value, start: form.elements.start.value, end: form.elements.end.value };
      return Object.fromEntries(Object.entries(params).filter(([, v]) => v));
    }

    function shown() {
      return new Set([...form.querySelectorAll('input[name="show"]:checked')].map((el) => el.value));
    }

    async function load(params, { fit = true } = {}) {
      view.params = params;
      if (fit) status.textContent = 'Loading…';
      let body;
      try {
        const response = await fetch(root.dataset.url + '?' + new URLSearchParams(params),
          { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
        body = await response.json();
        if (!response.ok) throw new Error(body.error || response.status);
      } catch (err) {
        status.textContent = 'Could not load the chart: ' + err.message;
        return;
      }
      if (view.params !== params) return;  // a newer request superseded this one
      view.data = body;
      view.live = !params.end;
      draw(fit);
    }

    // Prices on the axis with the instrument's tick: 0.1 shows one decimal, 0.01 two.
    function priceFormat(tick) {
      const decimals = tick.includes('.') ? tick.split('.')[1].length : 0;
      return { type: 'price', precision: decimals, minMove: Number(tick) };
    }

    function draw(fit) {
      const data = view.data;
      if (!data) return;
      const step = data.timeframe_seconds;
      parts.candles.applyOptions({ priceFormat: priceFormat(data.instrument.tick_size) });
      const times = data.candles.map((c) => c.time);
      parts.candles.setData(data.candles.map((c) => ({ time: c.time, open: Number(c.open), high: Number(c.high),
        low: Number(c.low), close: Number(c.close) })));
      parts.volume.setData(data.candles.map((c) => ({ time: c.time, value: Number(c.volume),
        color: Number(c.close) >= Number(c.open) ? 'rgba(22, 163, 74, 0.35)' : 'rgba(220, 38, 38, 0.35)' })));
      const indexOf = timeIndex(times, step);
      // A marker must sit on a bar: the one containing the moment, if it is on the chart.
      const snap = (t) => {
        const i = Math.floor(indexOf(t));
        return i >= 0 && i < times.length ? times[i] : null;
      };
      const show = shown();
      const back = [];
      let front = [];
      if (show.has('sessions')) {
        const s = sessionShapes(data);
        back.push(...s.back);
        front.push(...s.front);
      }
      if (show.has('zones')) front.push(...zoneShapes(data));
      if (show.has('fvg')) front.push(...fvgShapes(data, step));
      if (show.has('trades')) front = front.concat(...data.trades.map(tradeLines));
      parts.overlay.set({ back, front }, indexOf);
      parts.markers.setMarkers(show.has('trades') ? tradeMarkers(data, snap) : []);
      openTradeLines(show.has('trades') ? data.trades.filter((t) => t.status === 'open') : []);
      if (fit) parts.chart.timeScale().fitContent();
      describe(data);
    }

    // Open trades' levels also get labels on the price axis; the lines themselves are the overlay's,
    // which start at the entry instead of crossing the whole chart.
    function openTradeLines(trades) {
      for (const line of view.priceLines) parts.candles.removePriceLine(line);
      view.priceLines = [];
      for (const t of trades) {
        const add = (price, color, title, style) => view.priceLines.push(parts.candles.createPriceLine({
          price: Number(price), color, title, lineStyle: style, lineWidth: 1, lineVisible: false, axisLabelVisible: true }));
        add(t.entry_price, COLORS.entry, 'entry', LC.LineStyle.Solid);
        add(t.stop_price, COLORS.stop, 'SL', LC.LineStyle.Dashed);
        t.take_profits.filter((tp) => !tp.filled).forEach((tp) => add(tp.price, COLORS.target, tp.label, LC.LineStyle.Dashed));
      }
    }

    function describe(data) {
      const n = data.candles.length;
      if (!n) {
        status.textContent = `${data.instrument.symbol} ${data.timeframe}: no candles in this range`;
        return;
      }
      const fmt = (t) => new Date(t * 1000).toISOString().slice(0, 16).replace('T', ' ');
      const open = data.trades.filter((t) => t.status === 'open').length;
      status.textContent = `${data.instrument.symbol} (${data.instrument.source}) ${data.timeframe}: ${n} bars, ` +
        `${fmt(data.candles[0].time)} – ${fmt(data.candles[n - 1].time)} UTC · ${data.fvg.formed.length} FVGs formed ` +
        `(${data.fvg.open_below} open below, ${data.fvg.open_above} above) · ${data.liquidation_zones.length} liquidation zones · ` +
        `${data.trades.length} trades (${open} open)${view.live ? ' · live' : ''}`;
    }

    function scheduleReload() {
      if (!view.live || !view.params) return;
      clearTimeout(view.timer);
      const wait = Math.max(250, view.reloadAt + RELOAD_MIN_MS - Date.now());
      view.timer = setTimeout(() => { view.reloadAt = Date.now(); load(view.params, { fit: false }); }, wait);
    }

    function onPrice(ev) {
      const d = ev.detail || {};
      const data = view.data;
      if (!data || d.price == null || d.instrument_id !== data.instrument.id) return;
      const price = Number(d.price);
      if (view.lastLine) view.lastLine.applyOptions({ price });
      else view.lastLine = parts.candles.createPriceLine({ price, color: '#0f172a', lineWidth: 1,
        lineStyle: LC.LineStyle.Dotted, title: 'last', axisLabelVisible: true });
      // The price is the close of a bar that just closed; a new bar of this timeframe has closed
      // once that close lies a whole bar past the last one shown.
      const last = data.candles[data.candles.length - 1];
      const closedAt = Date.parse(d.ts) / 1000;
      if (!last || closedAt >= last.time + 2 * data.timeframe_seconds) scheduleReload();
    }

    function apply() {
      const params = paramsFromForm();
      history.replaceState(null, '', '?' + new URLSearchParams(params));
      if (view.lastLine) { parts.candles.removePriceLine(view.lastLine); view.lastLine = null; }
      load(params);
    }

    // Start from the query string, so a chart's address can be bookmarked or shared.
    const initial = new URLSearchParams(location.search);
    const match = instruments.find((i) => i.symbol === initial.get('symbol') &&
      (!initial.get('source') || i.source === initial.get('source')));
    if (match) form.elements.instrument.value = String(match.id);
    for (const name of ['bars', 'start', 'end']) if (initial.get(name)) form.elements[name].value = initial.get(name);
    fillTimeframes(initial.get('timeframe'));

    form.elements.instrument.addEventListener('change', () => { fillTimeframes(form.elements.timeframe.value); apply(); });
    form.elements.timeframe.addEventListener('change', apply);
    form.addEventListener('submit', (ev) => { ev.preventDefault(); apply(); });
    form.querySelectorAll('input[name="show"]').forEach((box) => box.addEventListener('change', () => draw(false)));
    document.addEventListener('live:price', onPrice);
    for (const event of ['position', 'order', 'fill']) document.addEventListener('live:' + event, scheduleReload);
    apply();
  }

  document.addEventListener('DOMContentLoaded', () => {
    const root = document.querySelector('[data-chart-page]');
    const script = document.getElementById('chart-instruments');
    if (root && script && LC) init(root, JSON.parse(script.textContent));
  });
})();
