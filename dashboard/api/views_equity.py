"""The equity curve of an account over a range, LTTB-downsampled to `max_points` (dashboard.selectors)."""
import threading
from collections import OrderedDict

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboard import selectors
from dashboard.api import serializers_trading as s
from dashboard.api.errors import BAD_REQUEST, NOT_FOUND
from dashboard.api.fields import iso_utc, plain
from dashboard.api.rendering import RENDERERS, RawJSON
from dashboard.equity_curve import CACHE_RANGES, CURVES_PER_RANGE, Curve, equity_curve

# Rendered points per computed curve, as many as dashboard.equity_curve keeps per process.
RENDERED_CURVES = CACHE_RANGES * CURVES_PER_RANGE
_rendered: OrderedDict[int, tuple[Curve, RawJSON]] = OrderedDict()
_rendered_lock = threading.Lock()


class EquityApi(APIView):
    """GET one account's equity and drawdown over [start, end], at most `max_points` points."""

    renderer_classes = RENDERERS

    @extend_schema(summary="Equity curve, downsampled", parameters=[s.EquityQuerySerializer],
                   responses={200: s.EquitySerializer, 400: BAD_REQUEST, 404: NOT_FOUND})
    def get(self, request):
        query = s.EquityQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        account = data.get("account") or selectors.account_default()
        if account is None:
            raise NotFound("no account exists yet")
        start, end = data.get("start"), data.get("end")
        curve = equity_curve(account, start, end, data["max_points"])
        # Built by hand, not through EquitySerializer (which only documents it): serializing
        # 1,000 points field by field takes 50-100 ms; the points come formatted with the curve
        # and are rendered to JSON once per curve.
        return Response({
            "account": {"id": account.pk, "name": account.name, "broker": account.broker},
            "start": iso_utc(start), "end": iso_utc(end), "downsampled": curve.series.downsampled,
            "peak_equity_usdt": plain(curve.series.peak_equity_usdt), "points": points_json(curve),
        })


def points_json(curve: Curve) -> RawJSON:
    """Return the curve's points as JSON text, rendered once per computed curve (about 4 ms for 1,000)."""
    with _rendered_lock:
        entry = _rendered.get(id(curve))
        if entry is not None and entry[0] is curve:
            _rendered.move_to_end(id(curve))
            return entry[1]
    # Rendered as JSONRenderer renders a response, so the spliced bytes are the ones it would write.
    rendered = RawJSON(JSONRenderer().render(curve.points).decode())
    with _rendered_lock:
        # Keyed by identity: the entry holds the curve, so its id is not reused while it is here.
        _rendered[id(curve)] = (curve, rendered)
        while len(_rendered) > RENDERED_CURVES:
            _rendered.popitem(last=False)
    return rendered
