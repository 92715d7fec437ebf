"""Request parameters (strings, as Binance receives them) turned into typed order requests.

Precision is checked on the text the client sent, as Binance does: more decimals than the symbol's
pricePrecision/quantityPrecision is -1111, a price off the tick is -4014.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from execution.emulator import errors
from execution.emulator.symbols import SymbolSpec, spec_for

ORDER_TYPES = frozenset({"LIMIT", "MARKET"})
ALGO_TYPES = frozenset({"STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET"})
TIME_IN_FORCE = frozenset({"GTC", "IOC", "GTX", "FOK"})
WORKING_TYPES = frozenset({"MARK_PRICE", "CONTRACT_PRICE"})
CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
NUMBER = re.compile(r"^-?([0-9]{1,20})(\.[0-9]{1,20})?$")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal
    time_in_force: str
    reduce_only: bool
    position_side: str | None
    client_order_id: str | None


@dataclass(frozen=True, slots=True)
class AlgoRequest:
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    price: Decimal
    trigger_price: Decimal
    time_in_force: str
    working_type: str
    reduce_only: bool
    close_position: bool
    position_side: str | None
    client_algo_id: str | None
    activate_price: Decimal
    callback_rate: Decimal
    price_protect: bool


def required(params: dict, name: str) -> str:
    """Return a mandatory parameter; raise -1102 when it is absent or empty."""
    value = params.get(name)
    if value in (None, ""):
        raise errors.mandatory_missing(name)
    return value


def boolean(params: dict, name: str) -> bool:
    value = str(params.get(name, "false")).lower()
    if value not in ("true", "false"):
        raise errors.invalid_value(name)
    return value == "true"


def number(params: dict, name: str, places: int | None = None) -> Decimal:
    """Return a decimal parameter (0 when absent); raise -1100 for junk, -1111 for too many decimals."""
    text = params.get(name)
    if text in (None, ""):
        return Decimal(0)
    if not NUMBER.match(str(text)):
        raise errors.BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                         "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    try:
        value = Decimal(str(text))
    except InvalidOperation as exc:  # pragma: no cover - NUMBER already rules this out
        raise errors.invalid_value(name) from exc
    if places is not None and -value.normalize().as_tuple().exponent > places:
        raise errors.precision_over_maximum()
    return value


def _price(params: dict, name: str, spec: SymbolSpec) -> Decimal:
    value = number(params, name, spec.price_precision)
    if value and value % spec.tick_size:
        raise errors.price_not_on_tick()
    return value


def _quantity(params: dict, spec: SymbolSpec, *, needed: bool) -> Decimal:
    if needed:
        required(params, "quantity")
    value = number(params, "quantity", spec.quantity_precision)
    if needed and value <= 0:
        raise errors.quantity_not_positive()
    if value % spec.step_size:
        raise errors.precision_over_maximum()
    return value


def _side(params: dict) -> str:
    side = required(params, "side")
    if side not in ("BUY", "SELL"):
        raise errors.invalid_value("side")
    return side


def _client_id(params: dict, *names: str) -> str | None:
    for name in names:
        value = params.get(name)
        if value:
            if not CLIENT_ID.match(value):
                raise errors.client_id_invalid()
            return value
    return None


def _position_side(params: dict) -> str | None:
    value = params.get("positionSide")
    if value is not None and value not in ("BOTH", "LONG", "SHORT"):
        raise errors.invalid_value("positionSide")
    return value


def order_request(params: dict) -> OrderRequest:
    """Return the typed New Order request; raise BinanceError for a malformed one."""
    spec = spec_for(required(params, "symbol"))
    side = _side(params)
    order_type = required(params, "type")
    if order_type in ALGO_TYPES:
        # Since 2025-12-09 conditional types go to /fapi/v1/algoOrder; /fapi/v1/order refuses them.
        raise errors.BinanceError(-4120, "Order type not supported for this endpoint. Please use the Algo Order "
                                         "API endpoints instead.")
    if order_type not in ORDER_TYPES:
        raise errors.invalid_value("type")
    is_limit = order_type == "LIMIT"
    time_in_force = required(params, "timeInForce") if is_limit else params.get("timeInForce", "GTC")
    if time_in_force not in TIME_IN_FORCE:
        raise errors.invalid_value("timeInForce")
    price = _price(params, "price", spec)
    if is_limit and price <= 0:
        raise errors.mandatory_missing("price")
    return OrderRequest(
        symbol=spec.symbol, side=side, type=order_type, quantity=_quantity(params, spec, needed=True),
        price=price if is_limit else Decimal(0), time_in_force=time_in_force,
        reduce_only=boolean(params, "reduceOnly"), position_side=_position_side(params),
        client_order_id=_client_id(params, "newClientOrderId"),
    )


def algo_request(params: dict) -> AlgoRequest:
    """Return the typed New Algo Order request; raise BinanceError for a malformed one."""
    if required(params, "algoType") != "CONDITIONAL":
        raise errors.invalid_value("algoType")
    spec = spec_for(required(params, "symbol"))
    order_type = required(params, "type")
    if order_type not in ALGO_TYPES:
        raise errors.invalid_value("type")
    close_position = boolean(params, "closePosition")
    reduce_only = boolean(params, "reduceOnly")
    if close_position and params.get("quantity"):
        raise errors.parameter_not_required("quantity")
    if close_position and reduce_only:
        raise errors.parameter_not_required("reduceOnly")
    trailing = order_type == "TRAILING_STOP_MARKET"
    trigger_price = Decimal(0) if trailing else _price(params, "triggerPrice", spec)
    if not trailing and trigger_price <= 0:
        raise errors.mandatory_missing("triggerPrice")
    price = _price(params, "price", spec)
    if order_type in ("STOP", "TAKE_PROFIT") and price <= 0:
        raise errors.mandatory_missing("price")
    callback_rate = number(params, "callbackRate") if trailing else Decimal(0)
    if trailing and not Decimal("0.1") <= callback_rate <= Decimal("10"):
        raise errors.BinanceError(-2007, "Invalid callBackRate.")
    working_type = params.get("workingType", "CONTRACT_PRICE")
    if working_type not in WORKING_TYPES:
        raise errors.invalid_value("workingType")
    return AlgoRequest(
        symbol=spec.symbol, side=_side(params), order_type=order_type,
        quantity=_quantity(params, spec, needed=not close_position), price=price, trigger_price=trigger_price,
        time_in_force=params.get("timeInForce", "GTC"), working_type=working_type, reduce_only=reduce_only,
        close_position=close_position, position_side=_position_side(params),
        # ccxt >= 4.5.8x sends clientAlgoId; older recordings sent newClientOrderId to this endpoint.
        client_algo_id=_client_id(params, "clientAlgoId", "newClientOrderId"),
        activate_price=_price(params, "activatePrice", spec), callback_rate=callback_rate,
        price_protect=boolean(params, "priceProtect"),
    )
