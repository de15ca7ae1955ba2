"""02-containers: run the sample web app on a host port; quiz on instances, isolation, ports."""
from __future__ import annotations

from pathlib import Path

from docker.errors import ImageNotFound

from . import Line, exercise, question
from ..labels import labels
from ..ports import fetch, free_port, port_is_free

WEBAPP = "course02/webapp"
WEBAPP_DIR = Path(__file__).resolve().parents[2] / "data" / "webapp"
HOST_PORT = 40000       # the port the notes use: docker run -p 40000:8080 <image>
CONTAINER_PORT = 8080   # the port app.py listens on inside the container
NAME = "course02-web"   # the container the exercise asks for


def build_webapp(client):
    """`docker build -t course02/webapp data/webapp`, labelled for this lesson's clean-up."""
    image, _ = client.images.build(path=str(WEBAPP_DIR), tag=WEBAPP, labels=labels(2), rm=True)
    return image


def _solve(client):
    build_webapp(client)
    port = free_port(HOST_PORT, quiet=True)
    client.containers.run(WEBAPP, detach=True, name=NAME, labels=labels(2),
                          ports={f"{CONTAINER_PORT}/tcp": ("127.0.0.1", port)})


@exercise(
    id="02.webapp", title="Run the web app on the host's port 40000",
    task=f"Run a container named <code>{NAME}</code> from <code>{WEBAPP}</code> in the "
         "background so that the page "
         f"answers at <code>http://127.0.0.1:{HOST_PORT}/</code> on your machine (the app listens "
         f"on {CONTAINER_PORT} inside the container). If {HOST_PORT} is taken by another program, "
         "use the port the cell above chose.",
    hint="`-p HOST:CONTAINER` publishes a container's port on the host; add 127.0.0.1: in "
         "front so that only your own machine can reach it. `-d` runs it in the background.",
    answer=f"docker run -d --name {NAME} -p 127.0.0.1:{HOST_PORT}:{CONTAINER_PORT} {WEBAPP}\n"
           f"# or: client.containers.run('{WEBAPP}', detach=True, name='{NAME}',\n"
           f"#         ports={{'{CONTAINER_PORT}/tcp': ('127.0.0.1', {HOST_PORT})}})",
    solve=_solve, names={"containers": [NAME]})
def check_webapp(client) -> list:
    try:
        image = client.images.get(WEBAPP)
    except ImageNotFound:
        return [Line(False, f"the image {WEBAPP} is not on the engine",
                     "run the build cell of section 1 first")]
    lines = [Line(True, f"the image {WEBAPP} is there ({image.short_id})")]
    running = client.containers.list(filters={"name": f"^{NAME}$"}, ignore_removed=True)
    if not running:
        return lines + [Line(False, f"no running container is named {NAME}",
                             "docker ps -a shows your containers and their names; "
                             "--name gives one")]
    if running[0].image.id != image.id:
        return lines + [Line(False, f"{NAME} runs {running[0].image.tags or running[0].image.short_id}, "
                                    f"not {WEBAPP}", f"docker rm -f {NAME}, then run it from {WEBAPP}")]
    lines.append(Line(True, f"{NAME} runs, made from {WEBAPP}"))
    published = [(c, b) for c in running
                 for b in (c.ports.get(f"{CONTAINER_PORT}/tcp") or [])]
    if not published:
        return lines + [Line(False, f"none of them publishes port {CONTAINER_PORT} on the host",
                             f"remove it (docker rm -f {running[0].name}) and run again with "
                             f"-p 127.0.0.1:{HOST_PORT}:{CONTAINER_PORT}")]
    by_port = {int(b["HostPort"]): (c, b) for c, b in published}
    if HOST_PORT in by_port:
        port = HOST_PORT
    elif port_is_free(HOST_PORT):
        other = min(by_port)
        return lines + [Line(False, f"{by_port[other][0].name} publishes {CONTAINER_PORT} on "
                                    f"host port {other}, not {HOST_PORT}",
                             f"remove it and run again with "
                             f"-p 127.0.0.1:{HOST_PORT}:{CONTAINER_PORT}")]
    else:  # another program holds 40000: the next free port, as the notebook chose, is fine
        port = min(by_port)
    container, binding = by_port[port]
    lines.append(Line(True, f"{container.name} publishes container port {CONTAINER_PORT} on "
                            f"host port {port}"))
    if binding.get("HostIp") not in ("127.0.0.1", "::1"):
        lines.append(Line(False, f"port {port} is open on every network interface "
                                 f"({binding.get('HostIp') or '0.0.0.0'}), so your whole network "
                                 "can reach the app",
                          f"publish on loopback only: -p 127.0.0.1:{port}:{CONTAINER_PORT}"))
    try:
        page = fetch(f"http://127.0.0.1:{port}/", wait_seconds=3)
    except OSError as exc:
        return lines + [Line(False, f"nothing answered at http://127.0.0.1:{port}/ ({exc})",
                             f"look at docker logs {container.name}")]
    first = page.splitlines()[0] if page else "(empty page)"
    lines.append(Line("hostname:" in page, f"http://127.0.0.1:{port}/ answers: {first}",
                      "" if "hostname:" in page else "that is not the course's web app"))
    return lines


question("02.ports", "In `docker run -p 40000:8080 course02/webapp`, which number is the port on "
         "your machine?",
         ["8080", "40000", "both: the container uses both"], 1,
         "`-p HOST:CONTAINER`: the engine listens on the host's 40000 and forwards to 8080 inside "
         "the container, where the app listens. Inside the container nothing knows about 40000.")
question("02.kernel", "A container runs `uname -r`. What does it print?",
         ["The host's kernel version", "The kernel version of the image's distribution",
          "Nothing: a container has no kernel"], 0,
         "Containers are isolated processes on the host's own kernel: they have their own file "
         "system, host name and process IDs, but no kernel of their own. A VM boots its own.")
question("02.exited", "A container has exited. Is what it wrote to its file system gone?",
         ["Yes, at once", "No: an exited container keeps its writable layer until it is removed "
          "(docker rm)", "Only files in /tmp survive"], 1,
         "Exited is not removed: `docker start` runs it again with its files as it left them. "
         "`docker rm` deletes the container and its writable layer; data that must outlive it "
         "belongs in a volume (lesson 04).")
question("02.pid1", "Inside a container, `ps` shows the app as PID 1. Is it PID 1 on the host too?",
         ["Yes", "No: the container has its own process ID namespace; on the host the same "
                 "process has an ordinary PID", "PIDs do not exist in containers"], 1,
         "The kernel gives each container its own numbering of processes: PID 1 inside is, on the "
         "host, a process like any other (`docker inspect -f '{{.State.Pid}}'` shows its host "
         "PID).")
