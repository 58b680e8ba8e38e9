"""The site's doors: operator commands, emergency modes, hold-open schedules, the hardware
tools of the installer, and the door events the hardware reports.

Every command to the hardware returns an ``Outcome``; the command's own event (a remote
unlock, an emergency) is logged first and the door events it caused after it.

Site inputs (``[[input]]``) latch: an input that becomes active (a fire panel) moves the
doors at once, before anything is written, so a full disk or a failing store cannot keep
an escape route shut; then its event, the door events and its alarm are recorded, each
on its own. Only an operator ends what an input started (``emergency("clear")``); the
input becoming inactive again is logged and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from doorkeep.errors import NotFound
from edge.config import InputSection, SiteConfig, write_site_toml
from edge.core.schedule import Instant
from edge.hardware import Hardware
from edge.hwparts import DoorNote, Outcome
from edge.site.log import EventLog
from edge.site.policy import SitePolicy
from edge.store import EdgeStore

_log = logging.getLogger(__name__)

EMERGENCY_ACTIONS = ("unlock", "lock", "lockdown", "clear")


@dataclass(slots=True)
class _Emergency:
    lockdown: bool = False
    unlocked: frozenset[str] = frozenset()
    # site inputs that fired since an operator last cleared (latched)
    inputs: frozenset[str] = frozenset()

    def saved(self) -> dict[str, Any]:
        return {
            "lockdown": self.lockdown,
            "unlocked": sorted(self.unlocked),
            "inputs": sorted(self.inputs),
        }


class Doors:
    """The doors of one site and the hardware that drives them."""

    def __init__(
        self,
        config: SiteConfig,
        hw: Hardware,
        *,
        store: EdgeStore,
        policy: SitePolicy,
        log: EventLog,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.hw = hw
        self.store = store
        self.policy = policy
        self.log = log
        self.clock = clock
        saved = store.get_state("emergency") or {}
        self._emergency = _Emergency(
            bool(saved.get("lockdown")),
            frozenset(saved.get("unlocked") or ()),
            frozenset(saved.get("inputs") or ()),
        )
        self._held_open: set[str] = set()
        # whether the wall clock may be believed (the Site wires in its clock guard)
        self.clock_trusted: Callable[[], bool] = lambda: True

    async def restore(self) -> None:
        """Put the doors back in the emergency mode they were in before a restart."""
        failing = await self.store.query_alarms(open_only=True, limit=1000)
        self.hw.failing_relays.update(
            a["source"] for a in failing if a["kind"] == "relay_failed" and a["source"]
        )
        if self._emergency.lockdown:
            await self.record(await self.hw.lockdown(True))
        if self._emergency.unlocked:
            await self.record(await self.hw.emergency_unlock(self._emergency.unlocked, True))

    # --- what the hardware did -----------------------------------------------------------

    async def record(self, outcome: Outcome) -> None:
        """Log the door events and alarms a command caused, after the command's own event."""
        for note in outcome.notes:
            await self.on_door(note)

    async def on_door(self, note: DoorNote) -> None:
        """A door event or alarm (from a command, an input edge or a timer)."""
        if note.alarm is not None:
            await self.log.raise_alarm(
                note.alarm, source=note.source or note.door, door=note.door, detail=note.detail
            )
        else:
            event = self.log.event(
                self.clock(),
                "door",
                note.action,
                note.result,
                door=note.door,
                detail=dict(note.detail),
            )
            await self.log.record(event)
        self.log.publish("door", self.hw.door_state(note.door))

    async def on_board(self, board_id: str, online: bool) -> None:
        """A board went offline (one alarm for all its doors) or came back."""
        if online:
            await self.log.record(
                self.log.event(
                    self.clock(), "system", "board_online", "success", detail={"board": board_id}
                )
            )
        else:
            await self.log.raise_alarm("board_offline", source=board_id, detail={"board": board_id})
        for door in self.config.doors:
            if door.relay.board == board_id:
                self.log.publish("door", self.hw.door_state(door.id))

    # --- doors -------------------------------------------------------------------------

    def states(self) -> list[dict[str, Any]]:
        return [self.hw.door_state(d.id) for d in self.config.doors]

    def state(self, door_id: str) -> dict[str, Any]:
        self._known(door_id)
        return self.hw.door_state(door_id)

    def _known(self, door_id: str) -> None:
        if door_id not in self.policy.snapshot.doors:
            raise NotFound(f"door {door_id!r} is not in site.toml")

    async def unlock(self, door_id: str, seconds: float = 5, *, actor: str) -> dict[str, Any]:
        """Remote unlock by an operator (logged with who did it)."""
        self._known(door_id)
        if not 1 <= seconds <= 3600:
            raise ValueError("seconds must be between 1 and 3600")
        outcome = await self.hw.operator_unlock(door_id, seconds)
        await self._operator_event(door_id, "unlock", outcome, actor, {"seconds": seconds})
        return self.state(door_id)

    async def lock(self, door_id: str, *, actor: str) -> dict[str, Any]:
        self._known(door_id)
        outcome = await self.hw.operator_lock(door_id)
        await self._operator_event(door_id, "lock", outcome, actor, {})
        return self.state(door_id)

    async def _operator_event(
        self, door_id: str, action: str, outcome: Outcome, actor: str, detail: dict[str, Any]
    ) -> None:
        await self.log.record(
            self.log.event(
                self.clock(),
                "door",
                f"remote_{action}",
                "success" if outcome.confirmed else "offline",
                door=door_id,
                credential_kind="remote",
                detail={"actor": actor, **detail},
            )
        )
        await self.record(outcome)
        await self.store.audit(actor, f"door.{action}", f"door/{door_id}", detail)

    # --- emergency and hold-open ---------------------------------------------------------

    async def emergency(
        self, action: str, doors: list[str] | None = None, *, actor: str
    ) -> dict[str, Any]:
        """unlock | lock (end an emergency unlock) | lockdown | clear (end both)."""
        if action not in EMERGENCY_ACTIONS:
            raise ValueError("action must be one of unlock, lock, lockdown, clear")
        group = doors or self.policy.settings()["emergency"]["doors"]
        for door_id in group:
            self._known(door_id)
        if action == "unlock" and not group:
            raise ValueError("no doors given and the policy's emergency group is empty")
        state = self._emergency
        everything = sorted(self.policy.snapshot.doors)
        # What the record lists: every door the action touched (a lockdown locks them all).
        affected = {
            "unlock": sorted(group),
            "lock": sorted(frozenset(group) if doors else state.unlocked),
            "lockdown": everything,
            "clear": everything if state.lockdown else sorted(state.unlocked),
        }[action]
        if action == "unlock":
            state.unlocked = state.unlocked | frozenset(group)
            outcome = await self.hw.emergency_unlock(frozenset(group), True)
        elif action == "lock":
            ending = frozenset(group) if doors else state.unlocked
            state.unlocked = state.unlocked - ending
            if not state.unlocked:  # the emergency inputs' unlock is over
                state.inputs = frozenset(
                    i for i in state.inputs if self._input_function(i) != "emergency"
                )
            outcome = await self.hw.emergency_unlock(ending, False)
        elif action == "lockdown":
            state.lockdown = True
            outcome = await self.hw.lockdown(True)
        else:
            ending = state.unlocked
            state.unlocked, state.lockdown, state.inputs = frozenset(), False, frozenset()
            outcome = Outcome.merge(
                [await self.hw.emergency_unlock(ending, False), await self.hw.lockdown(False)]
            )
        await self.store.put_state("emergency", state.saved())
        await self.log.record(
            self.log.event(
                self.clock(),
                "emergency",
                action,
                "success",
                detail={"actor": actor, "doors": affected},
            )
        )
        await self.record(outcome)
        await self.store.audit(actor, f"emergency.{action}", "site", {"doors": affected})
        if action in ("unlock", "lockdown"):
            await self.log.raise_alarm(
                "emergency", source="operator", detail={"action": action, "actor": actor}
            )
        return self.emergency_state()

    def emergency_state(self) -> dict[str, Any]:
        """Emergency unlock, lockdown and the site inputs (live level and latch)."""
        state = self._emergency
        return {
            "lockdown": state.lockdown,
            "unlocked": sorted(state.unlocked),
            # what an emergency unlock would open (the UI asks with these doors named)
            "group": sorted(self.policy.settings()["emergency"]["doors"]),
            "inputs": [
                {
                    "id": i.id,
                    "function": i.function,
                    "active": self.hw.input_active(i.id),
                    "latched": i.id in state.inputs,
                }
                for i in self.config.inputs
            ],
        }

    def _input_function(self, input_id: str) -> str | None:
        try:
            return self.config.input(input_id).function
        except KeyError:  # removed from site.toml since it fired
            return None

    async def on_input(self, section: InputSection, active: bool) -> None:
        """A site input became active or inactive (debounced by the hardware shell)."""
        if not active:
            await self._input_inactive(section)
            return
        state = self._emergency
        # Active again before an operator cleared it (a flapping fire panel): the doors
        # are put where it wants them again, but there is no second alarm.
        again = section.id in state.inputs
        state.inputs = state.inputs | {section.id}
        actor = f"input:{section.id}"
        detail: dict[str, Any] = {
            "input": section.id,
            "terminal": str(section.input),
            "function": section.function,
        }
        action, outcome = None, None
        # First the doors, from memory only: nothing here waits for the store or the cloud.
        if section.function == "emergency":
            settings = self.policy.settings()["emergency"]
            group = sorted(
                d for d in settings.get("doors") or () if d in self.policy.snapshot.doors
            )
            if settings.get("auto_unlock_on_alarm") and group:
                action = "unlock"
                state.unlocked = state.unlocked | frozenset(group)
                outcome = await self.hw.emergency_unlock(frozenset(group), True)
                detail.update(unlocked=True, doors=group)
            else:
                why = (
                    "settings.emergency.auto_unlock_on_alarm is false"
                    if not settings.get("auto_unlock_on_alarm")
                    else "the policy's emergency door group is empty"
                )
                detail.update(unlocked=False, why=why)
        elif section.function == "lockdown":
            action = "lockdown"
            state.lockdown = True
            outcome = await self.hw.lockdown(True)
        # Then the record: the cause, the door events it caused, the alarm, the state.
        if outcome is not None and (not again or outcome.notes):
            cause = {"actor": actor, "input": section.id}
            if "doors" in detail:
                cause["doors"] = detail["doors"]
            event = self.log.event(
                self.clock(),
                "emergency",
                action or section.function,
                "success" if outcome.confirmed else "offline",
                detail=cause,
            )
            await self._try(section, "its event", self.log.record(event))
            if not await self._try(section, "the door events", self.record(outcome)):
                for door in sorted({n.door for n in outcome.notes}):
                    self.log.publish("door", self.hw.door_state(door))
        if again:
            await self._try(
                section, "its active event", self.log.record(self._input_event(section, "active"))
            )
        else:
            await self._try(
                section,
                "its alarm",
                self.log.raise_alarm(section.function, source=section.id, detail=detail),
            )
        await self._try(section, "the emergency state", self._save())

    async def _input_inactive(self, section: InputSection) -> None:
        event = self._input_event(section, "inactive")
        await self._try(section, "its inactive event", self.log.record(event))

    def _input_event(self, section: InputSection, level: str) -> dict[str, Any]:
        """``input_active`` / ``input_inactive``: a latched input changing, no new effect."""
        return self.log.event(
            self.clock(),
            "system",
            f"input_{level}",
            "success",
            detail={
                "input": section.id,
                "terminal": str(section.input),
                "function": section.function,
                # still latched: what it started goes on until an operator clears it
                "latched": section.id in self._emergency.inputs,
            },
        )

    async def _save(self) -> None:
        await self.store.put_state("emergency", self._emergency.saved())

    @staticmethod
    async def _try(section: InputSection, what: str, step: Awaitable[Any]) -> bool:
        """One recording step of an input; a failure is logged and the next step runs."""
        try:
            await step
        except Exception:
            _log.exception("input %s: recording %s failed", section.id, what)
            return False
        return True

    def lockdown(self) -> bool:
        """Whether the site is in lockdown (everyone but staff refused)."""
        return self._emergency.lockdown

    async def hold_open_tick(self, now: datetime) -> set[str]:
        """Start and end the policy's hold-open schedules; returns the doors held open.

        While the clock is untrusted no door is held open (fail secure): a held-open
        door lets anyone in, and the schedule cannot be read against a wrong clock.
        """
        snapshot = self.policy.snapshot
        at = Instant.of(now, self.config.tz)
        wanted = {
            door
            for door, schedule in snapshot.hold_open
            if door in snapshot.doors and schedule.is_open(at, snapshot.holidays)
        }
        if wanted and not self.clock_trusted():
            wanted = set()
        for door in sorted(wanted - self._held_open):
            await self.record(await self.hw.hold_open(door, True))
        for door in sorted(self._held_open - wanted):
            await self.record(await self.hw.hold_open(door, False))
        self._held_open = wanted
        return wanted

    # --- installer tools -----------------------------------------------------------------

    def hardware(self) -> dict[str, Any]:
        described = self.hw.describe()
        for item in described.get("inputs", []):
            item["latched"] = item["id"] in self._emergency.inputs
        return described

    async def bus_scan(self, bus_id: str) -> list[int]:
        return await self.hw.scan(bus_id)

    async def relay_test(
        self, board_id: str, channel: int, *, ms: int = 500, actor: str
    ) -> dict[str, Any]:
        ok = (await self.hw.relay_test(board_id, channel, ms)).confirmed
        await self.store.audit(
            actor, "relay.test", f"board/{board_id}:{channel}", {"ms": ms, "ok": ok}
        )
        return {"board": board_id, "channel": channel, "ms": ms, "ok": ok}

    async def update_hardware(self, cfg_dict: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
        """Validate and write site.toml (backup kept); takes effect on restart."""
        await asyncio.to_thread(write_site_toml, self.config.path, dict(cfg_dict))
        await self.store.audit(actor, "hardware.update", "site.toml", {"restart_needed": True})
        return {"written": str(self.config.path), "restart_needed": True}
