from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError

from decisions.models import TradingConfig
from decisions.params import snapshot_params


def _form(config: TradingConfig) -> dict:
    """Return the admin change form's data for `config` as it stands."""
    return {f.name: ("" if getattr(config, f.name) is None else getattr(config, f.name))
            for f in TradingConfig._meta.fields if f.editable and f.name != "id"}


def test_trading_config_mtf_weights_must_sum_to_one():
    config = TradingConfig(mtf_weight_15m=D("0.5"))

    with pytest.raises(ValidationError, match="must sum to 1, they sum to 1.1"):
        config.clean()


def test_trading_config_default_mtf_weights_reach_the_snapshot():
    params = snapshot_params(TradingConfig())

    assert (params.mtf.weights.m15, params.mtf.weights.w1) == (0.40, 0.05)


@pytest.mark.django_db
def test_admin_rejects_weights_not_summing_to_one(admin_client):
    config = TradingConfig.objects.create()
    url = f"/admin/decisions/tradingconfig/{config.pk}/change/"
    form = _form(config)
    form.update(mtf_weight_1w="0.50", change_reason="try")

    response = admin_client.post(url, form)

    assert response.status_code == 200
    assert "must sum to 1" in response.content.decode()
    config.refresh_from_db()
    assert config.mtf_weight_1w == D("0.05")


@pytest.mark.django_db
def test_admin_mode_and_limit_changes_are_audited_with_actor(admin_client):
    from decisions.models import AuditRecord

    config = TradingConfig.objects.create()
    url = f"/admin/decisions/tradingconfig/{config.pk}/change/"
    form = _form(config)
    form.update(mode="ON", risk_per_trade_fraction="0.01", change_reason="go live on paper")

    assert admin_client.post(url, form).status_code == 302

    records = {r.kind: r for r in AuditRecord.objects.all()}
    assert records["mode_change"].body == {"mode": {"from": "SAFE", "to": "ON"}, "reason": "go live on paper",
                                           "config_version": 2}
    assert records["limit_change"].body["risk_per_trade_fraction"] == {"from": "0.00500", "to": "0.01"}
    assert {r.actor for r in records.values()} == {"admin"}


@pytest.mark.django_db
def test_admin_change_needs_a_reason_and_raises_the_version(admin_client):
    config = TradingConfig.objects.create()
    url = f"/admin/decisions/tradingconfig/{config.pk}/change/"
    form = _form(config)
    form.update(max_trades_per_day=5)

    assert admin_client.post(url, form).status_code == 200  # no reason: refused
    assert admin_client.post(url, {**form, "change_reason": "busy day"}).status_code == 302

    config.refresh_from_db()
    assert (config.max_trades_per_day, config.version) == (5, 2)


@pytest.mark.django_db
def test_admin_rejects_invalid_limit_with_the_field_named(admin_client):
    config = TradingConfig.objects.create()
    url = f"/admin/decisions/tradingconfig/{config.pk}/change/"
    form = _form(config)
    form.update(risk_timezone="Mars/Olympus", change_reason="x")

    body = admin_client.post(url, form).content.decode()

    assert "unknown zone" in body
    config.refresh_from_db()
    assert config.risk_timezone == "Europe/Warsaw"


def test_risk_limits_for_uses_every_admin_field():
    from decisions.risk_state import risk_limits_for

    limits = risk_limits_for(TradingConfig(max_trades_per_day=7, risk_timezone="UTC"))

    assert (limits.max_trades_per_day, limits.timezone, limits.daily_loss_fraction) == (7, "UTC", D("0.02"))


# The strategies, edge, fusion and structure fields (docs/DECISIONS.md) are validated by clean().
@pytest.mark.parametrize("changes, field, message", [
    ({"strategies": "rules,macd"}, "strategies", "unknown strategy 'macd'"),
    ({"strategy_aggregation": "median"}, "strategies", "unknown aggregation 'median'"),
    ({"strategy_weights": {"rsi": 1}}, "strategies", "weight for 'rsi', which is not among the strategies"),
    ({"strategies": "rules,rsi", "strategy_weights": {"rsi": -1}}, "strategies", "must be a number >= 0"),
    ({"edge_weight_obi": D("0.30")}, "edge_weight_obi", "edge weights must sum to 1, they sum to 1.15"),
    ({"fusion_model_weight": D("0.45")}, "fusion_model_weight", "fusion weights must sum to 1, they sum to 1.1"),
    ({"structure_timeframes": "5m,7m"}, "structure_timeframes", "unknown timeframe '7m'"),
])
def test_trading_config_packet_fields_refused_with_the_field_named(changes, field, message):
    config = TradingConfig(**changes)

    with pytest.raises(ValidationError, match=message) as caught:
        config.clean()

    assert field in caught.value.message_dict


def test_trading_config_packet_defaults_reach_the_core():
    from decisions.params import packet_params

    params = packet_params(TradingConfig())

    assert [s.name for s in params.strategies] == ["rules"] and params.aggregation == "first"
    assert params.edge.threshold == 0.62 and params.edge.weights.fvg == 0.20
    assert (params.fusion.technical, params.fusion.model) == (0.65, 0.35)
    assert params.rules.structure_timeframes == ("5m",)  # 15m is the decision timeframe itself
