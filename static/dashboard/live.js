// Live dashboard updates over ws/live/: the server's 'state' on every (re)connect,
// then incremental events. Other scripts listen for 'live:<event>' on document.
(function () {
  'use strict';

  const LOGIN_REQUIRED = 4401;
  const MAX_DELAY_MS = 30000;
  // Events that change several panels at once: ask the server for the whole state
  // instead of duplicating its formatting rules here.
  const REFRESH_EVENTS = new Set(['snapshot', 'decision', 'order', 'fill', 'position', 'status']);
  const FEED_EVENTS = new Set(['decision', 'order', 'fill', 'position']);
  const FEED_MAX = 30;

  let socket = null;
  let attempt = 0;
  let refreshTimer = null;
  let state = null;

  // --- formatting -------------------------------------------------------------------
  const money = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const number = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

  function format(value, kind) {
    if (value === null || value === undefined || value === '') return '—';
    switch (kind) {
      case 'money': return money.format(Number(value));
      case 'pnl': return (Number(value) > 0 ? '+' : '') + money.format(Number(value));
      case 'number': return number.format(Number(value));
      case 'time': return new Date(value).toISOString().slice(0, 19).replace('T', ' ');
      default: return String(value);  // prices stay the server's tick-rounded strings
    }
  }

  function lookup(obj, path) {
    return path.split('.').reduce((acc, key) => (acc == null ? undefined : acc[key]), obj);
  }

  function setBound(el, value) {
    const kind = el.dataset.format || 'text';
    el.textContent = format(value, kind);
    if (kind === 'pnl') setSignClass(el, value);
    if (kind === 'action') el.className = 'action action-' + String(value || 'none').toLowerCase();
  }

  function setSignClass(el, value) {
    el.classList.toggle('pos', Number(value) > 0);
    el.classList.toggle('neg', Number(value) < 0);
  }

  function flash(el) {
    el.classList.remove('flash');
    void el.offsetWidth;  // restart the CSS animation
    el.classList.add('flash');
  }

  // --- applying the state -----------------------------------------------------------
  function applyHeader(s) {
    const mode = document.querySelector('[data-header="mode"]');
    if (mode) {
      mode.className = 'badge mode mode-' + s.mode.toLowerCase();
      mode.querySelector('b').textContent = s.mode;
      mode.title = s.mode_label;
    }
    const paused = document.querySelector('[data-header="paused"]');
    if (paused) paused.hidden = !s.paused;
    const broker = document.querySelector('[data-header="broker"]');
    if (broker) {
      broker.className = 'badge broker broker-' + s.broker;
      broker.querySelector('b').textContent = s.broker.toUpperCase();
    }
    const source = document.querySelector('[data-header="source"]');
    if (source) {
      source.textContent = s.data_source.label;
      source.classList.toggle('source-fake', !s.data_source.real);
    }
    const banner = document.querySelector('[data-header="banner"]');
    if (banner) {
      banner.hidden = s.data_source.real;
      banner.querySelector('[data-header="banner-label"]').textContent = s.data_source.label;
    }
  }

  function applyList(el, items) {
    el.replaceChildren();
    for (const item of items && items.length ? items : [null]) {
      const li = document.createElement('li');
      li.textContent = item === null ? '—' : item;
      if (item === null) li.className = 'muted';
      el.appendChild(li);
    }
  }

  function cell(text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function targetsCell(p) {
    const td = cell('', 'target');
    td.dataset.cell = 'targets';
    const ladder = p.take_profits || [];
    if (!ladder.length) {
      td.textContent = format(p.target_price);
      return td;
    }
    for (const tp of ladder) {
      const span = document.createElement('span');
      span.className = tp.filled ? 'tp tp-filled' : 'tp';
      const small = document.createElement('small');
      small.textContent = `${tp.share_pct}%` + (tp.filled ? ' filled' : '');
      span.append(`${tp.label} ${tp.price} `, small);
      td.append(span, ' ');
    }
    return td;
  }

  function positionRow(p) {
    const tr = document.createElement('tr');
    tr.dataset.position = p.id;
    tr.dataset.positionId = p.id;  // the stable selector: [data-position-id="<id>"]
    const side = cell('');
    const badge = document.createElement('span');
    badge.className = 'action action-' + p.side.toLowerCase();
    badge.textContent = p.side;
    side.appendChild(badge);
    const pnl = cell(format(p.unrealized_pnl_usdt, 'pnl'), 'num');
    pnl.dataset.cell = 'pnl';
    setSignClass(pnl, p.unrealized_pnl_usdt);
    const mark = cell(format(p.mark_price), 'num');
    mark.dataset.cell = 'mark';
    const stop = cell(format(p.stop_price), 'num stop');
    stop.dataset.cell = 'stop';
    tr.append(cell(p.symbol), side, cell(p.quantity, 'num'), cell(p.entry_price, 'num'), mark, stop,
      targetsCell(p), pnl, cell(format(p.opened_at, 'time').slice(0, 16)));
    return tr;
  }

  function applyPositions(positions) {
    const body = document.querySelector('[data-positions]');
    if (!body) return;
    if (!positions.length) {
      const tr = document.createElement('tr');
      tr.className = 'empty';
      const td = cell('No open positions', 'muted');
      td.colSpan = 9;
      tr.appendChild(td);
      body.replaceChildren(tr);
      return;
    }
    body.replaceChildren(...positions.map(positionRow));
  }

  // --- pending approvals ------------------------------------------------------------
  function actForm(card, act, id, extra) {
    const form = document.createElement('form');
    form.method = 'post';
    form.action = card.dataset[act + 'Url'].replace('/0/', `/${id}/`);
    form.dataset.liveSubmit = '';
    form.dataset.act = act;
    const csrf = card.querySelector('[data-csrf] input[name="csrfmiddlewaretoken"]');
    const next = document.createElement('input');
    Object.assign(next, { type: 'hidden', name: 'next', value: card.dataset.next || '/' });
    form.append(csrf ? csrf.cloneNode() : '', next);
    if (extra) form.append(extra);
    const button = document.createElement('button');
    button.type = 'submit';
    button.className = act === 'approve' ? 'primary' : 'secondary';
    button.textContent = act.charAt(0).toUpperCase() + act.slice(1);
    form.append(button);
    return form;
  }

  function input(attrs) {
    const el = document.createElement('input');
    Object.assign(el, attrs);
    el.setAttribute('aria-label', attrs.ariaLabel);
    return el;
  }

  function small(text) {
    const el = document.createElement('small');
    el.className = 'muted';
    el.textContent = text;
    return el;
  }

  function approvalRow(card, d, canAct) {
    const tr = document.createElement('tr');
    tr.dataset.approvalId = d.id;
    const when = cell('');
    const link = document.createElement('a');
    link.href = card.dataset.approveUrl.replace(/0\/approve\/$/, `${d.id}/`);
    link.textContent = format(d.as_of, 'time').slice(0, 16);
    when.appendChild(link);
    const side = cell('');
    const badge = document.createElement('span');
    badge.className = 'action action-' + d.action.toLowerCase();
    badge.textContent = d.action;
    side.appendChild(badge);
    const what = cell(`${d.symbol} ${d.timeframe}`, 'wrap');
    what.append(document.createElement('br'), small(d.reason));
    const entry = cell(format(d.entry_price), 'num');
    entry.append(document.createElement('br'), small(`${format(d.entry_zone_low)} – ${format(d.entry_zone_high)}`));
    tr.append(when, what, side, entry, cell(format(d.stop_price), 'num stop'),
      cell(format(d.target_price), 'num target'), cell(format(d.quantity), 'num'),
      cell(d.confidence == null ? '—' : Number(d.confidence).toFixed(2), 'num'),
      cell(d.expires_at ? format(d.expires_at, 'time').slice(0, 16) : 'never'));
    if (canAct) {
      const act = cell('', 'act');
      act.append(actForm(card, 'approve', d.id),
        actForm(card, 'reject', d.id, input({ type: 'text', name: 'note', maxLength: 255, placeholder: 'note (optional)',
          ariaLabel: `Note on rejecting decision ${d.id}` })),
        actForm(card, 'snooze', d.id, input({ type: 'number', name: 'minutes', min: 1, max: 1440,
          value: card.dataset.snoozeMinutes, ariaLabel: `Minutes to snooze decision ${d.id}` })));
      tr.appendChild(act);
    }
    return tr;
  }

  function applyApprovals(approvals) {
    const card = document.querySelector('[data-approvals-card]');
    const body = card && card.querySelector('[data-approvals]');
    if (!body) return;
    const shown = [...body.querySelectorAll('[data-approval-id]')].map((tr) => tr.dataset.approvalId).join(',');
    // Re-render only when the queue changed, so a note being typed is not wiped by a price tick.
    if (shown === approvals.map((d) => String(d.id)).join(',')) return;
    const canAct = card.dataset.canAct === '1';
    if (!approvals.length) {
      const tr = document.createElement('tr');
      tr.className = 'empty';
      const td = cell('Nothing waits for approval.', 'muted');
      td.colSpan = canAct ? 10 : 9;
      tr.appendChild(td);
      body.replaceChildren(tr);
      return;
    }
    body.replaceChildren(...approvals.map((d) => approvalRow(card, d, canAct)));
  }

  // Approve / Reject / Snooze without leaving the page: POST the form as the browser would, then
  // show the messages of the page it redirects to; the position arrives over the websocket.
  async function liveSubmit(form) {
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const response = await fetch(form.action, { method: 'POST', body: new FormData(form), credentials: 'same-origin' });
      showMessages(await response.text(), response.status);
    } catch (err) {
      showNotice('error', `Not sent: ${err.message}. Reload the page and try again.`);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      scheduleRefresh();
    }
  }

  function showMessages(html, status) {
    const doc = new DOMParser().parseFromString(html, 'text/html');
    const notices = [...doc.querySelectorAll('[data-messages] .notice')];
    if (notices.length) {
      const box = document.querySelector('[data-messages]');
      if (box) box.replaceChildren(...notices.map((n) => document.importNode(n, true)));
      return;
    }
    if (status >= 400) {
      const reason = doc.querySelector('main p');
      showNotice('error', reason ? reason.textContent : `The server refused (${status}).`);
    }
  }

  function showNotice(level, text) {
    const box = document.querySelector('[data-messages]');
    if (!box) return;
    const p = document.createElement('p');
    p.className = `notice notice-${level}`;
    p.textContent = text;
    box.replaceChildren(p);
  }

  function newerPrice(previous, s) {
    // Price events may be ticks the database never stores; a refresh must not roll them back.
    if (!previous || !previous.price || !s.price || !previous.instrument || !s.instrument) return null;
    if (previous.instrument.id !== s.instrument.id) return null;
    return Date.parse(previous.price.ts) > Date.parse(s.price.ts) ? previous.price : null;
  }

  function applyState(s) {
    const keep = newerPrice(state, s);
    state = s;
    if (keep) {
      s.price = keep;
      repricePositions(s.instrument.id, keep.value);
    }
    applyHeader(s);
    document.querySelectorAll('[data-bind]').forEach((el) => setBound(el, lookup(s, el.dataset.bind)));
    document.querySelectorAll('[data-list]').forEach((el) => applyList(el, lookup(s, el.dataset.list)));
    document.querySelectorAll('[data-show]').forEach((el) => { el.hidden = !lookup(s, el.dataset.show); });
    document.querySelectorAll('[data-meter]').forEach((el) => { el.value = Number(lookup(s, el.dataset.meter) || 0); });
    applyPositions(s.positions || []);
    applyApprovals(s.approvals || []);
  }

  // --- incremental events -----------------------------------------------------------
  function bind(path, value) {
    document.querySelectorAll(`[data-bind="${path}"]`).forEach((el) => { setBound(el, value); flash(el); });
  }

  function pnlAt(p, mark) {
    const direction = p.side === 'LONG' ? 1 : -1;
    return (mark - Number(p.entry_price)) * Number(p.quantity) * Number(p.contract_size || 1) * direction;
  }

  function onPrice(d) {
    if (!state || d.price == null) return;
    const instrumentId = d.instrument_id ?? (state.instrument && state.instrument.id);
    if (state.instrument && instrumentId === state.instrument.id) {
      state.price = { value: d.price, ts: d.ts };
      bind('price.value', d.price);
      bind('price.ts', d.ts);
    }
    if (repricePositions(instrumentId, d.price)) {
      bind('account.unrealized_pnl_usdt', state.account.unrealized_pnl_usdt);
      bind('account.equity_usdt', state.account.equity_usdt);
      applyPositions(state.positions);
    }
  }

  // Unrealised PnL follows the price between the server's own updates (display only).
  function repricePositions(instrumentId, price) {
    let changed = false;
    for (const p of state.positions || []) {
      if (p.instrument_id !== instrumentId) continue;
      p.mark_price = price;
      p.unrealized_pnl_usdt = pnlAt(p, Number(price)).toFixed(2);
      changed = true;
    }
    if (!changed || !state.account) return false;
    const unrealized = state.positions.reduce((sum, p) => sum + Number(p.unrealized_pnl_usdt || 0), 0);
    state.account.unrealized_pnl_usdt = unrealized.toFixed(2);
    state.account.equity_usdt = (Number(state.account.balance_usdt) + unrealized).toFixed(2);
    return true;
  }

  function onEquity(d) {
    if (!state || !state.account || (d.account_id != null && d.account_id !== state.account.id)) return;
    for (const key of ['balance_usdt', 'unrealized_pnl_usdt', 'equity_usdt']) {
      if (d[key] == null) continue;
      state.account[key] = d[key];
      bind('account.' + key, d[key]);
    }
  }

  function feedLine(event, d) {
    const parts = [event.toUpperCase()];
    for (const key of ['action', 'outcome', 'side', 'leg', 'type', 'status', 'quantity', 'price', 'reason']) {
      if (d && d[key] != null && d[key] !== '') parts.push(`${key} ${d[key]}`);
    }
    return parts.join(' · ');
  }

  function addToFeed(event, d) {
    const feed = document.querySelector('[data-feed]');
    if (!feed) return;
    feed.querySelectorAll('.muted').forEach((el) => el.remove());
    const li = document.createElement('li');
    const time = document.createElement('time');
    time.textContent = format(d && d.ts ? d.ts : new Date().toISOString(), 'time').slice(11);
    li.append(time, ' ', feedLine(event, d));
    li.className = 'feed-' + event;
    feed.prepend(li);
    while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    // Coalesce the burst of events one fill produces into a single state request.
    refreshTimer = setTimeout(() => {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'refresh' }));
    }, 250);
  }

  function handle(msg) {
    const { event, data } = msg;
    if (event === 'state') applyState(data);
    else if (event === 'price') onPrice(data);
    else if (event === 'equity') onEquity(data);
    if (FEED_EVENTS.has(event)) addToFeed(event, data);
    if (REFRESH_EVENTS.has(event)) scheduleRefresh();
    document.dispatchEvent(new CustomEvent('live:' + event, { detail: data }));
  }

  // --- connection -------------------------------------------------------------------
  function setConnection(status, label) {
    const el = document.querySelector('[data-conn]');
    if (!el) return;
    el.dataset.conn = status;
    el.querySelector('.conn-label').textContent = label || status;
  }

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    socket = new WebSocket(`${scheme}://${location.host}/ws/live/`);
    setConnection('connecting');
    socket.addEventListener('open', () => { attempt = 0; setConnection('live'); });
    socket.addEventListener('message', (ev) => handle(JSON.parse(ev.data)));
    socket.addEventListener('close', (ev) => {
      if (ev.code === LOGIN_REQUIRED) {
        setConnection('login', 'log in again');
        return;  // retrying cannot help until the user logs in
      }
      // Exponential backoff with jitter so restarted servers are not hit by every tab at once.
      const delay = Math.min(MAX_DELAY_MS, 1000 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt += 1;
      setConnection('offline', `offline, retry in ${Math.round(delay / 1000)} s`);
      setTimeout(connect, delay);
    });
  }

  document.addEventListener('submit', (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || !('liveSubmit' in form.dataset) || !window.fetch) return;
    ev.preventDefault();
    liveSubmit(form);
  });

  document.addEventListener('DOMContentLoaded', () => {
    const conn = document.querySelector('[data-conn]');
    if (conn) {
      conn.addEventListener('click', () => {
        if (conn.dataset.conn === 'login') location.href = document.body.dataset.loginUrl;
      });
    }
    connect();
  });
})();
