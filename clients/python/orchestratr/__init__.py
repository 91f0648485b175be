"""orchestratr: a stdlib-only Python client for the orchestratr daemon.

>>> import orchestratr
>>> c = orchestratr.Client()            # port and token from ~/.config/orchestratr
>>> c.notify_ready("myapp")             # False (never raises) if the daemon is down
>>> ex = c.run("test", follow=True)     # final Execution
>>> a = c.ask("Deploy now?")            # blocks until someone decides
"""

from .client import Client, Event, config_dir, discover
from .errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    NotRunning,
    OrchestratrError,
    QueueFull,
    RateLimited,
    Unauthorized,
    Unavailable,
    Unprocessable,
    error_for,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Event",
    "config_dir",
    "discover",
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Gone",
    "NotFound",
    "NotRunning",
    "OrchestratrError",
    "QueueFull",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "error_for",
]
