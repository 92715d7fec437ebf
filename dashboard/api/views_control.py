"""The bot's controls for scripts: read the state, change the mode, pause, resume and stop.

Roles as on the dashboard's Control page: operators pause, resume, stop and go SAFE; HYBRID and
ON are for admins, and ON needs `"confirm": true` because orders then reach the broker without
approval. Every change goes through decisions.control, which locks, audits and broadcasts.
"""
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboard import roles, selectors
from dashboard.api.errors import BAD_REQUEST, CONFLICT, FORBIDDEN, refused
from decisions.models import Mode

# The role each target mode needs (decisions.control.mode_set documents the same split).
MODE_ROLE = {Mode.SAFE: roles.OPERATOR, Mode.HYBRID: roles.ADMIN, Mode.ON: roles.ADMIN}


class ControlStateSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=Mode.choices, help_text="the mode in force (SAFE while the breaker holds)")
    configured_mode = serializers.ChoiceField(choices=Mode.choices)
    breaker_until = serializers.DateTimeField(allow_null=True, help_text="daily-loss circuit breaker holds SAFE until")
    paused = serializers.BooleanField()
    broker = serializers.CharField(help_text="paper, testnet or live")
    config_version = serializers.IntegerField()


class ModeSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=Mode.choices)
    reason = serializers.CharField(max_length=255, help_text="why; kept in the audit chain")
    confirm = serializers.BooleanField(default=False, help_text="required (true) to go ON")

    def validate(self, attrs):
        if attrs["mode"] == Mode.ON and not attrs["confirm"]:
            raise serializers.ValidationError(
                {"confirm": ['going ON sends orders to the broker without approval: send "confirm": true']})
        return attrs


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)


class StopSerializer(ControlStateSerializer):
    cancelled = serializers.ListField(child=serializers.CharField(), help_text="client ids of cancelled entries")
    verified = serializers.ListField(child=serializers.CharField())
    errors = serializers.ListField(child=serializers.CharField())


def _state() -> dict:
    config = selectors.trading_config()
    header = selectors.header_state(config)
    return {"mode": header["mode"], "configured_mode": header["configured_mode"],
            "breaker_until": header["breaker_until"], "paused": header["paused"], "broker": header["broker"],
            "config_version": config.version}


def _actor(request) -> str:
    return request.user.get_username()


class ControlStateApi(APIView):
    """GET the bot's mode (configured and in force), pause flag and broker."""

    @extend_schema(summary="Mode, pause flag and broker", responses={200: ControlStateSerializer})
    def get(self, request):
        return Response(ControlStateSerializer(_state()).data)


class ModeApi(APIView):
    """POST a new mode: SAFE (operator), HYBRID or ON (admin; ON with "confirm": true)."""

    @extend_schema(summary="Change the mode (SAFE: operator; HYBRID, ON: admin)", request=ModeSerializer,
                   responses={200: ControlStateSerializer, 400: BAD_REQUEST, 403: FORBIDDEN, 409: CONFLICT})
    def post(self, request):
        from decisions import control  # the control services import the brokers: load them on use

        form = ModeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        mode = form.validated_data["mode"]
        if not roles.has_role(request.user, MODE_ROLE[mode]):
            raise PermissionDenied(roles.refusal(MODE_ROLE[mode], f"switch the mode to {mode}"))
        try:
            control.mode_set(mode=mode, actor=_actor(request), now=timezone.now(),
                             reason=form.validated_data["reason"])
        except control.ControlRefused as exc:
            return refused(str(exc))
        return Response(ControlStateSerializer(_state()).data)


class _Switch(APIView):
    """Pause, resume or stop: operators; an optional reason goes into the audit chain."""

    service_name = ""

    def post(self, request):
        from decisions import control

        form = ReasonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        service = getattr(control, self.service_name)
        try:
            result = service(actor=_actor(request), now=timezone.now(), reason=form.validated_data["reason"])
        except control.ControlRefused as exc:
            return refused(str(exc))
        return Response(self.body(result))

    def body(self, result) -> dict:
        return ControlStateSerializer(_state()).data


SWITCH_RESPONSES = {200: ControlStateSerializer, 400: BAD_REQUEST, 403: FORBIDDEN, 409: CONFLICT}


@extend_schema(summary="Pause: open no new position (operator)", request=ReasonSerializer,
               responses=SWITCH_RESPONSES)
class PauseApi(_Switch):
    """Stop opening new positions; working orders, open positions and exits carry on."""

    service_name = "bot_pause"


@extend_schema(summary="Resume after a pause or stop (operator)", request=ReasonSerializer,
               responses=SWITCH_RESPONSES)
class ResumeApi(_Switch):
    """Let the bot open positions again; the mode stays as it is."""

    service_name = "bot_resume"


@extend_schema(summary="Stop: pause and cancel working entries (operator)", request=ReasonSerializer,
               responses={**SWITCH_RESPONSES, 200: StopSerializer})
class StopApi(_Switch):
    """Pause and cancel every working entry order; open positions keep their stops."""

    service_name = "bot_stop"

    def body(self, result) -> dict:
        return StopSerializer({**_state(), "cancelled": result.cancelled, "verified": result.verified,
                               "errors": result.errors}).data
