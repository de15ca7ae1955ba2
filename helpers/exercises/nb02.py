"""02-containers: run the sample web app on a host port; quiz on instances, isolation, ports."""
from __future__ import annotations


from docker.errors import ImageNotFound

from . import Line, Quiz, exercise, question
from helpers.course.labels import labels
from helpers.course.settings import DATA
from helpers.course.ports import fetch, free_port, port_is_free

WEBAPP = "course02.invalid/webapp"
WEBAPP_DIR = DATA / "webapp"
HOST_PORT = 40000       # the port the notes use: docker run -p 40000:8080 <image>
CONTAINER_PORT = 8080   # the port app.py listens on inside the container
NAME = "course02-web"   # the container the exercise asks for

# The reference solution, once as the learner types it in a terminal and once in Python;
# solve() runs the first, a test runs the second. {port} is 40000 unless something holds it.
ANSWER_CLI = f"docker run -d --name {NAME} -p 127.0.0.1:{{port}}:{CONTAINER_PORT} {WEBAPP}"
ANSWER_SDK = (f"client.containers.run({WEBAPP!r}, detach=True, name={NAME!r},\n"
              f"                      ports={{{{'{CONTAINER_PORT}/tcp': ('127.0.0.1', {{port}})}}}})")
# Plausible wrong attempts the Check rejects (tests run each one). {addr} is a host address
# that is not loopback: the exercise text says 0.0.0.0 (every interface), which the course's
# own tests never open.
WRONG = {
    "every interface": f"docker run -d --name {NAME} -p {{addr}}:{{port}}:{CONTAINER_PORT} {WEBAPP}",
    "container side only": f"docker run -d --name {NAME} -p 127.0.0.1::{CONTAINER_PORT} {WEBAPP}",
    "ports swapped": f"docker run -d --name {NAME} -p 127.0.0.1:{CONTAINER_PORT}:{{port}} {WEBAPP}",
    "no name": f"docker run -d -p 127.0.0.1:{{port}}:{CONTAINER_PORT} {WEBAPP}",
}


def build_webapp(client):
    """`docker build -t course02.invalid/webapp data/webapp`, labelled for this lesson's clean-up."""
    image, _ = client.images.build(path=str(WEBAPP_DIR), tag=WEBAPP, labels=labels(2), rm=True)
    return image


def answer_port() -> int:
    """40000, or the next free port when another program holds it (the notebook says which)."""
    return free_port(HOST_PORT, quiet=True)


def _solve(client):
    from helpers.course.cli import run
    try:
        client.images.get(WEBAPP)
    except ImageNotFound:
        build_webapp(client)
    run(ANSWER_CLI.format(port=answer_port()), echo=False)


@exercise(
    id="02.webapp", title="Run the web app on the host's port 40000",
    task=f"Run a container named <code>{NAME}</code> from <code>{WEBAPP}</code> in the "
         "background so that the page "
         f"answers at <code>http://127.0.0.1:{HOST_PORT}/</code> on your machine, and only on "
         f"your machine (the app listens on {CONTAINER_PORT} inside the container). If "
         f"{HOST_PORT} is taken by another program, use the port the notebook chose. "
         "Careful: a port published on every network interface (0.0.0.0), or only the "
         "container's side of it (which gets a random host port), does not pass.",
    hint="`docker run` has an option that publishes a container's port as HOST:CONTAINER; put "
         "the loopback address in front of the pair so that only your own machine can reach it. "
         "Run it in the background, and give the container the name the exercise asks for.",
    answer="# in a terminal, or in a %%docker cell:\n" + ANSWER_CLI.format(port=HOST_PORT) +
           "\n\n# or in Python:\n" + ANSWER_SDK.format(port=HOST_PORT),
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
        return lines + [Line(False, f"{NAME} does not publish its port {CONTAINER_PORT} on the "
                                    "host",
                             f"remove it (docker rm -f {running[0].name}) and run again with "
                             f"-p 127.0.0.1:{HOST_PORT}:{CONTAINER_PORT}")]
    by_port = {int(b["HostPort"]): (c, b) for c, b in published}
    # 40000, or the first port above it that no other program holds (the notebook's choice)
    port = next((p for p in range(HOST_PORT, HOST_PORT + 200)
                 if p in by_port or port_is_free(p)), HOST_PORT)
    if port not in by_port:
        other = min(by_port)
        return lines + [Line(False, f"{by_port[other][0].name} publishes {CONTAINER_PORT} on "
                                    f"host port {other}, not {port}",
                             f"remove it and run again with "
                             f"-p 127.0.0.1:{port}:{CONTAINER_PORT}")]
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


# ---------------------------------------------------------------- predictions (before the cell)

def predict(name: str, notebook: str = "02") -> Quiz:
    """A prediction asked before the cell that shows the answer: `predict("oom")`. Its
    questions are registered as `predict-NN-name.q`, apart from the notebook's quiz."""
    return Quiz(f"predict-{notebook}-{name}")


question("predict-02-oom.q", "A container limited to 32 MiB keeps asking for more memory. What "
         "happens when it passes the limit?",
         ["It slows down and swaps to disk", "The kernel kills it (SIGKILL): exit status 137, "
          "and docker inspect says OOMKilled", "Docker raises the limit"], 1,
         "The limit lives in the container's cgroup; with --memory-swap equal to --memory there "
         "is no swap either, so the kernel's OOM killer ends the process. 137 = 128 + 9 (SIGKILL).")
question("predict-02-stop.q", "Two containers run the same Python program that exits on SIGTERM: "
         "one started in exec form (python -c ...), one in shell form (sh -c \"python -c ...\"), "
         "both with --stop-timeout 2. How long does docker stop take for each?",
         ["Both well under a second", "Exec form well under a second; shell form about 2 s",
          "Both about 2 s"], 1,
         "In shell form the shell is PID 1. It gets SIGTERM, ignores it (PID 1 only gets signals "
         "it has a handler for) and never passes it on, so the engine waits the timeout and "
         "sends SIGKILL. In exec form Python is PID 1 and handles SIGTERM itself.")


question("02.ports", "In `docker run -p 40000:8080 course02.invalid/webapp`, which number is the port on "
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
