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


_CHILD = """
import socket, subprocess, sys
port = int(sys.argv[1])
def attempt(addr):
    try:
        socket.create_connection(addr, timeout=2).close()
        return "connected"
    except OSError as err:
        return type(err).__name__
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
own = attempt(srv.getsockname())                  # the namespace's own loopback works
host = attempt(("127.0.0.1", port))               # the host's loopback server: unreachable
out = attempt(("192.0.2.1", 80))                  # anything beyond: no route
grandchild = subprocess.run([sys.executable, "-c",
    "import socket,sys\\ntry:\\n socket.create_connection(('127.0.0.1', %d), timeout=2)\\n"
    " print('connected')\\nexcept OSError as e:\\n print(type(e).__name__)" % port],
    capture_output=True, text=True).stdout.strip()
print(own, host, out, grandchild)
"""


def test_a_child_process_in_the_fresh_namespace_cannot_connect_out(tmp_path):
    import subprocess
    import sys

    from lib.core.netguard import isolated_command, network_namespace_available

    if not network_namespace_available():
        pytest.skip("no network namespaces here: the in-process guard is the fallback")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        (tmp_path / "child.py").write_text(_CHILD)
        assert socket.create_connection(("127.0.0.1", port), timeout=2), "reachable from here"
        cmd = isolated_command([sys.executable, str(tmp_path / "child.py"), str(port)])
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        own, host, beyond, grandchild = out.stdout.split()
        assert own == "connected", "loopback inside the namespace must work (kernels, gloo)"
        assert host != "connected" and grandchild != "connected", (
            "a process tree in the namespace must not reach the host's local server")
        assert beyond != "connected"
    finally:
        server.close()
