"""The port publisher (02-containers): `docker run -d -p 127.0.0.1:HOST:CONTAINER IMAGE`, tried.

Pick an image, the port its program listens on inside the container and a port on your machine;
Publish starts the container with that one port published on 127.0.0.1 and fetches the page
through it. A port outside 1-65535, port 0, or a port something already holds gets a plain
answer before anything starts. The container runs inside the course's fence and goes when you
press Remove, or when its time is up.
"""
from __future__ import annotations

import threading

from docker.errors import APIError, NotFound

from helpers.course import fence
from helpers.course import settings
from helpers.course.ports import HOST, fetch, port_is_free
from helpers.course.ui import Panel, html_table


def check_port(value, side: str) -> str:
    """'' if `value` can be published on `side` ('host' or 'container'), else why not."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        return f"The {side} port must be a whole number, not {value!r}."
    if port == 0:
        return (f"Port 0 is not a port to publish on: to Docker it means 'any free port'. "
                f"Choose a {side} port from 1 to 65535 (40000 and up are usually free).")
    if not 1 <= port <= 65535:
        return f"Port {port} does not exist: TCP ports go from 1 to 65535."
    if side == "host" and not port_is_free(port):
        return (f"Port {port} on this machine is already in use (by another program or "
                f"container): choose another, or stop what holds it.")
    return ""


class PortPublisher(Panel):
    """Image, container port and host port in; a published container and its page out."""

    def __init__(self, image: str, container_port: int = 8080, host_port: int | None = None,
                 *, lesson):
        import ipywidgets as w
        super().__init__()
        self.lesson = lesson
        self.name = f"{lesson.prefix}-publisher"
        self.image = w.Text(value=image, description="image")
        self.container_port = w.IntText(value=container_port, description="container port")
        self.host_port = w.IntText(value=host_port or lesson.port, description="host port")
        self.table = w.HTML()
        self.page = w.HTML()
        self.container = None
        self._timer: threading.Timer | None = None
        self.button("publish", self.publish, "Publish", button_style="primary", icon="play")
        self.button("remove", self.remove, "Remove", icon="trash")
        self.layout(w.HTML(f"<b>Port publisher</b>: <code>docker run -d -p "
                           f"{HOST}:HOST:CONTAINER IMAGE</code>"),
                    w.HBox([self.image, self.container_port, self.host_port]),
                    w.HBox(list(self.buttons.values())), self.table, self.page)

    def command(self) -> str:
        return (f"docker run -d --name {self.name} -p {HOST}:{self.host_port.value}:"
                f"{self.container_port.value} {self.image.value}")

    def publish(self) -> bool:
        """Start the container with the one port published; fetch its page. True if it answered."""
        self.page.value = self.table.value = ""
        for value, side in ((self.container_port.value, "container"),
                            (self.host_port.value, "host")):
            problem = check_port(value, side)
            if problem:
                self.error(problem)
                return False
        self.remove()
        host, inside = int(self.host_port.value), int(self.container_port.value)
        try:
            self.container = self.lesson.client.containers.run(
                self.image.value, detach=True, name=self.name, labels=self.lesson.labels,
                ports={f"{inside}/tcp": (HOST, host)}, **fence.container_limits())
        except APIError as exc:
            self.container = None
            self._remove_named()   # a failed start may leave a created container behind
            if "port is already allocated" in str(exc) or "address already in use" in str(exc):
                self.error(f"Port {host} was taken meanwhile: choose another host port.")
                return False
            raise
        self._timer = threading.Timer(settings.fence_seconds(), self.guarded, (self.remove,))
        self._timer.daemon = True
        self._timer.start()
        self.container.reload()
        bindings = self.container.ports.get(f"{inside}/tcp") or []
        self.table.value = html_table(["container port", "published on", "as the CLI shows it"],
                                      [(f"{inside}/tcp", f"{b['HostIp']}:{b['HostPort']}",
                                        self.command()) for b in bindings])
        try:
            text = fetch(f"http://{HOST}:{host}/", timeout=2, wait_seconds=8)
        except OSError as exc:
            self.say(False, f"{self.name} runs, but nothing answered at http://{HOST}:{host}/ "
                            f"({exc})", f"does the program listen on {inside} inside? "
                                        f"docker logs {self.name}")
            return False
        self.page.value = html_table([f"http://{HOST}:{host}/ answered"],
                                     [[line] for line in text.splitlines()[:8]])
        self.say(True, f"Published: {HOST}:{host} on this machine → {inside} in {self.name} "
                       f"(fenced: {fence.describe()})")
        return True

    def _remove_named(self) -> None:
        try:
            self.lesson.client.containers.get(self.name).remove(force=True, v=True)
        except NotFound:
            pass

    def remove(self) -> None:
        """`docker rm -f` the panel's container (and its anonymous volumes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._remove_named()
        self.container = None
