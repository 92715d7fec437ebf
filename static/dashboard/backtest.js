// Backtests: live progress from the 'backtest' events live.js relays as 'live:backtest' on document,
// a catch-up from progress.json on every (re)connect ('live:state'), and the report's charts
// (lightweight-charts v5: equity and drawdown in two panes, each symbol's candles with its trade markers)
// drawn from the page's JSON. The standalone report runs the same file without live.js: only the charts apply.
(function () {
  'use strict';

  const FINISHED = new Set(['done', 'failed']);

  function progressText(d) {
    const pct = Number(d.pct || 0).toFixed(1);
    return `${d.status} · ${d.bars_done}/${d.bars_total} bars (${pct} %)` + (d.error ? ` · ${d.error}` : '');
  }

  function applyProgress(d) {
    document.querySelectorAll(`[data-progress-run="${d.run_id}"]`).forEach((el) => {
      el.dataset.status = d.status;
      const bar = el.querySelector('[data-bar]');
      if (bar) {
        bar.style.width = `${Math.min(100, Number(d.pct || 0))}%`;
        bar.parentElement.setAttribute('aria-valuenow', d.pct);
      }
      const text = el.querySelector('[data-text]');
      if (text) text.textContent = progressText(d);
    });
    document.querySelectorAll(`[data-status-run="${d.run_id}"]`).forEach((el) => {
      el.textContent = d.status;
      el.className = `bt-status bt-${d.status}`;
    });
  }

  function watchRun(root) {
    const runId = Number(root.dataset.runId);
    let reloading = root.dataset.finished === 'true';
    function onProgress(d) {
      if (!d || d.run_id == null) return;
      applyProgress(d);
      // The report is rendered by the server: show it once this run has ended.
      if (d.run_id === runId && FINISHED.has(d.status) && !reloading) {
        reloading = true;
        setTimeout(() => location.reload(), 300);
      }
    }
    document.addEventListener('live:backtest', (ev) => onProgress(ev.detail));
    document.addEventListener('live:state', async () => {
      try {
        const response = await fetch(root.dataset.progressUrl,
          { credentials: 'same-origin', headers: { Accept: 'application/json' } });
        if (!response.ok) return;
        const body = await response.json();
        [...body.children, body.run].forEach(onProgress);
      } catch (err) {
        // Offline again: the next 'state' retries.
      }
    });
  }

  function watchList(root) {
    const notice = document.querySelector('[data-backtests-stale]');
    document.addEventListener('live:backtest', (ev) => {
      const d = ev.detail || {};
      applyProgress(d);
      if (FINISHED.has(d.status) && root.querySelector(`tr[data-run="${d.run_id}"]`) && notice) notice.hidden = false;
    });
  }

  // --- charts -----------------------------------------------------------------------
  const BASE = {
    autoSize: true,
    layout: { background: { color: '#ffffff' }, textColor: '#334155', fontFamily: 'system-ui, sans-serif',
      panes: { separatorColor: '#e2e8f0' } },
    grid: { vertLines: { color: '#f1f5f9' }, horzLines: { color: '#f1f5f9' } },
    timeScale: { timeVisible: true, secondsVisible: false, borderColor: '#e2e8f0' },
    rightPriceScale: { borderColor: '#e2e8f0' },
  };

  function drawCurve(LC, container, data) {
    const chart = LC.createChart(container, { ...BASE, crosshair: { mode: LC.CrosshairMode.Normal } });
    const equity = chart.addSeries(LC.LineSeries, {
      color: '#2563eb', lineWidth: 2, title: 'Equity USDT', priceFormat: { type: 'price', precision: 2, minMove: 0.01 },
    }, 0);
    const drawdown = chart.addSeries(LC.AreaSeries, {
      lineColor: '#dc2626', lineWidth: 1, topColor: 'rgba(220, 38, 38, 0.05)', bottomColor: 'rgba(220, 38, 38, 0.35)',
      invertFilledArea: true, title: 'Drawdown %',
      priceFormat: { type: 'custom', minMove: 0.01, formatter: (v) => `${v.toFixed(2)} %` },
    }, 1);
    chart.panes()[1].setStretchFactor(0.4);
    equity.setData(data.equity.map(([time, value]) => ({ time, value })));
    drawdown.setData(data.drawdown.map(([time, value]) => ({ time, value })));
    chart.timeScale().fitContent();
  }

  // One candle chart for every symbol of the run: the picker (multi-symbol runs only) swaps in the
  // chosen symbol's candles and its trades' markers.
  function drawCandles(LC, container, data) {
    const chart = LC.createChart(container, { ...BASE, crosshair: { mode: LC.CrosshairMode.Normal } });
    const candles = chart.addSeries(LC.CandlestickSeries, {
      upColor: '#16a34a', downColor: '#dc2626', borderVisible: false, wickUpColor: '#16a34a', wickDownColor: '#dc2626',
    });
    const markers = LC.createSeriesMarkers(candles, []);
    const picker = document.querySelector('[data-chart-symbol]');
    const perBar = document.querySelector('[data-per-bar]');
    function show(index) {
      const symbol = data.symbols[index] || data.symbols[0];
      candles.setData(symbol.candles);
      markers.setMarkers(symbol.markers);
      if (perBar) {
        perBar.textContent = `${symbol.per_bar} bars per candle`;
        perBar.hidden = symbol.per_bar <= 1;
      }
      chart.timeScale().fitContent();
    }
    if (picker) picker.addEventListener('change', () => show(Number(picker.value)));
    show(picker ? Number(picker.value) : 0);
  }

  function drawCharts() {
    const LC = window.LightweightCharts;
    const source = document.getElementById('backtest-chart');
    if (!LC || !source) return;
    const data = JSON.parse(source.textContent);
    if (!data) return;
    const curve = document.querySelector('[data-chart="curve"]');
    const bars = document.querySelector('[data-chart="candles"]');
    if (curve && data.equity.length) drawCurve(LC, curve, data);
    if (bars && data.symbols.some((s) => s.candles.length)) drawCandles(LC, bars, data);
  }

  function start() {
    const run = document.querySelector('[data-backtest]');
    if (run) watchRun(run);
    const list = document.querySelector('[data-backtests]');
    if (list) watchList(list);
    drawCharts();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
