from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError

from decisions.models import TradingConfig
from decisions.services import snapshot_params


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
    form = {f.name: ("" if getattr(config, f.name) is None else getattr(config, f.name))
            for f in TradingConfig._meta.fields if f.editable and f.name != "id"}
    form.update(mtf_weight_1w="0.50")

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
    form = {f.name: ("" if getattr(config, f.name) is None else getattr(config, f.name))
            for f in TradingConfig._meta.fields if f.editable and f.name != "id"}
    form.update(mode="ON", risk_per_trade_fraction="0.01")

    assert admin_client.post(url, form).status_code == 302

    records = {r.kind: r for r in AuditRecord.objects.all()}
    assert records["mode_change"].body == {"mode": {"from": "SAFE", "to": "ON"}}
    assert records["limit_change"].body["risk_per_trade_fraction"] == {"from": "0.00500", "to": "0.01"}
    assert {r.actor for r in records.values()} == {"admin"}
