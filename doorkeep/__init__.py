"""Shared foundations of doorkeep: version, error tree, policy document format.

Every other package (edge, drivers, rs485, cloud_sync) may import this one; it
imports only the standard library and jsonschema.
"""

__version__ = "0.1.0"
