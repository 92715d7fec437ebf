"""The project's ASGI application for a test's daphne, with static files served as runserver would.

Production serves them through WhiteNoise after collectstatic; the test settings drop WhiteNoise,
so Django's static handler finds them in the apps, static/ and node_modules/ directly.
"""
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from tradingbot.asgi import application as project_application

application = ASGIStaticFilesHandler(project_application)
