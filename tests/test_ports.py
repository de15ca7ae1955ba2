"""Free host ports: the lesson's port if free, else the next one, said aloud."""
import socket
import time

from helpers.course.labels import labels
from helpers.course.ports import free_port, port_is_free


def test_port_held_by_a_socket_is_skipped(capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        assert not port_is_free(held)
        chosen = free_port(held)
        assert chosen > held and port_is_free(chosen)
        assert f"Port {held} is in use" in capsys.readouterr().out


def test_free_preferred_port_is_kept(capsys):
    port = free_port(40000, quiet=True)
    assert free_port(port) == port
    assert capsys.readouterr().out == ""


def test_port_published_by_a_container_is_skipped(client, kit):
    port = free_port(41000, quiet=True)
    c = client.containers.run(kit["busybox"], ["httpd", "-f", "-p", "8080"], detach=True,
                              ports={"8080/tcp": ("127.0.0.1", port)}, labels=labels(0))
    try:
        time.sleep(0.3)
        assert not port_is_free(port)
        assert free_port(port, quiet=True) != port
    finally:
        c.remove(force=True)


def test_loopback_fetch_bypasses_any_http_proxy(monkeypatch):
    """An http_proxy set for the outside world (here a dead one) never carries 127.0.0.1 away."""
    import http.server
    import threading
    from helpers.course.ports import fetch
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert fetch(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
