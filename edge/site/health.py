"""What the site says of itself: ``/health`` with every component and a reason when
one is not ok, the Prometheus text of ``/metrics``, and what storage failures mean for
presentations (the spill queue's reserve). Functions of the Site, kept out of its class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.site.metrics import BUS_OUTCOMES, BoardReading, Component, Readings

if TYPE_CHECKING:
    from edge.site.site import Site

# While storage fails, a presentation is refused unless the spill queue can still hold
# this many events: its own access event plus the door events and alarms it may cause.
EVENT_RESERVE = 8


class SiteStatus:
    """``site.status``: what ``/health``, ``doorkeep status`` and ``/metrics`` answer."""

    def __init__(self, site: Site) -> None:
        self._site = site

    def health(self) -> dict[str, Any]:
        """Every component with a reason when not ok (see ``health``)."""
        return health(self._site)

    async def metrics_text(self) -> bytes:
        """The Prometheus text of ``GET /metrics`` (see ``metrics_text``)."""
        return await metrics_text(self._site)


def health(site: Site) -> dict[str, Any]:
    """Every component with a reason when not ok; ``status`` is ``degraded`` unless
    all are ok, and ``degraded`` names the failing ones (``doorkeep status`` prints
    this); ``storage`` is the store's state, with its spill queue during an outage."""
    components = [c for part in COMPONENTS for c in part(site)]
    degraded = [c.name for c in components if not c.ok]
    return {
        "status": "degraded" if degraded else "ok",
        "site": site.site_id,
        "version": site.version,
        "policy_version": site.snapshot.version,
        "clock_ok": site.clock_guard.trusted(),
        "degraded": degraded,
        "storage": site.store.storage.as_dict(),
        "components": [c.as_dict() for c in components],
    }


async def metrics_text(site: Site) -> bytes:
    """The Prometheus text of ``GET /metrics`` (edge/site/metrics.py)."""
    now = site.clock()
    version = site.snapshot.version
    if site.policy_seen[0] != version:
        site.policy_seen = (version, now)
    backlog = 0
    if site.sync is not None:
        newest, _ = await site.log.events(limit=1)
        backlog = max(0, (newest[0]["seq"] if newest else 0) - site.store.acknowledged())
    alarms = await site.log.alarms(open_only=True, limit=ALARMS_COUNTED)
    readings = Readings(
        policy_version=version,
        policy_age_s=(now - site.policy_seen[1]).total_seconds(),
        alarms_open=len(alarms),
        outbox_backlog=backlog,
        storage_ok=site.store.storage.ok,
        clock_trusted=site.clock_guard.trusted(),
        boards=tuple(_board_readings(site)),
    )
    return site.metrics.render(readings)


def storage_alarm(site: Site, recorded: dict[str, Any]) -> None:
    """The store recorded a storage_unavailable alarm (storage is back): publish it."""
    site.log.publish("event", recorded["event"])
    site.log.publish("alarm", recorded["alarm"])
    if site.sync is not None:
        site.sync.poke()


def cannot_record(site: Site) -> bool:
    """Storage fails and the spill queue is (nearly) full: refuse, fail secure."""
    return not site.store.storage.ok and site.store.outages.room() < EVENT_RESERVE


# /metrics counts open alarms up to this many (one page of the alarm query).
ALARMS_COUNTED = 1000


def _store(site: Site) -> list[Component]:
    storage = site.store.storage
    if storage.ok:
        return [Component("storage", True, "")]
    reason = (
        f"storage unavailable since {storage.since} ({storage.error}); {storage.held} of "
        f"{storage.limit} events held in memory, written when storage returns"
    )
    return [Component("storage", False, reason)]


def _buses(site: Site) -> list[Component]:
    rows = []
    for bus in site.config.buses:
        boards = [b.id for b in site.config.boards if b.bus == bus.id and b.id in site.hw.boards]
        silent = [b for b in boards if not site.hw.boards[b].online]
        ok = not boards or len(silent) < len(boards)
        rows.append(Component(f"bus {bus.id}", ok, "" if ok else f"no board answers on {bus.port}"))
    return rows


def _boards(site: Site) -> list[Component]:
    rows = []
    for cfg in site.config.boards:
        board = site.hw.boards.get(cfg.id)
        if board is None:  # the hardware is not open in this process (CLI)
            continue
        where = (
            f"bus {cfg.bus} address {cfg.address}"
            if cfg.bus
            else (f"{cfg.host}:{cfg.port}" if cfg.port else cfg.host or "its link")
        )
        reason = "" if board.online else f"not answering ({where}); its doors are offline"
        rows.append(Component(f"board {cfg.id}", board.online, reason))
    return rows


def _readers(site: Site) -> list[Component]:
    # A reader with a link of its own (edge/readers: osdp, serial) reports it; the others
    # (sim, http, mqtt) have none to fail.
    if not site.hw.boards:
        return []
    rows = []
    for r in site.config.readers:
        state = site.readers.state(r.id)
        if state.online is False:
            why = state.detail.get("reason") or "not answering"
            rows.append(Component(f"reader {r.id}", False, f"offline: {why}"))
        elif state.secure is False and r.secure:
            rows.append(Component(f"reader {r.id}", False, "Secure Channel is not active"))
        else:
            rows.append(Component(f"reader {r.id}", True, ""))
    return rows


def _mqtt(site: Site) -> list[Component]:
    if site.mqtt is None:
        return []
    ok = bool(site.mqtt.connected)
    return [Component("mqtt", ok, "" if ok else f"broker {site.mqtt.broker} unreachable")]


def _cloud(site: Site) -> list[Component]:
    if site.sync is None:
        return []
    status = site.sync.status()
    stale = bool(status.get("stale"))
    last = status.get("last_contact") or "never"
    reason = f"no contact with the cloud since {last}; policy may be stale" if stale else ""
    return [Component("cloud", not stale, reason)]


def _clock(site: Site) -> list[Component]:
    status = site.clock_guard.status()
    reason = "" if status["ok"] else f"clock untrusted: {status['problem']} (docs/security.md)"
    return [Component("clock", bool(status["ok"]), reason)]


def _notify(site: Site) -> list[Component]:
    rows = []
    for channel in site.notify.status():
        reason = (
            ""
            if channel["ok"]
            else (
                f"notifications by {channel['name']} failing: {channel['error']}; "
                f"{channel['held']} held, sent as one digest when it recovers"
            )
        )
        rows.append(Component(f"notify {channel['name']}", bool(channel["ok"]), reason))
    return rows


def _board_readings(site: Site) -> list[BoardReading]:
    stats = {bus_id: bus.stats() for bus_id, bus in site.hw.buses.items()}
    rows = []
    for cfg in site.config.boards:
        board = site.hw.boards.get(cfg.id)
        if board is None:
            continue
        seen = stats.get(cfg.bus or "", {}).get(cfg.address or -1)
        counts = {} if seen is None else {k: int(getattr(seen, k)) for k, _ in BUS_OUTCOMES}
        rows.append(BoardReading(cfg.id, board.online, cfg.bus, counts))
    return rows


#: The components of /health, in order; each returns its rows (none when not present).
COMPONENTS: tuple[Callable[[Site], list[Component]], ...] = (
    _store,
    _buses,
    _boards,
    _readers,
    _mqtt,
    _cloud,
    _clock,
    _notify,
)
