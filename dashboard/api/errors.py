"""How the API says no: one shape ({"detail": ...}) for refusals, and the responses the schema lists."""
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.response import Response


class ErrorSerializer(serializers.Serializer):
    """A refusal or error: `detail` says what is wrong; validation errors name fields instead."""

    detail = serializers.CharField()


class FieldErrorsSerializer(serializers.Serializer):
    """A validation error: each refused field (or non_field_errors) with its messages."""

    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)


def refused(message: str, code: int = status.HTTP_409_CONFLICT) -> Response:
    """Return the response of an action the service refused; nothing was changed."""
    return Response({"detail": message}, status=code)


BAD_REQUEST = OpenApiResponse(FieldErrorsSerializer, description="invalid input: each field with its messages")
CONFLICT = OpenApiResponse(ErrorSerializer, description="refused in the current state; nothing changed")
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="no such object")
FORBIDDEN = OpenApiResponse(ErrorSerializer, description="your role may not do this")
