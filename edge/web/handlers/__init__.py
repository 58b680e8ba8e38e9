"""REST handlers: thin translations between HTTP and the site facade, one module per area.

Each handler takes a `edge.web.context.Call` (validated body, path and query), returns
JSON-able data and registers itself with ``@HANDLERS`` under its route row's ``op``.
Importing this package registers all of them.
"""

from edge.web.handlers import access, doors, hardware, imports, logs, policy, readers, system

__all__ = ["access", "doors", "hardware", "imports", "logs", "policy", "readers", "system"]
