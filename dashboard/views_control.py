"""Control page: mode switch, pause / resume / stop and the kill switch, every action audited.

Everyone signed in reads the page; acting needs an operator, and HYBRID or ON an admin (the views
check roles, decisions.control does the work, audits and broadcasts). Going ON and the kill
switch take two POSTs to the same address: the first answers with a page saying exactly what will
happen and a one-time token (dashboard.control_confirm), the second carries the token and acts.
"""
from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dashboard import roles, selectors
from dashboard.control_confirm import CONFIRM_TTL, ConfirmRefused, confirm_issue, confirm_take
from dashboard.views_decisions import plain
from decisions import control
from decisions.models import AuditRecord, Mode
from execution.models import Account, Order, Position
from execution.order_states import LIVE_STATES
from execution.reconciliation import trading_enabled

# Who may switch to each mode: SAFE only makes the bot do less, HYBRID and ON let it trade.
MODE_ROLE = {Mode.SAFE: roles.OPERATOR, Mode.HYBRID: roles.ADMIN, Mode.ON: roles.ADMIN}
RECENT_ACTIONS = 10

operator_required = roles.role_required(roles.OPERATOR, "pause, resume, stop, switch to SAFE or use the kill switch")


class ModeForm(forms.Form):
    mode = forms.ChoiceField(choices=Mode.choices)
    reason = forms.CharField(max_length=255, error_messages={"required": "say why: the reason is audited"})


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=255, required=False)


class KillForm(forms.Form):
    reason = forms.CharField(max_length=255, error_messages={"required": "say why: the reason is audited"})


def _accounts() -> list[dict]:
    rows = []
    for account in Account.objects.order_by("pk"):
        enabled, why = trading_enabled(account)
        rows.append({"account": account, "trading_enabled": enabled, "trading_why": why,
                     "positions": Position.objects.filter(account=account, status=Position.Status.OPEN).count(),
                     "orders": Order.objects.filter(account=account, status__in=LIVE_STATES).count(),
                     "entries": control.entries_working(account).count()})
    return rows


def _recent_actions() -> list[dict]:
    """Return the latest mode, pause and account-wide actions from the audit chain, newest first."""
    rows = AuditRecord.objects.filter(kind=AuditRecord.Kind.MODE_CHANGE) | AuditRecord.objects.filter(
        kind=AuditRecord.Kind.ORDER, subject__startswith="account:")
    return [{"record": r, "body": json.dumps(r.body, sort_keys=True)} for r in rows.order_by("-seq")[:RECENT_ACTIONS]]


def _context(request) -> dict:
    config = selectors.trading_config()
    accounts = _accounts()
    entries = sum(row["entries"] for row in accounts)
    return {
        "header": selectors.header_state(config),
        "config": config,
        "stopped": config.paused and entries == 0,
        "working_entries": entries,
        "accounts": accounts,
        "recent": _recent_actions(),
        "modes": [{"value": value, "label": label, "allowed": roles.has_role(request.user, MODE_ROLE[value])}
                  for value, label in Mode.choices],
        "can_operate": roles.has_role(request.user, roles.OPERATOR),
        "can_admin": roles.has_role(request.user, roles.ADMIN),
    }


@login_required
@require_GET
def control_page(request):
    """Render mode, pause state, accounts and brokers, the control forms and the latest control actions."""
    return render(request, "dashboard/control.html", _context(request))


def _actor(request) -> str:
    return request.user.get_username()


def _errors(form: forms.Form) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" if name != "__all__" else " ".join(errs)
                     for name, errs in form.errors.items())


def _back(request, level: int, text: str):
    messages.add_message(request, level, text)
    return redirect("dashboard:control")


def _confirm_page(request, *, action: str, url: str, params: dict, title: str, summary: list[str], extra=None):
    token = confirm_issue(request, action=action, params=params, now=timezone.now())
    context = {"header": selectors.header_state(), "title": title, "summary": summary, "token": token, "url": url,
               "params": params, "ttl_minutes": CONFIRM_TTL.seconds // 60, **(extra or {})}
    return render(request, "dashboard/control_confirm.html", context)


@login_required
@require_POST
@operator_required
def mode_switch(request):
    """Switch the mode; HYBRID and ON need an admin, and ON a confirmation (a second POST with the token)."""
    now = timezone.now()
    if request.POST.get("token"):
        try:
            params = confirm_take(request, token=request.POST["token"], action="mode", now=now)
        except ConfirmRefused as exc:
            return _back(request, messages.ERROR, f"Mode not changed: {exc}.")
        return _mode_apply(request, params["mode"], params["reason"])
    form = ModeForm(request.POST)
    if not form.is_valid():
        return _back(request, messages.ERROR, f"Mode not changed: {_errors(form)}.")
    mode, reason = form.cleaned_data["mode"], form.cleaned_data["reason"]
    _role_check(request, mode)
    if mode == Mode.ON and selectors.trading_config().mode != Mode.ON:
        return _confirm_page(request, action="mode", url="dashboard:control-mode",
                             params={"mode": mode, "reason": reason}, title="Switch to ON",
                             summary=_on_summary())
    return _mode_apply(request, mode, reason)


def _role_check(request, mode: str) -> None:
    if not roles.has_role(request.user, MODE_ROLE[mode]):
        raise PermissionDenied(roles.refusal(MODE_ROLE[mode], f"switch the mode to {mode}"))


def _mode_apply(request, mode: str, reason: str):
    _role_check(request, mode)  # again at confirmation: a role may have been taken away meanwhile
    before = selectors.trading_config().mode
    try:
        config = control.mode_set(mode=mode, actor=_actor(request), now=timezone.now(), reason=reason)
    except control.ControlRefused as exc:
        return _back(request, messages.ERROR, f"Mode not changed: {exc}.")
    if before == mode:
        return _back(request, messages.INFO, f"Mode was already {mode}; nothing changed.")
    return _back(request, messages.SUCCESS, f"Mode switched from {before} to {mode} (configuration version "
                                            f"{config.version}).")


def _on_summary() -> list[str]:
    config = selectors.trading_config()
    lines = [f"Orders will be sent without approval to {_brokers_text()} for every decision the gates allow.",
             f"Risk per trade {config.risk_per_trade_fraction:.2%}, daily loss limit "
             f"{config.daily_loss_limit_fraction:.2%}, max leverage {config.max_leverage}x."]
    if config.paused:
        lines.append("The bot is paused: nothing is opened until it is resumed.")
    now = timezone.now()
    if config.effective_mode(now) != config.mode:
        lines.append(f"The daily-loss circuit breaker holds SAFE until {config.safe_until:%Y-%m-%d %H:%M} UTC.")
    return lines


def _brokers_text() -> str:
    accounts = list(Account.objects.order_by("pk"))
    if not accounts:
        return f"the {selectors.header_state()['broker']} broker (no account yet)"
    return ", ".join(f"{a.name} ({a.broker.upper()})" for a in accounts)


def _reason_run(request, service):
    """Run a pause, resume or stop service with the form's reason; return its result, or None after an error."""
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Nothing done: {_errors(form)}.")
        return None
    try:
        return service(actor=_actor(request), now=timezone.now(), reason=form.cleaned_data["reason"])
    except control.ControlRefused as exc:
        messages.error(request, f"Nothing done: {exc}.")
        return None


@login_required
@require_POST
@operator_required
def pause(request):
    """Pause: no new position is opened; working entries and exits carry on."""
    was = selectors.trading_config().paused
    if _reason_run(request, control.bot_pause) is None:
        return redirect("dashboard:control")
    if was:
        return _back(request, messages.INFO, "Already paused; nothing changed.")
    return _back(request, messages.SUCCESS, "Paused: no new positions until resumed.")


@login_required
@require_POST
@operator_required
def resume(request):
    """Resume after a pause, a stop or the kill switch; the mode stays as it is."""
    was = selectors.trading_config().paused
    config = _reason_run(request, control.bot_resume)
    if config is None:
        return redirect("dashboard:control")
    text = "Resumed: the bot may open positions again." if was else "Not paused; nothing changed."
    if config.mode == Mode.SAFE:
        text += " The mode is SAFE: decisions are only logged."
    return _back(request, messages.SUCCESS if was else messages.INFO, text)


@login_required
@require_POST
@operator_required
def stop(request):
    """Stop: pause and cancel every working entry order; open positions keep their stops."""
    report = _reason_run(request, control.bot_stop)
    if report is None:
        return redirect("dashboard:control")
    text = (f"Stopped: paused, {len(report.cancelled)} working entry order(s) cancelled; open positions keep "
            "their stops. Resume to trade again.")
    if report.errors:
        return _back(request, messages.ERROR, f"{text} Failed: {'; '.join(report.errors)}")
    return _back(request, messages.SUCCESS, text)


@login_required
@require_POST
@operator_required
def kill(request):
    """Kill switch: after a confirmation, cancel all orders, close all positions, go SAFE and pause."""
    if request.POST.get("token"):
        try:
            params = confirm_take(request, token=request.POST["token"], action="kill", now=timezone.now())
        except ConfirmRefused as exc:
            return _back(request, messages.ERROR, f"Kill switch not used: {exc}.")
        return _kill_apply(request, params["reason"])
    form = KillForm(request.POST)
    if not form.is_valid():
        return _back(request, messages.ERROR, f"Kill switch not used: {_errors(form)}.")
    return _confirm_page(request, action="kill", url="dashboard:control-kill", params=form.cleaned_data,
                         title="Kill switch", summary=["Every order of ours is cancelled, every open position is "
                                                       "closed at market, the mode becomes SAFE and the bot is "
                                                       "paused."],
                         extra={"kill": _kill_summary()})


def _kill_summary() -> list[dict]:
    """Return, per account, the working orders the kill switch cancels and the positions it closes."""
    rows = []
    for account in Account.objects.order_by("pk"):
        orders = (Order.objects.filter(account=account, status__in=LIVE_STATES).select_related("instrument")
                  .order_by("created_at", "pk"))
        positions = (Position.objects.filter(account=account, status=Position.Status.OPEN)
                     .select_related("instrument").order_by("opened_at"))
        rows.append({"account": account,
                     "orders": [{"order": o, "quantity": plain(o.quantity),
                                 "price": plain(o.price or o.trigger_price) or "market"} for o in orders],
                     "positions": [{"position": p, "quantity": plain(p.quantity), "entry": plain(p.entry_price),
                                    "stop": plain(p.stop_price) or "—"} for p in positions]})
    return rows


def _kill_apply(request, reason: str):
    try:
        results = control.kill_switch_all(actor=_actor(request), now=timezone.now(), reason=reason)
    except control.ControlRefused as exc:
        return _back(request, messages.ERROR, f"Kill switch not used: {exc}.")
    done = "; ".join(f"{r.account}: {len(r.cancelled)} order(s) cancelled, {len(r.flattened)} position(s) closed"
                     for r in results) or "no account"
    errors = [f"{r.account}: {e}" for r in results for e in r.errors]
    text = f"Kill switch used ({done}). Mode SAFE, paused."
    if errors:
        return _back(request, messages.ERROR, f"{text} Failed, check the venue by hand: {'; '.join(errors)}")
    return _back(request, messages.SUCCESS, text)
