"""The cloud service's HTTP handlers, by audience: ``sync`` (sites), ``admin`` (operators).

The route table, middlewares and app factory are in cloud_sync/service.py.
"""
