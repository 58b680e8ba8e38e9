"""The running site, in parts: ``Site`` (the composition root and boundary facade) over
its policy, doors, event log and card captures."""

from edge.site.capture import Captures
from edge.site.doors import Doors
from edge.site.log import EventLog
from edge.site.policy import ENTITY_KINDS, SitePolicy
from edge.site.site import SECRET_FILE, Site, hardware_specs, load_or_create_secret

__all__ = [
    "ENTITY_KINDS",
    "SECRET_FILE",
    "Captures",
    "Doors",
    "EventLog",
    "Site",
    "SitePolicy",
    "hardware_specs",
    "load_or_create_secret",
]
