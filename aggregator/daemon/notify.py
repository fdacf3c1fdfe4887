"""systemd's notify protocol (sd_notify(3)) over $NOTIFY_SOCKET: READY, STATUS, WATCHDOG,
STOPPING.

Written here rather than taken from the sdnotify package, which encodes messages as latin-1 and
so drops a STATUS= line carrying Chinese tag or feed names; the protocol itself is one UTF-8
datagram of KEY=value lines to an AF_UNIX socket, where a leading '@' names an abstract socket.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

log = logging.getLogger("aggregator")

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"


class Notifier:
    """Sends state changes to the service manager; a silent no-op when not run by one."""

    def __init__(self, address: str | None) -> None:
        self._address: str | bytes | None = None
        self._socket: socket.socket | None = None
        if not address:
            return
        if address.startswith("@"):
            # Abstract namespace: the name starts with a NUL byte instead of '@'.
            self._address = b"\0" + address[1:].encode("utf-8")
        elif address.startswith("/"):
            self._address = address
        else:
            log.warning(
                "ignoring %s=%r: neither a path nor an abstract name", NOTIFY_SOCKET, address
            )
            return
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls) -> Notifier:
        return cls(os.environ.get(NOTIFY_SOCKET))

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, **fields: str) -> bool:
        """One datagram of KEY=value lines; False when there is no manager or it is gone."""
        if self._socket is None or self._address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            self._socket.sendto(message.encode("utf-8"), self._address)
        except OSError as error:
            # The manager going away must never take the daemon down with it.
            log.debug("sd_notify %s failed: %s", ", ".join(fields), error)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY="1", STATUS=_one_line(status))

    def status(self, status: str) -> bool:
        return self.send(STATUS=_one_line(status))

    def watchdog(self) -> bool:
        return self.send(WATCHDOG="1")

    def stopping(self, status: str) -> bool:
        return self.send(STOPPING="1", STATUS=_one_line(status))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_period() -> timedelta | None:
    """How often to send WATCHDOG=1 (half of WatchdogSec), or None when no watchdog is armed
    for this process (sd_watchdog_enabled(3): WATCHDOG_PID, when set, must be our pid)."""
    usec = os.environ.get(WATCHDOG_USEC, "")
    pid = os.environ.get(WATCHDOG_PID, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return timedelta(microseconds=int(usec) / 2)


def _one_line(text: str) -> str:
    # A newline would start a new KEY=value assignment inside the datagram.
    return " ".join(text.split())
