"""Websocket routes."""
from django.urls import path

from dashboard import consumers

websocket_urlpatterns = [path("ws/live/", consumers.LiveConsumer.as_asgi())]
