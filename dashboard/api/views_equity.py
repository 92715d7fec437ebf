"""The equity curve of an account over a range, LTTB-downsampled to `max_points` (dashboard.selectors)."""
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboard import selectors
from dashboard.api import serializers_trading as s
from dashboard.equity_curve import equity_curve
from dashboard.api.errors import BAD_REQUEST, NOT_FOUND
from dashboard.api.fields import iso_utc, plain


class EquityApi(APIView):
    """GET one account's equity and drawdown over [start, end], at most `max_points` points."""

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
        # 1,000 points field by field takes 50-100 ms; the points come formatted with the curve.
        return Response({
            "account": {"id": account.pk, "name": account.name, "broker": account.broker},
            "start": iso_utc(start), "end": iso_utc(end), "downsampled": curve.series.downsampled,
            "peak_equity_usdt": plain(curve.series.peak_equity_usdt), "points": curve.points,
        })
