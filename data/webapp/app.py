"""The course's sample web app: answers on port 8080 with who and where it runs.

Standard library only, so that it runs on a bare python:3.11-slim (no pip in its build).

Settings (environment variables):
    PORT        the port it listens on inside the container (8080)
    GREETING    the first line of the page ("Hello from a container")
    REDIS_HOST  unset: no counter, the page is the four lines above and /health answers "ok".
                set (e.g. "redis", the Compose service's name): the app counts visits in Redis,
                as Docker's own Compose quickstart does:
                  /        runs INCR hits and adds the line "visits: N"; if Redis cannot be
                           reached it answers 503 with the reason instead
                  /health  really asks Redis (PING): 200 "ok" on PONG, else 503 with the reason
    REDIS_PORT  Redis's port (6379)

It talks to Redis through the short RESP client below (`redis_command`), not a pip package.
"""
import getpass
import os
import socket
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT = int(os.environ.get("PORT", "8080"))
GREETING = os.environ.get("GREETING", "Hello from a container")
REDIS_HOST = os.environ.get("REDIS_HOST", "")
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6379"))
REDIS_TIMEOUT = 2.0   # seconds: a stuck Redis makes the page fail, not hang


class RedisError(Exception):
    """Redis could not be reached, or answered with an error."""


def redis_command(*args: str):
    """Send one command in RESP (Redis's wire protocol) and return the reply:
    `redis_command("INCR", "hits")` -> 7, `redis_command("PING")` -> "PONG"."""
    request = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = str(arg).encode()
        request += b"$%d\r\n%s\r\n" % (len(data), data)
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=REDIS_TIMEOUT) as conn:
            conn.sendall(request)
            reply = conn.makefile("rb")
            line = reply.readline().decode(errors="replace").rstrip("\r\n")
            kind, rest = line[:1], line[1:]
            if kind == "+":
                return rest
            if kind == ":":
                return int(rest)
            if kind == "$":
                return None if rest == "-1" else reply.read(int(rest) + 2)[:-2].decode()
            if kind == "-":
                raise RedisError(f"Redis answered: {rest}")
            raise RedisError(f"unexpected reply from Redis: {line[:80]!r}")
    except OSError as exc:   # refused, timed out, name not found
        raise RedisError(f"Redis at {REDIS_HOST}:{REDIS_PORT} unreachable: "
                         f"{exc.strerror or exc}") from None


def user_name() -> str:
    """The user's name; a numeric USER with no line in /etc/passwd has none: then its uid."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):   # KeyError up to Python 3.12, OSError from 3.13
        return str(os.getuid())


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200
        if self.path == "/health":
            body = b"ok\n"
            if REDIS_HOST:
                try:
                    answer = redis_command("PING")
                    if answer != "PONG":
                        raise RedisError(f"Redis answered PING with {answer!r}")
                except RedisError as exc:
                    status, body = 503, f"{exc}\n".encode()
        else:
            body = (f"{GREETING}!\nhostname: {socket.gethostname()}\n"
                    f"user: {user_name()} (uid {os.getuid()})\n"
                    f"port inside the container: {PORT}\n").encode()
            if REDIS_HOST:
                try:
                    body += f"visits: {redis_command('INCR', 'hits')}\n".encode()
                except RedisError as exc:
                    status, body = 503, f"cannot count this visit: {exc}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(f"{self.address_string()} {fmt % args}", flush=True)


if __name__ == "__main__":
    print(f"listening on 0.0.0.0:{PORT}", flush=True)
    if REDIS_HOST:
        print(f"counting visits in Redis at {REDIS_HOST}:{REDIS_PORT}", flush=True)
    HTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
