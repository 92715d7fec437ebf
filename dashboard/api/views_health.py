"""The platform's self-test for scripts: the same report as the dashboard's Health page."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView


class CheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    group = serializers.CharField(help_text="database, channels, workers, exchange, data or reconciliation")
    ok = serializers.BooleanField()
    detail = serializers.CharField()
    checked_at = serializers.DateTimeField()
    latency_ms = serializers.FloatField(allow_null=True)


class HealthSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="every check passed")
    checked_at = serializers.DateTimeField()
    failing = serializers.IntegerField()
    failing_names = serializers.ListField(child=serializers.CharField())
    checks = CheckSerializer(many=True)


class HealthApi(APIView):
    """GET the health report: database, channel layer, workers, exchange, data freshness, reconciliation."""

    @extend_schema(summary="Health report: every check with its verdict", responses={200: HealthSerializer})
    def get(self, request):
        from dashboard.health import health_report  # probes the exchange and the workers: load on use

        return Response(HealthSerializer(health_report()).data)
