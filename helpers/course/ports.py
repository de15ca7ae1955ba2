"""Free host ports: the port a lesson names if it is free, else the next free one, said aloud."""
from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

HOST = "127.0.0.1"  # the course publishes ports on loopback only


def port_is_free(port: int, host: str = HOST) -> bool:
    """True if nothing (a program, or a container's published port) holds `port`."""
    for addr in (host, "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((addr, port))
            except OSError:
                return False
    return True


def free_port(preferred: int = 40000, host: str = HOST, tries: int = 200,
              quiet: bool = False) -> int:
    """`preferred` if free, else the next free port above it; prints which one it chose."""
    for port in range(preferred, min(preferred + tries, 65536)):
        if port_is_free(port, host):
            if port != preferred and not quiet:
                print(f"Port {preferred} is in use on {host}; this lesson uses {port} instead.")
            return port
    raise RuntimeError(f"No free port between {preferred} and {preferred + tries - 1} on {host}: "
                       "stop a program or container that holds ports there, then try again.")


# Pages on this machine are fetched directly: an http_proxy set for the outside world must not
# carry a request for 127.0.0.1 away (or fail it).
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, timeout: float = 2.0, wait_seconds: float = 0.0) -> str:
    """GET `url` (the page's text); retries up to `wait_seconds` while the app starts."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            with _DIRECT.open(url, timeout=timeout) as answer:
                return answer.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
