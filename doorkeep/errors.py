"""The one error tree of doorkeep.

Libraries raise these; boundaries (CLI, REST, MQTT) translate them into exit codes
and HTTP answers. A message a user can cause says what to change.
"""

from __future__ import annotations


class DoorkeepError(Exception):
    """Base of every error doorkeep raises on purpose."""


class ConfigError(DoorkeepError):
    """site.toml is wrong: the message names the file, the table and the key."""


class PolicyError(DoorkeepError):
    """A policy document or entity is invalid; `issues` lists every problem found."""

    def __init__(self, message: str, issues: list[PolicyIssue] | None = None) -> None:
        super().__init__(message)
        self.issues: list[PolicyIssue] = issues or []


class PolicyIssue:
    """One problem in a policy document: which entity, which field, what is wrong."""

    __slots__ = ("entity", "field", "message")

    def __init__(self, entity: str, field: str, message: str) -> None:
        self.entity = entity
        self.field = field
        self.message = message

    def __repr__(self) -> str:
        return f"PolicyIssue({self.entity!r}, {self.field!r}, {self.message!r})"

    def __str__(self) -> str:
        return f"{self.entity}: {self.field}: {self.message}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PolicyIssue):
            return NotImplemented
        return (self.entity, self.field, self.message) == (other.entity, other.field, other.message)

    def __hash__(self) -> int:
        return hash((self.entity, self.field, self.message))

    def as_dict(self) -> dict[str, str]:
        return {"entity": self.entity, "field": self.field, "message": self.message}


class DeviceError(DoorkeepError):
    """A board, bus or reader failed or answered wrongly."""


class DeviceTimeout(DeviceError):
    """A device did not answer in time (after its retries)."""


class StorageError(DoorkeepError):
    """The site's database could not be written or read (disk full, I/O error, locked)."""


class SyncError(DoorkeepError):
    """The cloud link or a bundle failed; the reason says which check refused it."""


class BundleRejected(SyncError):
    """A policy bundle was refused (bad signature, rollback, gap, expired, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AuthError(DoorkeepError):
    """Missing, wrong or insufficient credentials for an operation."""


class NotFound(DoorkeepError):
    """The named entity does not exist."""


class Conflict(DoorkeepError):
    """The change conflicts with the current state (e.g. deleting a default group)."""
