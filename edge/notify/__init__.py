"""Notifications: alarms to email and a webhook, and temp keys emailed to visitors.

``notifier`` (the component the Site holds as ``site.notify``), ``messages`` (pure: what
a notification says, and what it may never say), ``rate`` (pure: the per-minute limit),
``visitor`` (pure: the visitor's email with the QR image), ``delivery`` (issuing and
sending a temp key's code), ``transport`` (aiosmtplib and aiohttp). docs/notifications.md.
"""

from edge.notify.delivery import TempKeyDelivery
from edge.notify.notifier import Notifier
from edge.notify.transport import NotifyError

__all__ = ["Notifier", "NotifyError", "TempKeyDelivery"]
