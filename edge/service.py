"""The site facade's historical import path: ``from edge.service import Site``.

The site lives in ``edge/site/`` (composition root, policy, doors, log, captures).
"""

from edge.site import ENTITY_KINDS, SECRET_FILE, Site, hardware_specs, load_or_create_secret

__all__ = ["ENTITY_KINDS", "SECRET_FILE", "Site", "hardware_specs", "load_or_create_secret"]
