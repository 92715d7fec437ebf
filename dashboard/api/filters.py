"""Query filters of the list endpoints (django-filter): symbol, ids, choices and time ranges.

A bad filter value answers 400 naming the parameter (django-filter validates before querying).
`start` and `end` are ISO-8601 and inclusive; a time without an offset is UTC.
"""
from django.db.models import Q
from django_filters import rest_framework as filters
from rest_framework.filters import OrderingFilter

from analytics.models import Flow, Snapshot
from decisions.models import Action, Decision
from execution.models import Account, BacktestRun, Fill, Order, Position
from market.models import Candle, DataSource, DerivativesKind, DerivativesSample, Instrument, Timeframe

SYMBOL_HELP = "venue symbol (BTCUSDT) or ccxt symbol (BTC/USDT:USDT), case-insensitive"


class FilterBackend(filters.DjangoFilterBackend):
    """DjangoFilterBackend that does not build the FilterSet when the query names none of its filters.

    Building one (a deep copy of every filter, then a form) costs about a millisecond a request,
    and with no filter asked for and none required it returns the queryset unchanged: a script
    reading `?limit=50&offset=100` pays nothing for it.
    """

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None and not _filters_asked(filterset_class, request.query_params):
            return queryset
        return super().filter_queryset(request, queryset, view)


def _filters_asked(filterset_class, params) -> bool:
    # A required filter must run (it answers 400 when missing); a parameter starting with a filter's
    # name may belong to it (range widgets add suffixes such as _after).
    base = filterset_class.base_filters
    return any(f.extra.get("required") for f in base.values()) or any(
        key.startswith(name) for key in params for name in base)


# The filter backends of the API's list views: the project's default pair, the first one leaner.
FILTER_BACKENDS = (FilterBackend, OrderingFilter)


def instrument_for_symbol(symbol: str, data_source: str = "") -> Instrument | None:
    """Return the instrument a symbol names: the active one first when several sources hold it."""
    rows = Instrument.objects.filter(Q(exchange_symbol__iexact=symbol) | Q(symbol__iexact=symbol))
    if data_source:
        rows = rows.filter(data_source=data_source)
    return rows.order_by("-is_active", "pk").first()


def _by_symbol(queryset, symbol: str, field: str = "instrument"):
    instrument = instrument_for_symbol(symbol)
    return queryset.none() if instrument is None else queryset.filter(**{field: instrument})


class SymbolFilterSet(filters.FilterSet):
    """Narrow to one instrument by id or by symbol."""

    instrument = filters.ModelChoiceFilter(queryset=Instrument.objects.all(), help_text="instrument id")
    symbol = filters.CharFilter(method="filter_symbol", help_text=SYMBOL_HELP)

    def filter_symbol(self, queryset, name, value):
        return _by_symbol(queryset, value)


def time_range(field: str) -> tuple[filters.IsoDateTimeFilter, filters.IsoDateTimeFilter]:
    """Return the inclusive `start` / `end` filters on `field`."""
    return (filters.IsoDateTimeFilter(field_name=field, lookup_expr="gte", help_text=f"{field} >= start (ISO-8601)"),
            filters.IsoDateTimeFilter(field_name=field, lookup_expr="lte", help_text=f"{field} <= end (ISO-8601)"))


class InstrumentFilter(filters.FilterSet):
    symbol = filters.CharFilter(method="filter_symbol", help_text=SYMBOL_HELP)

    class Meta:
        model = Instrument
        fields = ("exchange", "data_source", "market_type", "is_active")

    def filter_symbol(self, queryset, name, value):
        return queryset.filter(Q(exchange_symbol__iexact=value) | Q(symbol__iexact=value))


class CandleFilter(filters.FilterSet):
    """Candles of one instrument and timeframe: both required, so a page never mixes two series."""

    symbol = filters.CharFilter(method="filter_symbol", required=True, help_text=SYMBOL_HELP)
    data_source = filters.ChoiceFilter(choices=DataSource.choices, method="filter_noop",
                                       help_text="pick the series of this source when several hold the symbol")
    timeframe = filters.ChoiceFilter(choices=Timeframe.choices, required=True)
    start, end = time_range("open_time")

    class Meta:
        model = Candle
        fields = ("symbol", "data_source", "timeframe", "start", "end")

    def filter_noop(self, queryset, name, value):
        return queryset  # read by filter_symbol

    def filter_symbol(self, queryset, name, value):
        instrument = instrument_for_symbol(value, self.form.cleaned_data.get("data_source") or "")
        return queryset.none() if instrument is None else queryset.filter(instrument=instrument)


class DerivativesFilter(SymbolFilterSet):
    kind = filters.ChoiceFilter(choices=DerivativesKind.choices)
    start, end = time_range("ts")

    class Meta:
        model = DerivativesSample
        fields = ("instrument", "symbol", "kind", "period", "start", "end")


class SnapshotFilter(SymbolFilterSet):
    timeframe = filters.ChoiceFilter(choices=Timeframe.choices)
    start, end = time_range("as_of")

    class Meta:
        model = Snapshot
        fields = ("instrument", "symbol", "timeframe", "start", "end")


class FlowFilter(SymbolFilterSet):
    start, end = time_range("as_of")

    class Meta:
        model = Flow
        fields = ("instrument", "symbol", "start", "end")


class DecisionFilter(SymbolFilterSet):
    outcome = filters.ChoiceFilter(choices=Decision.Outcome.choices)
    action = filters.ChoiceFilter(choices=Action.choices)
    timeframe = filters.ChoiceFilter(choices=Timeframe.choices)
    start, end = time_range("as_of")

    class Meta:
        model = Decision
        fields = ("instrument", "symbol", "outcome", "action", "timeframe", "approval", "start", "end")


class OrderFilter(SymbolFilterSet):
    state = filters.ChoiceFilter(field_name="status", choices=Order.Status.choices, help_text="order state")
    account = filters.ModelChoiceFilter(queryset=Account.objects.all(), help_text="account id")
    start, end = time_range("created_at")

    class Meta:
        model = Order
        fields = ("instrument", "symbol", "account", "state", "decision", "leg", "start", "end")


class FillFilter(filters.FilterSet):
    account = filters.ModelChoiceFilter(field_name="order__account", queryset=Account.objects.all(),
                                        help_text="account id")
    instrument = filters.ModelChoiceFilter(field_name="order__instrument", queryset=Instrument.objects.all(),
                                           help_text="instrument id")
    symbol = filters.CharFilter(method="filter_symbol", help_text=SYMBOL_HELP)
    start, end = time_range("ts")

    class Meta:
        model = Fill
        fields = ("order", "account", "instrument", "symbol", "start", "end")

    def filter_symbol(self, queryset, name, value):
        return _by_symbol(queryset, value, "order__instrument")


class PositionFilter(SymbolFilterSet):
    status = filters.ChoiceFilter(choices=Position.Status.choices, help_text="open or closed")
    account = filters.ModelChoiceFilter(queryset=Account.objects.all(), help_text="account id")
    start, end = time_range("opened_at")

    class Meta:
        model = Position
        fields = ("instrument", "symbol", "account", "status", "start", "end")


class BacktestFilter(SymbolFilterSet):
    status = filters.ChoiceFilter(choices=BacktestRun.Status.choices)
    kind = filters.ChoiceFilter(choices=BacktestRun.Kind.choices)

    class Meta:
        model = BacktestRun
        fields = ("instrument", "symbol", "status", "kind", "parent")
