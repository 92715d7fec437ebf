"""ASGI entry point (served by daphne): HTTP through Django's WSGI handler in a thread pool, websockets through Channels."""
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingbot.settings")
django_wsgi_app = get_wsgi_application()

from tradingbot.wsgi_threads import ThreadedWsgi  # noqa: E402

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from dashboard.routing import websocket_urlpatterns  # noqa: E402

from dashboard.events import ROLE_ENV  # noqa: E402
from tradingbot.heap import heap_freeze  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ThreadedWsgi(django_wsgi_app, threads=settings.HTTP_THREADS),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

if os.environ.get(ROLE_ENV) == "web":
    # daphne under run_bot: everything imported so far is never garbage; keep it out of full gc
    # passes, which paused HTTP requests and websocket sends alike for 200-300 ms.
    heap_freeze()
