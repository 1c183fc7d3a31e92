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
