"""Placeholder replaced by the dashboard work."""
from channels.generic.websocket import AsyncJsonWebsocketConsumer


class LiveConsumer(AsyncJsonWebsocketConsumer):
    pass
