"""The MQTT bridge of the site daemon, with Home Assistant discovery (docs/mqtt.md).

``async with MqttBridge(site, config.mqtt):`` — the rest of the package is the pure
topic/payload layer (``topics``, ``discovery``) the bridge sends.
"""

from ._bridge import ACTOR, Broker, MalformedMessage, MqttBridge

__all__ = ["ACTOR", "Broker", "MalformedMessage", "MqttBridge"]
