// Equity curve and drawdown (lightweight-charts v5, two panes) with a period selector,
// a custom UTC range, CSV export of the same range and live 'equity' events appended.
(function () {
  'use strict';

  const LC = window.LightweightCharts;
  const DEFAULT_PERIOD = '1W';

  function createChart(container) {
    const chart = LC.createChart(container, {
      autoSize: true,
      layout: { background: { color: '#ffffff' }, textColor: '#334155', fontFamily: 'system-ui, sans-serif',
        panes: { separatorColor: '#e2e8f0' } },
      grid: { vertLines: { color: '#f1f5f9' }, horzLines: { color: '#f1f5f9' } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: '#e2e8f0' },
      rightPriceScale: { borderColor: '#e2e8f0' },
      crosshair: { mode: LC.CrosshairMode.Normal },
    });
    const equity = chart.addSeries(LC.LineSeries, {
      color: '#2563eb', lineWidth: 2, title: 'Equity USDT',
      priceFormat: { type: 'price', precision: 2, minMove: 0.01 },
    }, 0);
    // Drawdown is <= 0: fill between the line and zero at the top of its pane.
    const drawdown = chart.addSeries(LC.AreaSeries, {
      lineColor: '#dc2626', lineWidth: 1, topColor: 'rgba(220, 38, 38, 0.05)',
      bottomColor: 'rgba(220, 38, 38, 0.35)', invertFilledArea: true, title: 'Drawdown %',
      priceFormat: { type: 'custom', minMove: 0.01, formatter: (v) => v.toFixed(2) + ' %' },
    }, 1);
    chart.panes()[1].setStretchFactor(0.4);
    return { chart, equity, drawdown };
  }

  function init(root) {
    const form = root.querySelector('[data-controls]');
    const status = root.querySelector('[data-status]');
    const exportLink = root.querySelector('[data-export]');
    const { chart, equity, drawdown } = createChart(root.querySelector('[data-chart]'));
    // What the chart shows now; live points are appended only to an open-ended range.
    const view = { params: null, live: false, lastTime: 0, peak: null, accountId: null };

    function query(params) {
      const search = new URLSearchParams();
      for (const [key, value] of Object.entries(params)) if (value) search.set(key, value);
      return search.toString();
    }

    function currentParams(extra) {
      return { account: form.elements.account.value, ...extra };
    }

    async function load(params) {
      view.params = params;
      const points = Math.max(200, Math.min(5000, Math.round(root.clientWidth * 1.5)));
      exportLink.href = root.dataset.exportUrl + '?' + query(params);
      status.textContent = 'Loading…';
      let body;
      try {
        const response = await fetch(root.dataset.url + '?' + query({ ...params, points }),
          { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
        if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
        body = await response.json();
      } catch (err) {
        status.textContent = 'Could not load the equity curve: ' + err.message;
        return;
      }
      if (view.params !== params) return;  // a newer request superseded this one
      show(body, params);
    }

    function show(body, params) {
      equity.setData(body.points.map((p) => ({ time: p.t, value: Number(p.equity) })));
      drawdown.setData(body.points.map((p) => ({ time: p.t, value: p.drawdown_pct })));
      chart.timeScale().fitContent();
      const last = body.points[body.points.length - 1];
      view.lastTime = last ? last.t : 0;
      view.peak = body.peak_equity === null ? null : Number(body.peak_equity);
      view.accountId = body.account.id;
      view.live = !params.end;
      const maxDd = body.points.reduce((m, p) => Math.min(m, p.drawdown_pct), 0);
      status.textContent = body.points.length
        ? `${body.account.name}: ${body.points.length} points${body.downsampled ? ' (downsampled)' : ''}, ` +
          `max drawdown ${maxDd.toFixed(2)} %${view.live ? ', live' : ''}`
        : `${body.account.name}: no equity points in this range`;
    }

    function onLiveEquity(ev) {
      const d = ev.detail || {};
      if (!view.live || d.equity_usdt == null || !d.ts) return;
      if (d.account_id != null && d.account_id !== view.accountId) return;
      const time = Math.floor(Date.parse(d.ts) / 1000);
      if (time < view.lastTime) return;  // the chart only accepts points in time order
      const value = Number(d.equity_usdt);
      view.peak = view.peak === null ? value : Math.max(view.peak, value);
      const dd = view.peak > 0 ? ((value - view.peak) / view.peak) * 100 : 0;
      equity.update({ time, value });
      drawdown.update({ time, value: dd });
      view.lastTime = time;
    }

    function selectPeriod(period) {
      root.querySelectorAll('[data-period]').forEach((b) => b.classList.toggle('active', b.dataset.period === period));
      load(currentParams({ period }));
    }

    root.querySelectorAll('[data-period]').forEach((button) => {
      button.addEventListener('click', () => {
        form.elements.start.value = '';
        form.elements.end.value = '';
        selectPeriod(button.dataset.period);
      });
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      root.querySelectorAll('[data-period]').forEach((b) => b.classList.remove('active'));
      // datetime-local has no zone; the server reads a time without an offset as UTC.
      load(currentParams({ start: form.elements.start.value, end: form.elements.end.value }));
    });
    form.elements.account.addEventListener('change', () => load({ ...view.params, account: form.elements.account.value }));
    document.addEventListener('live:equity', onLiveEquity);
    selectPeriod(DEFAULT_PERIOD);
  }

  document.addEventListener('DOMContentLoaded', () => {
    const root = document.querySelector('[data-equity]');
    if (root && LC) init(root);
  });
})();
