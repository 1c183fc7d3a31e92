"""Block network access in a process, so a smoke run provably downloads nothing."""

from __future__ import annotations

import socket
from contextlib import contextmanager

_ORIGINAL = {
    "connect": socket.socket.connect,
    "connect_ex": socket.socket.connect_ex,
    "getaddrinfo": socket.getaddrinfo,
    "create_connection": socket.create_connection,
}
attempts: list[str] = []


class NetworkBlockedError(OSError):
    """Raised when code tries to open a network connection while the guard is on."""


def _refuse(what: str):
    attempts.append(what)
    raise NetworkBlockedError(f"network access blocked during this run: {what}")


def _guarded_connect(self, address, *args):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse(f"connect to {address!r}")
    return _ORIGINAL["connect"](self, address, *args)


def _guarded_connect_ex(self, address, *args):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse(f"connect_ex to {address!r}")
    return _ORIGINAL["connect_ex"](self, address, *args)


def _guarded_getaddrinfo(host, *args, **kwargs):
    _refuse(f"DNS lookup of {host!r}")


def _guarded_create_connection(address, *args, **kwargs):
    _refuse(f"create_connection to {address!r}")


def block_network() -> None:
    """Refuse IPv4/IPv6 connections and DNS lookups in this process (Unix sockets still work).

    Python-level sockets only: ZeroMQ (the Jupyter kernel's own channels) is unaffected.
    """
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    socket.getaddrinfo = _guarded_getaddrinfo
    socket.create_connection = _guarded_create_connection


def unblock_network() -> None:
    """Undo ``block_network``."""
    socket.socket.connect = _ORIGINAL["connect"]
    socket.socket.connect_ex = _ORIGINAL["connect_ex"]
    socket.getaddrinfo = _ORIGINAL["getaddrinfo"]
    socket.create_connection = _ORIGINAL["create_connection"]


@contextmanager
def network_blocked():
    """``with network_blocked(): ...``"""
    block_network()
    try:
        yield attempts
    finally:
        unblock_network()


# --- a fresh network namespace for whole process trees ---------------------------------------
#
# The guard above covers one Python process. Training workers, speech synthesis and DDP ranks
# are child processes: the sure way to keep them all offline is to run the whole tree in a
# new network namespace that has only a loopback interface (Linux ``unshare --net``; as an
# unprivileged user with a user namespace, ``--map-root-user``). Loopback still works inside
# it (the Jupyter kernel's channels, gloo's rendezvous) but it is the namespace's own
# loopback: not even a server on the host's 127.0.0.1 can be reached.

NETNS_ENV = "BOOK_IN_NETNS"


def _unshare_prefix() -> list[str] | None:
    import os
    import shutil
    import subprocess

    exe = shutil.which("unshare")
    if exe is None:
        return None
    for prefix in ([exe, "--net"], [exe, "--net", "--map-root-user"]):
        if os.geteuid() != 0 and "--map-root-user" not in prefix:
            continue
        try:
            ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=20).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return prefix
    return None


def network_namespace_available() -> bool:
    """Whether this platform lets us start a process tree in a fresh network namespace."""
    return _unshare_prefix() is not None


def isolated_command(cmd: list[str]) -> list[str] | None:
    """``cmd`` wrapped to run in a fresh network namespace with loopback up, or ``None``
    where the platform does not allow it (the caller then relies on ``block_network``)."""
    import sys

    prefix = _unshare_prefix()
    if prefix is None:
        return None
    return [*prefix, sys.executable, "-m", "lib.core.netguard", "--", *cmd]


def _loopback_up() -> None:
    """``ip link set lo up`` without iproute2: the SIOCGIFFLAGS / SIOCSIFFLAGS ioctls."""
    import fcntl
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s.fileno(), siocgifflags, req))[1]
        fcntl.ioctl(s.fileno(), siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def _main(argv: list[str]) -> int:
    """``python -m lib.core.netguard -- cmd ...``: bring loopback up, then exec ``cmd``."""
    import os

    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise SystemExit("usage: python -m lib.core.netguard -- command [args ...]")
    _loopback_up()
    os.environ[NETNS_ENV] = "1"
    os.execvp(argv[0], argv)
    return 0  # not reached


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
