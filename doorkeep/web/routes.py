"""Routes as data, and handlers registered per operation.

A `Route` row names one endpoint (method, path, operationId, who may call it, what it
takes and answers); the same row drives the router, the auth middleware and the OpenAPI
document. `Handlers` maps operationIds to handler functions: adding an endpoint is one
row plus one decorated handler, and `Handlers.check` refuses a row without a handler or
a handler without a row when the app is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import KW_ONLY, dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web

R = TypeVar("R")
H = TypeVar("H", bound=Callable[..., Any])

METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_QUERY_TYPES = frozenset({"string", "integer", "number", "boolean"})


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter: name, JSON-schema type, description."""

    name: str
    type: str
    description: str
    enum: tuple[str, ...] = ()
    fmt: str | None = None
    pattern: str | None = None  # a regular expression the whole value matches
    minimum: int | None = None  # integers: the bounds the API refuses outside of
    maximum: int | None = None

    def __post_init__(self) -> None:
        if self.type not in _QUERY_TYPES:
            raise ValueError(f"query parameter {self.name}: unsupported type {self.type!r}")


# Not slots=True: a slotted frozen generic dataclass cannot be called as ``Route[Role](...)``
# (typing sets ``__orig_class__``; slots break the frozen ``__setattr__``'s ``super()``).
@dataclass(frozen=True)
class Route(Generic[R]):
    """One endpoint. ``op`` is the OpenAPI operationId and the handler's registry key.

    ``role`` is what the API's auth middleware checks (``None``: anyone); ``body`` and
    ``response`` name schemas in the API's ``components.schemas``.
    """

    method: str
    path: str
    _: KW_ONLY
    op: str
    role: R | None
    summary: str
    tag: str = "api"
    body: str | None = None
    body_required: bool = True
    response: str | None = "Ok"
    status: int = 200
    query: tuple[Param, ...] = ()
    media: str = "application/json"
    kind: str | None = None  # the entity kind of an entity CRUD row
    int_params: tuple[str, ...] = ()  # path parameters that are integers

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"{self.path}: unsupported method {self.method}")
        if not self.path.startswith("/"):
            raise ValueError(f"route path {self.path!r} must start with /")

    @property
    def path_params(self) -> tuple[str, ...]:
        """Names of the ``{placeholders}`` in the path, in order."""
        return tuple(re.findall(r"{(\w+)}", self.path))

    @property
    def changes_state(self) -> bool:
        """True for methods that need CSRF protection when sent with a cookie."""
        return self.method not in SAFE_METHODS


class Handlers(Generic[H]):
    """Handler functions keyed by operationId; use an instance as a decorator."""

    def __init__(self) -> None:
        self._by_op: dict[str, H] = {}

    def __call__(self, fn: H) -> H:
        """Register ``fn`` under its own name (``@handlers``)."""
        self.add(fn.__name__, fn)
        return fn

    def add(self, op: str, fn: H) -> None:
        """Register ``fn`` for operation ``op``."""
        if op in self._by_op:
            raise ValueError(f"operation {op!r} has two handlers")
        self._by_op[op] = fn

    def __getitem__(self, op: str) -> H:
        return self._by_op[op]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_op)

    def check(self, routes: Iterable[Route[Any]]) -> None:
        """Raise LookupError unless every row has a handler and every handler a row."""
        ops = [r.op for r in routes]
        doubled = sorted({op for op in ops if ops.count(op) > 1})
        missing = sorted(set(ops) - set(self._by_op))
        unrouted = sorted(set(self._by_op) - set(ops))
        if doubled or missing or unrouted:
            raise LookupError(
                f"route table and handlers differ: duplicate rows {doubled}, "
                f"rows without a handler {missing}, handlers without a row {unrouted}"
            )


_ROUTE_OF: web.AppKey[dict[Any, Route[Any]]] = web.AppKey("doorkeep_route_of", dict)


def mount(
    app: web.Application,
    prefix: str,
    routes: Iterable[Route[Any]],
    endpoint: Callable[[Route[Any]], Callable[[web.Request], Any]],
) -> None:
    """Add each row to ``app``'s router at ``prefix + path``, served by ``endpoint(row)``."""
    route_of: dict[Any, Route[Any]] = {}
    for row in routes:
        served = app.router.add_route(row.method, prefix + row.path, endpoint(row), name=row.op)
        route_of[served] = row
    app[_ROUTE_OF] = route_of


def route_of(request: web.Request) -> Route[Any] | None:
    """The row of the route that matched ``request`` (None: static files, 404s)."""
    return request.app[_ROUTE_OF].get(request.match_info.route)
