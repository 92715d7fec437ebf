"""Django settings for the trading platform.

Every deployment value comes from the environment (or a .env file beside manage.py);
`.env.example` lists each variable. Embedded defaults: SQLite, the in-memory channel
layer, the django-q2 ORM broker and the paper broker.
"""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env(
    DEBUG=(bool, False),
    ALLOWED_HOSTS=(list, ["localhost", "127.0.0.1", "[::1]"]),
)
# ENV_FILE lets tests and tools read another file (or none) instead of .env.
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")))

# A missing key is a configuration error outside DEBUG; the run script writes one into .env.
SECRET_KEY = env("SECRET_KEY", default="insecure-dev-key-change-me" if env("DEBUG") else None)
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("SECRET_KEY is not set: put it in the environment or .env")
DEBUG = env("DEBUG")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_q",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files served from here: no CDN
    "django_prometheus",
    "market",
    "analytics",
    "decisions",
    "execution",
    "dashboard",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "tradingbot.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "tradingbot.wsgi.application"
ASGI_APPLICATION = "tradingbot.asgi.application"

# Databases: SQLite by default; MariaDB through DATABASE_URL=mysql://user:pass@host:3306/name.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.mysql":
    _db.setdefault("OPTIONS", {}).update(
        {
            "charset": "utf8mb4",
            # Strict mode: MariaDB must reject, not silently truncate, a bad value.
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES', time_zone='+00:00'",
        }
    )
    _db.setdefault("TEST", {}).update({"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"})
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the workers and the engine write; IMMEDIATE takes the
    # write lock when a transaction starts, so two writers queue (up to `timeout` s) instead of
    # one failing at once with "database is locked" when it upgrades from reader to writer.
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
_db["ATOMIC_REQUESTS"] = False
# Keep connections between requests: daphne's HTTP threads live as long as the process
# (tradingbot/wsgi_threads.py), and opening a MariaDB connection costs three round trips and its
# set-up queries. Django checks a kept connection before reusing it and drops it when too old.
_db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=300)
_db["CONN_HEALTH_CHECKS"] = True
# Threads that run HTTP requests in each daphne process (websockets stay on its event loop).
HTTP_THREADS = env.int("HTTP_THREADS", default=8)
# daphne processes run_bot starts on one listening socket (about one per core for API load). With
# the in-memory channel layer and more than one, web processes send events through the outbox too.
WEB_PROCESSES = env.int("WEB_PROCESSES", default=1)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Third-party browser code comes from npm at setup (package.json), never from git.
    ("vendor/lightweight-charts", BASE_DIR / "node_modules" / "lightweight-charts" / "dist"),
]

# Channels: the in-memory layer on one process; channels-redis when REDIS_URL is set.
# The pub/sub layer publishes a group message once per process instead of queueing one copy per
# consumer: 200 dashboards got an event at p99 69 ms, the lowest of the layers (bench/README.md).
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # redis-py 8 reads with a 5 s socket timeout, which drops idle clients; its pool also
            # stops at 100 connections (bench/README.md).
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30, "max_connections": 1000}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# django-q2: the ORM broker by default; Redis when REDIS_URL is set.
Q_CLUSTER = {
    "name": "tradingbot",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": 240,
    # The broker hands a task out again when it is not done after `retry` seconds. Backtest tasks
    # run for up to 6 h (their own timeout), so retry must outlast them; a re-delivered task finds
    # its run already claimed and does nothing. Scheduled jobs come round every minute anyway.
    "retry": 6 * 3600 + 600,
    "max_attempts": 1,
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# Market data: the real Binance recordings used for replay, tests and benchmarks.
MARKET_DATA_DIR = Path(env("MARKET_DATA_DIR", default=str(BASE_DIR.parent / "shared" / "data" / "market")))

# Trading: the broker is a deployment choice; live needs explicit consent and keys.
BROKER = env("BROKER", default="paper")  # paper | testnet | live
EXCHANGE_ID = env("EXCHANGE_ID", default="binanceusdm")
# Base URL override for the exchange's REST API (a local emulator in tests); empty = ccxt's own.
EXCHANGE_API_URL = env("EXCHANGE_API_URL", default="")
# Timeframes the every-minute candle update keeps fresh for active exchange instruments.
CANDLE_UPDATE_TIMEFRAMES = env.list("CANDLE_UPDATE_TIMEFRAMES", default=["1m", "5m", "15m", "1h"])
EXCHANGE_API_KEY = env("EXCHANGE_API_KEY", default="")
EXCHANGE_API_SECRET = env("EXCHANGE_API_SECRET", default="")
# Fernet key(s) encrypting the exchange keys stored on accounts (execution/secrets.py); comma-separated,
# the first encrypts. Empty = derived from SECRET_KEY, which then must never rotate (docs/OPERATIONS.md).
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", default="")
LIVE_TRADING_CONFIRMED = env.bool("LIVE_TRADING_CONFIRMED", default=False)

# Drift report (execution/drift.py): the nightly job compares the last DRIFT_DAYS days of live or
# paper trading with the backtest of the same inputs and alerts above this average slippage.
DRIFT_SLIPPAGE_LIMIT_BPS = env.float("DRIFT_SLIPPAGE_LIMIT_BPS", default=5.0)
DRIFT_DAYS = env.int("DRIFT_DAYS", default=7)

# Bearer token Prometheus sends to /metrics; empty = /metrics answers 403 (docs/OPERATIONS.md).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
PAPER_STARTING_EQUITY_USDT = env("PAPER_STARTING_EQUITY_USDT", default="10000")
# Data source for run_bot: auto (exchange, else replay, else simulated) | exchange | replay | simulated
DATA_SOURCE = env("DATA_SOURCE", default="auto")
REPLAY_SPEED_BARS_PER_SECOND = env.float("REPLAY_SPEED_BARS_PER_SECOND", default=2.0)
DECISION_INTERVAL_MINUTES = env.int("DECISION_INTERVAL_MINUTES", default=5)

# Manual JSON uploads (ETF flows, liquidation zones): larger files are refused with a clear message.
MANUAL_UPLOAD_MAX_BYTES = env.int("MANUAL_UPLOAD_MAX_BYTES", default=1024 * 1024)

# The API for scripts (docs/API.md): per-user tokens (admin -> Auth Token) or the browser session,
# viewers read and operators write (dashboard.roles), throttled per user.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "dashboard.api.authentication.TokenRoleAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["dashboard.roles.ReadViewerWriteOperator"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend",
                                "rest_framework.filters.OrderingFilter"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle",
                                 "rest_framework.throttling.AnonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": env("API_THROTTLE_USER", default="6000/minute"),
                               "anon": env("API_THROTTLE_ANON", default="60/minute")},
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Trading bot API",
    "DESCRIPTION": "Read market data, analytics, decisions and execution; act as an operator. See docs/API.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # One schema name per choice set (several models share status-like field names).
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "execution.models.Order.Status",
        "PositionStatusEnum": "execution.models.Position.Status",
        "BacktestStatusEnum": "execution.models.BacktestRun.Status",
        "BacktestKindEnum": "execution.models.BacktestRun.Kind",
        "DerivativesKindEnum": "market.models.DerivativesKind",
        "UploadKindEnum": "market.models.ManualUpload.Kind",
        "ActionEnum": "decisions.models.Action",
        "ModeEnum": "decisions.models.Mode",
        "PlannedRowActionEnum": ["new", "revision", "unchanged"],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Known exchange keys and secrets, credential fields and request signatures become [redacted]
    # before a handler writes the record: ccxt logs its request headers (X-MBX-APIKEY) at DEBUG.
    "filters": {"redact_secrets": {"()": "tradingbot.log_filters.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO"), "filters": ["redact_secrets"]},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django's default handlers (a DEBUG-only console, mail_admins) would see a record before the
        # filtered console; "django" propagates to root instead, which prints each record once.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
    },
}
