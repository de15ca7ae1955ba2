"""05-compose: extend the stack with a service and a named volume; quiz on projects, DNS, scaling."""
from __future__ import annotations

from pathlib import Path

from . import Line, exercise, question

from helpers.course.compose import (CONFIG_FILES, PROJECT, SERVICE, ComposeError, Stack, config, insert_after,
                       learner_copy, read, reset_copy)
from helpers.course.settings import ROOT

NN = "05"
NAME = f"course{NN}"
WORK = ROOT / "notebooks" / "work" / NN          # the learner's folder (not in git)
SHIPPED = ("redis", "web")                       # the services the stack comes with
WEBAPP = f"course{NN}.invalid/webapp:latest"                    # what `up` builds for the web service
UP = "docker compose -f work/05/compose.yaml up -d"   # from the notebooks folder

SERVICE_BLOCK = """\
  visits-log:
    image: busybox:1.35
    pull_policy: never
    command: ["sh", "-c", "while true; do wget -qO- http://web:8080/ | grep visits >> /logs/visits.log; sleep 2; done"]
    volumes:
      - logs:/logs
    depends_on: [web]
    stop_grace_period: 1s
    labels:
      dockercourse.notebook: "${DOCKERCOURSE_NOTEBOOK}"
"""
VOLUME_BLOCK = """\
  logs:
    labels:
      dockercourse.notebook: "${DOCKERCOURSE_NOTEBOOK}"
"""


def where(path: Path | None = None) -> str:
    path = path or WORK
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def prepare(port: int | None = None, overwrite: bool = False, folder: Path | None = None) -> Path:
    """The learner's copy of the stack: work/05/compose.yaml and its .env."""
    return learner_copy(folder or WORK, NN, overwrite=overwrite, port=port)


def reference(text: str) -> str:
    """The reference solution applied to a copy's text: the service and the volume added."""
    return insert_after(insert_after(text, "services:", SERVICE_BLOCK), "volumes:", VOLUME_BLOCK)


def stack(folder: Path | None = None, lesson=None) -> Stack:
    from helpers.course.lesson import Lesson
    return Stack([(folder or WORK) / "compose.yaml"], NAME, lesson=lesson or Lesson(5))


def _solve(client):
    from helpers.course.ports import free_port
    target = prepare(overwrite=True, port=free_port(40000, quiet=True))
    target.write_text(reference(target.read_text()))
    stack().up()


def _reset(client):
    reset_copy(NAME, WORK, prepare)


@exercise(
    id="05.extend", title="Add a service and a named volume to the stack",
    task=f"The cell above copied the stack into <code>{where()}/compose.yaml</code>. Add to that copy <b>a new service</b> (for example one that "
         "asks the web app for a page by its service name every few seconds and writes what it "
         "gets into a file) and <b>a named volume</b> that a service mounts. Then start your "
         f"copy as the project <code>{NAME}</code> (from the notebooks folder: "
         f"<code>{UP}</code>, or the stack panel with your file). The Check looks at what runs "
         "in the engine: a new service, on the project's network, with the volume mounted.",
    hint="Two places change: a new entry under the top-level `services:` (with an `image:`, "
         "`pull_policy: never` and a command that keeps running), and a new entry under the "
         "top-level `volumes:`. Declaring the volume is not enough: the service lists it under "
         "its own `volumes:` as NAME:/path. Leave the service on the default network, so that "
         "it reaches web by name.",
    answer="# under services:\n" + SERVICE_BLOCK + "# under volumes:\n" + VOLUME_BLOCK +
           f"# then, from the notebooks folder:\n{UP}",
    solve=_solve, reset=_reset,
    names={"projects": [NAME], "images": [WEBAPP]})
def check_extend(client) -> list:
    containers = client.containers.list(all=True, filters={"label": f"{PROJECT}={NAME}"},
                                        ignore_removed=True)
    if not containers:
        return [Line(False, f"no container of the project {NAME} is on the engine",
                     f"start your copy: {UP} (from the notebooks folder)")]
    files = {f for c in containers for f in c.labels.get(CONFIG_FILES, "").split(",") if f}
    mine = WORK.resolve() / "compose.yaml"
    if str(mine) not in files:
        return [Line(False, f"{NAME} runs from {', '.join(sorted(files)) or 'another file'}, "
                            f"not from your copy {where()}/compose.yaml",
                     f"docker compose -p {NAME} down, then {UP}")]
    lines = [Line(True, f"{NAME} runs from your copy {where()}/compose.yaml")]
    running = [c for c in containers if c.status == "running"]
    services = {c.labels.get(SERVICE) for c in containers}
    new = sorted(s for s in services if s not in SHIPPED)
    if not new:
        return lines + [Line(False, "the stack has only the services it came with (web, redis)",
                             "add a service under `services:` in your copy, then up -d again")]
    # The project's own network that web is on: a new service there reaches web by name.
    project_nets = {n.name for n in client.networks.list(
        filters={"label": f"{PROJECT}={NAME}"})}
    web_nets = {net for c in running if c.labels.get(SERVICE) == "web"
                for net in c.attrs["NetworkSettings"]["Networks"]} & project_nets
    for service in new:
        mine_running = [c for c in running if c.labels.get(SERVICE) == service]
        if not mine_running:
            stopped = [c for c in containers if c.labels.get(SERVICE) == service][0]
            logs = stopped.logs(tail=2).decode(errors="replace").strip().replace("\n", " | ")
            lines.append(Line(False, f"service {service} is not running ({stopped.status}; its "
                                     f"last words: {logs or 'none'})",
                              "give it a command that keeps running, then up -d again"))
            continue
        nets = set(mine_running[0].attrs["NetworkSettings"]["Networks"])
        shared = nets & (web_nets or project_nets)
        if not shared:
            lines.append(Line(False, f"service {service} is not on the project's network (it is "
                                     f"on: {', '.join(sorted(nets)) or 'none'}), so it cannot "
                                     "reach web or redis by name",
                              "remove `network_mode:` (or list the default network under its "
                              "`networks:`), then up -d again"))
        else:
            lines.append(Line(True, f"service {service} runs on the project's network "
                                    f"{', '.join(sorted(shared))}"))
    lines += _volume_lines(running, mine)
    return lines


def _volume_lines(running: list, compose_file: Path) -> list:
    """Named volumes the file declares, each mounted into a running container of the project."""
    try:
        config([compose_file], NAME)
        # the file as written: `docker compose config` leaves out volumes nothing mounts
        raw = read(compose_file).get("volumes") or {}
    except ComposeError as exc:
        return [Line(False, f"your copy cannot be read: {exc}", "fix the line it names")]
    declared = {key: (v or {}).get("name") or f"{NAME}_{key}" for key, v in raw.items()}
    shipped = {"redis-data"}
    added = {k: n for k, n in declared.items() if k not in shipped}
    if not added:
        return [Line(False, "no new named volume is declared under the top-level `volumes:`",
                     "add one (e.g. `logs:`) and mount it in your service as logs:/path")]
    mounts = {m["Name"]: (c.labels.get(SERVICE), m["Destination"]) for c in running
              for m in c.attrs.get("Mounts", []) if m.get("Type") == "volume"}
    lines = []
    for key, name in sorted(added.items()):
        if name in mounts:
            service, path = mounts[name]
            lines.append(Line(True, f"volume {key} ({name}) is mounted at {path} in service "
                                    f"{service}"))
        else:
            lines.append(Line(False, f"volume {key} is declared but no running container "
                                     "mounts it (Compose does not even create it)",
                              f"list it under your service's `volumes:` as {key}:/some/path, "
                              "then up -d again"))
    return lines


question("05.dns", "In the stack, how does the web app find Redis?",
         ["By Redis's container ID, written into the web app's code",
          "By the service's name, `redis`: Compose puts both services on the project's network, "
          "whose DNS answers service names",
          "Through a port published on 127.0.0.1"], 1,
         "Every project gets a network (course05_default); the engine's DNS on it answers each "
         "service's name with its containers' addresses. That is why the file says "
         "REDIS_HOST: redis, and why Redis needs no published port at all.")
question("05.scale", "The web service publishes 127.0.0.1:40000:8080. You run `docker compose up "
         "-d --scale web=3`. What happens?",
         ["Three web containers share port 40000",
          "The second and third fail to start: only one container can hold the host's port 40000",
          "Compose picks 40001 and 40002 by itself"], 1,
         "A host port belongs to one container. A service you scale publishes no fixed host port "
         "(or a range); its copies are reached by name on the project's network, where the DNS "
         "name answers with every copy's address.")
question("05.down", "What does `docker compose down -v` remove that `docker compose down` keeps?",
         ["The images", "The named volumes, and with them Redis's data (the visit count)",
          "Nothing: -v only prints more"], 1,
         "`down` removes the containers and the project's networks; `-v` also removes the "
         "named volumes the file declares. Images stay either way (`--rmi` removes those).")
question("05.depends", "`depends_on: [redis]` in the web service guarantees that...",
         ["Redis answers before web starts", "Compose starts Redis's container before web's "
          "(and stops it after)", "web restarts when Redis does"], 1,
         "Plain `depends_on` orders starting and stopping, nothing more: Redis's process may "
         "still be loading when web starts. Waiting until Redis really answers needs a health "
         "check and `condition: service_healthy` (lesson 06).")
