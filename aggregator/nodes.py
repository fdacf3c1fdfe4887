"""This process as one node of several sharing a store or an output folder: its name, and
whether another process of this machine is still alive."""

from __future__ import annotations

import os
import socket


def node_name() -> str:
    """This machine and process: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def local_process_gone(node: str) -> bool:
    """Whether `node` (`host:pid`) names a process of this machine that no longer runs."""
    host, _, pid = node.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process
        return False
    return False
