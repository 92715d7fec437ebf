// Admin index badge: mode, open positions and health over ws/live/, the dashboard's live socket.
// The consumer sends the whole state on every (re)connect; "health" events carry a summary;
// events that change positions ask for a fresh state, as the dashboard's live.js does.
(function () {
  'use strict';

  const LOGIN_REQUIRED = 4401;
  const MAX_DELAY_MS = 30000;
  const REFRESH_EVENTS = new Set(['position', 'order', 'fill', 'status', 'decision']);

  let socket = null;
  let attempt = 0;
  let refreshTimer = null;

  function part(badge, name) {
    return badge.querySelector(`[data-badge="${name}"]`);
  }

  function setValue(el, text) {
    el.querySelector('[data-badge-value]').textContent = text;
  }

  function applyHealth(badge, health) {
    if (!health) return;
    const el = part(badge, 'health');
    const state = health.ok === true ? 'health-ok' : health.ok === false ? 'health-failing' : 'health-unknown';
    el.className = 'live-badge-item ' + state;
    setValue(el, health.label);
    el.title = health.failing_names && health.failing_names.length
      ? 'Failing: ' + health.failing_names.join(', ') : 'Last stored self-test';
  }

  function applyState(badge, s) {
    const mode = part(badge, 'mode');
    mode.className = 'live-badge-item mode-' + String(s.mode).toLowerCase();
    setValue(mode, s.mode + (s.paused ? ' (paused)' : ''));
    mode.title = s.mode_label || 'Router mode';
    setValue(part(badge, 'positions'), String((s.positions || []).length));
    applyHealth(badge, s.health);
  }

  function setConnection(badge, text) {
    part(badge, 'conn').textContent = text;
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'refresh' }));
    }, 250);
  }

  function handle(badge, msg) {
    if (msg.event === 'state') applyState(badge, msg.data);
    else if (msg.event === 'health') applyHealth(badge, msg.data.summary);
    else if (REFRESH_EVENTS.has(msg.event)) scheduleRefresh();
  }

  function connect(badge) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    socket = new WebSocket(`${scheme}://${location.host}/ws/live/`);
    setConnection(badge, 'connecting…');
    socket.addEventListener('open', () => { attempt = 0; setConnection(badge, 'live'); });
    socket.addEventListener('message', (ev) => handle(badge, JSON.parse(ev.data)));
    socket.addEventListener('close', (ev) => {
      if (ev.code === LOGIN_REQUIRED) {
        setConnection(badge, 'log in again');
        return;
      }
      const delay = Math.min(MAX_DELAY_MS, 1000 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt += 1;
      setConnection(badge, `offline, retry in ${Math.round(delay / 1000)} s`);
      setTimeout(() => connect(badge), delay);
    });
  }

  document.addEventListener('DOMContentLoaded', () => {
    const badge = document.querySelector('[data-live-badge]');
    if (badge) connect(badge);
  });
})();
