"""Optional dependencies (the package's extras), checked before anything starts.

Every optional feature asks for its module through `require_extra(module, extra, what)`, and
`check(settings)` says which feature each setting turns on. So a missing one is one line (`the
PostgreSQL store needs asyncpg: pip install 'collab[postgres]'`) raised by `create_app`, and exit
status 2 from the `collab` command, instead of a traceback from inside the lifespan or a bus task
(or, for the Redis bus, a server that runs on without one). A new optional dependency adds its
line to `check`; the module that uses it then imports it as usual.
"""

from __future__ import annotations

from importlib import import_module

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .errors import MissingExtra
from .settings import Settings

# A store URL's SQLAlchemy driver -> (the module it imports, the extra, what needs it).
STORE_DRIVERS = {"asyncpg": ("asyncpg", "postgres", "the PostgreSQL store")}


def require_extra(module: str, extra: str, what: str) -> None:
    """Import `module`, or raise MissingExtra if it (or its package) is not installed.

    A module that is installed but lacks something else keeps its own error: that is a broken
    installation, not a missing extra.
    """
    package = module.partition(".")[0]
    try:
        import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != package:
            raise
        raise MissingExtra(package, extra, what) from None


def check(settings: Settings, *, store: bool = True, bus: bool = True) -> None:
    """Raise MissingExtra for the first optional module these settings need and lack: the
    store's driver (`store=False` when the caller brings its own store), and what only a
    running server needs (`bus=False` for a command that opens the store and serves nothing):
    the bus's client and the event sinks' (RabbitMQ)."""
    if store:
        try:
            driver = make_url(settings.database_url).get_driver_name()
        except ArgumentError:
            driver = ""  # not a URL: opening the store says so
        if driver in STORE_DRIVERS:
            require_extra(*STORE_DRIVERS[driver])
    if bus:  # the same choice as collab.app.make_bus
        if settings.redis_url:
            require_extra("redis.asyncio", "redis", "the Redis bus (COLLAB_REDIS_URL)")
        elif settings.bus == "postgres":
            require_extra("asyncpg", "postgres", "the PostgreSQL bus (COLLAB_BUS=postgres)")
    if bus and settings.amqp_url:  # collab.extensions.amqp.from_settings
        require_extra("aio_pika", "amqp", "the RabbitMQ sink (COLLAB_AMQP_URL)")
