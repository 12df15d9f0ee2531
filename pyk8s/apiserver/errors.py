"""Status errors live in pyk8s.api.errors (pure API machinery); this name stays for
the API server's modules."""
from ..api.errors import *  # noqa: F401,F403
from ..api.errors import APIError, MODIFIED  # noqa: F401
