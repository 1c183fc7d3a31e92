import socket
import urllib.request

import pytest

from lib.core.netguard import NetworkBlockedError, network_blocked


def test_connections_and_dns_are_refused_inside_and_restored_after():
    with network_blocked() as attempts:
        before = len(attempts)
        with pytest.raises(OSError, match="network access blocked"):  # urllib wraps it
            urllib.request.urlopen("http://example.com", timeout=1)
        with pytest.raises(NetworkBlockedError):
            socket.create_connection(("127.0.0.1", 9), timeout=1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with pytest.raises(NetworkBlockedError):
            s.connect(("10.0.0.1", 80))
        s.close()
        assert len(attempts) >= before + 3
    assert socket.getaddrinfo("localhost", None), "the guard must be undone on exit"


def test_unix_sockets_still_work_under_the_guard():
    with network_blocked():
        a, b = socket.socketpair()
        a.sendall(b"ok")
        assert b.recv(2) == b"ok"
        a.close(), b.close()
