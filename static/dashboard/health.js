// Health page: redraw the checks from each "health" event (live.js dispatches 'live:health').
(function () {
  'use strict';

  const TITLES = {
    database: 'Database', channels: 'Channel layer', workers: 'django-q2 workers',
    exchange: 'Exchanges', data: 'Data freshness', reconciliation: 'Reconciliation',
  };

  function pill(ok, text) {
    const span = document.createElement('span');
    span.className = 'health-pill ' + (ok ? 'health-ok' : 'health-failing');
    span.textContent = text;
    return span;
  }

  function cell(content, className) {
    const td = document.createElement('td');
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = content;
    if (className) td.className = className;
    return td;
  }

  function rows(checks) {
    const out = [];
    let group = null;
    for (const check of checks) {
      if (check.group !== group) {
        group = check.group;
        const tr = document.createElement('tr');
        tr.className = 'health-group';
        const th = document.createElement('th');
        th.colSpan = 4;
        th.scope = 'colgroup';
        th.textContent = TITLES[group] || group;
        tr.appendChild(th);
        out.push(tr);
      }
      const tr = document.createElement('tr');
      tr.dataset.check = check.name;
      tr.className = check.ok ? 'check-ok' : 'check-failing';
      tr.append(cell(check.name), cell(pill(check.ok, check.ok ? 'ok' : 'failing')), cell(check.detail, 'wrap'),
        cell(check.latency_ms == null ? '—' : String(check.latency_ms), 'num'));
      out.push(tr);
    }
    return out;
  }

  function apply(report) {
    const page = document.querySelector('[data-health]');
    if (!page || !report || !Array.isArray(report.checks)) return;
    const summary = page.querySelector('[data-health-summary]');
    const label = report.summary ? report.summary.label : (report.ok ? 'ok' : report.failing + ' failing');
    summary.className = 'health-pill ' + (report.ok ? 'health-ok' : 'health-failing');
    summary.textContent = label;
    const checked = page.querySelector('[data-health-checked]');
    checked.textContent = String(report.checked_at).slice(0, 19).replace('T', ' ');
    checked.setAttribute('datetime', report.checked_at);
    page.querySelector('[data-health-source]').textContent = 'by the health task, pushed live';
    const failing = page.querySelector('[data-health-failing]');
    failing.hidden = report.ok;
    failing.textContent = report.ok ? '' : 'Failing: ' + report.failing_names.join(', ');
    page.querySelector('[data-health-rows]').replaceChildren(...rows(report.checks));
  }

  document.addEventListener('live:health', (ev) => apply(ev.detail));
})();
