"""Docker Compose v2 from Python (taught in 05-compose and 06-healthchecks).

    stack = Stack(["../data/compose/05/compose.yaml"], "course05", lesson=lesson)
    stack.config()        # docker compose config: the file checked, variables filled in
    stack.up()            # docker compose -p course05 -f ... up -d --pull never
    stack.services()      # docker compose ps + docker compose logs --tail 3, per service
    stack.down()          # docker compose -p course05 down -v --remove-orphans

The `docker compose` plugin is driven through python-on-whales. A project's containers are
found by the labels Compose puts on them (`com.docker.compose.project`, `...service`), never by
their names. A file is checked before anything starts: a YAML mistake is reported with its line,
a key Compose does not accept with its path and line, a missing image with the cell that makes
it (nothing is ever pulled). When `up` fails half-way, what it made is taken down again.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from helpers.course.settings import DATA, ROOT

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
CONFIG_FILES = "com.docker.compose.project.config_files"
COMPOSE_DIR = DATA / "compose"
STOP_SECONDS = 1   # `down --timeout`: a PID 1 that ignores SIGTERM (the web app) is killed then


class ComposeError(RuntimeError):
    """A compose file or command the engine could not use; the message says what to do."""


# ---------------------------------------------------------------- reading and checking a file

def shown(path: Path | str) -> str:
    """A path as a learner finds it: relative to the course's folder when inside it."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def read(path: Path | str) -> dict:
    """The file parsed as YAML (PyYAML), or a ComposeError naming the line of the mistake."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ComposeError(f"There is no compose file at {shown(path)}: check the path "
                           "(or run the cell that copies it).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ComposeError(yaml_message(exc, text, path)) from None
    if not isinstance(data, dict):
        raise ComposeError(f"{shown(path)} is not a compose file: its top level must be keys "
                           "such as `services:`, and it is "
                           f"{'empty' if data is None else type(data).__name__}.")
    return data


def yaml_message(exc: yaml.YAMLError, text: str, path: Path) -> str:
    """'line 4, column 4: ...' with the line itself, from PyYAML's marks."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"{shown(path)} is not valid YAML: {problem}"
    lines = text.splitlines()
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    why = f" ({context} that starts on line {context_mark.line + 1})" \
        if context and context_mark is not None and context_mark.line != mark.line else ""
    # YAML often notices a mistake a line late: show the line before it too
    shown_lines = "\n".join(f"    {n + 1:4} | {lines[n]}" for n in range(max(mark.line - 1, 0),
                                                                       mark.line + 1)
                            if n < len(lines))
    source = lines[mark.line] if mark.line < len(lines) else ""
    hint = "\nKeys at the same level need the same indentation, with spaces (not tabs)." \
        if "indent" in problem or "block" in problem or "mapping" in problem or "\t" in source \
        else ""
    return (f"{shown(path)} is not valid YAML: line {mark.line + 1}, column {mark.column + 1}: "
            f"{problem}{why}.\n{shown_lines}{hint}")


def key_line(text: str, keys: list) -> int | None:
    """The line (1-based) of the key at `keys` (['services', 'web', 'imagee']), or None."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if k.value == key]
            if not found:
                return line
            k, node = found[0]
            line = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            return line
    return line


_VALIDATING = re.compile(r"validating (?P<file>.+?): (?P<path>[\w.\-]+) (?P<what>.+)")
_ADDITIONAL = re.compile(r"Additional property (?P<key>\S+) is not allowed")


def cli_message(stderr: str, files: list) -> str:
    """Compose's own complaint about a file, with the offending key's path and line."""
    text = "\n".join(l for l in stderr.strip().splitlines() if l.strip()) or "(no message)"
    found = _VALIDATING.search(text)
    if not found:
        return text.splitlines()[-1]
    path, what = found["path"], found["what"].strip()
    extra = _ADDITIONAL.search(what)
    if extra:
        path = f"{path}.{extra['key']}"
        what = (f"`{extra['key']}` is not a key Compose knows here (a typo? see "
                "https://docs.docker.com/compose/compose-file/)")
    file = Path(found["file"])
    where = ""
    for candidate in [file, *map(Path, files)]:
        if candidate.exists():
            line = key_line(candidate.read_text(), path.split("."))
            if line:
                where = f", line {line}"
                file = candidate
                break
    return f"{shown(file)}{where}: the key `{path}`: {what}"


def whales(files: list | None = None, project: str | None = None):
    """A python-on-whales client for `docker compose -p PROJECT -f FILE...` on the course's
    engine (the same one the SDK uses)."""
    from python_on_whales import DockerClient

    from helpers.course.engine import use_course_engine
    use_course_engine()
    return DockerClient(compose_files=[str(f) for f in files or []],
                        compose_project_name=project)


def _whales_error():
    from python_on_whales.exceptions import DockerException
    return DockerException


def config(files: list, project: str | None = None) -> dict:
    """`docker compose config --format json`: the file(s) checked by Compose itself, variables
    filled in; every mistake raised as a ComposeError naming its line or key path."""
    for f in files:
        read(f)   # YAML first: PyYAML names the line, Compose's parser often does not
    try:
        return whales(files, project).compose.config(return_json=True)
    except _whales_error() as exc:
        raise ComposeError(cli_message(exc.stderr or str(exc), files)) from None


def edges(cfg: dict) -> list[tuple]:
    """`depends_on` as (service, the service it depends on, condition), as the file says."""
    found = []
    for name, service in sorted((cfg.get("services") or {}).items()):
        deps = service.get("depends_on") or {}
        if isinstance(deps, list):   # short form, as in a file not yet normalised
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, how in sorted(deps.items()):
            found.append((name, dep, (how or {}).get("condition", "service_started")))
    return found


def replicas(cfg: dict, scales: dict | None = None) -> dict:
    """How many containers each service gets: `--scale`, else `deploy.replicas`/`scale`, else 1."""
    out = {}
    for name, service in (cfg.get("services") or {}).items():
        n = (service.get("deploy") or {}).get("replicas") or service.get("scale") or 1
        out[name] = int((scales or {}).get(name, n))
    return out


def base_images(context: Path, dockerfile: str = "Dockerfile") -> list[str]:
    """The images a Dockerfile starts FROM (not its own stages)."""
    try:
        text = (Path(context) / dockerfile).read_text()
    except OSError:
        return []
    images, stages = [], set()
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].upper() == "FROM":
            words = [w for w in words[1:] if not w.startswith("--")]
            if words and words[0].lower() not in stages and words[0] != "scratch":
                images.append(words[0])
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2].lower())
    return images


def full_tag(image: str) -> str:
    """`course05.invalid/webapp` → `course05.invalid/webapp:latest`, as the engine lists its tags."""
    return image if ":" in image.rsplit("/", 1)[-1] else f"{image}:latest"


def kit_advice(image: str) -> str | None:
    """Where a course image comes from, if `image` is one of the kit's."""
    from helpers.course.images import catalogue
    for item in catalogue(optional=True).values():
        if item.ref == image:
            return (f"it is one of the course's images: run the set-up cell of notebook 00, or "
                    f"in a terminal `.venv/bin/python -m helpers.images ensure --name {item.name}`")
    return None


def missing_images(client, cfg: dict, built_by: dict | None = None) -> list[str]:
    """Every image the stack needs that is not on the engine, each with the cell that makes it.

    A service with `build:` needs its Dockerfile's FROM images; one without needs its `image`.
    """
    from docker.errors import ImageNotFound
    needed: dict = {}
    for name, service in sorted((cfg.get("services") or {}).items()):
        build = service.get("build")
        if build:
            for base in base_images(build.get("context", "."), build.get("dockerfile") or
                                    "Dockerfile"):
                needed.setdefault(base, f"FROM in the Dockerfile of service `{name}`")
        elif service.get("image"):
            needed.setdefault(service["image"], f"service `{name}`")
    problems, tags = [], None
    for image, why in needed.items():
        try:
            client.images.get(image)
        except ImageNotFound:
            if tags is None:   # one request (images.list() inspects each image in turn)
                tags = [t for i in client.api.images() for t in i.get("RepoTags") or []]
            close = difflib.get_close_matches(full_tag(image), tags, n=1, cutoff=0.8)
            where = (built_by or {}).get(image) or kit_advice(image) or \
                "build or load it first (`docker images` lists what this engine has)"
            problems.append(f"The image {image} ({why}) is not on this engine, and the course "
                            f"does not pull it: {where}." +
                            (f" Did you mean {close[0]}?" if close else ""))
    return problems


# ---------------------------------------------------------------- progress of up and down

_STEP = re.compile(r'^\s*(?P<kind>Network|Volume|Container)\s+"?(?P<name>[^"\s]+)"?\s+'
                   r'(?P<verb>[A-Z][a-z]+)')
_UP_DONE = {"Created", "Recreated", "Started", "Running", "Healthy"}
_DOWN_DONE = {"Stopped", "Removed"}


@dataclass
class Step:
    kind: str   # Network, Volume, Container
    name: str
    verb: str   # Creating, Created, Starting, Started, Waiting, Healthy, Stopping, Removed...


def parse_step(line: str) -> Step | None:
    """' Container course05-web-1  Started' → Step('Container', 'course05-web-1', 'Started')."""
    found = _STEP.match(line)
    return Step(found["kind"], found["name"], found["verb"]) if found else None


# ---------------------------------------------------------------- the project

@dataclass
class ServiceRow:
    """One container of a service, as `docker compose ps` and `logs --tail` show it."""
    service: str
    container: str
    state: str          # running, exited, created... or "not created"
    health: str         # healthy, unhealthy, starting, or "" without a healthcheck
    ports: str
    logs: list = field(default_factory=list)
    number: int = 0


class Stack:
    """One Compose project: its files, its name, and the lesson that records what it makes.

    `files` are merged in order, as `docker compose -f A -f B` merges them; the project's folder
    (where `.env` is read) is the first file's.
    """

    def __init__(self, files, project: str, *, lesson, built_by: dict | None = None):
        self.files = [Path(f).resolve() for f in ([files] if isinstance(files, (str, Path))
                                                  else files)]
        self.project, self.lesson = project, lesson
        self.built_by = built_by or {}
        self.steps: list[Step] = []     # the last up/down's progress, as Compose printed it
        self.output: list[str] = []     # ... and every line it printed

    def __repr__(self) -> str:
        return f"Stack({[shown(f) for f in self.files]}, {self.project!r})"

    @property
    def client(self):
        return self.lesson.client

    @property
    def compose(self):
        """python-on-whales' `docker.compose`, for this project and these files."""
        return whales(self.files, self.project).compose

    def command(self, *args: str) -> str:
        """The CLI command a learner would type for this stack."""
        files = " ".join(f"-f {shown(f)}" for f in self.files)
        return f"docker compose -p {self.project} {files} {' '.join(args)}".strip()

    # -- reading ------------------------------------------------------------------------
    def config(self) -> dict:
        return config(self.files, self.project)

    def edges(self) -> list[tuple]:
        return edges(self.config())

    def containers(self, service: str | None = None, all: bool = True) -> list:
        """The project's containers (SDK models), found by Compose's labels."""
        wanted = [f"{PROJECT}={self.project}"] + ([f"{SERVICE}={service}"] if service else [])
        found = self.client.containers.list(all=all, filters={"label": wanted},
                                            ignore_removed=True)
        return sorted(found, key=lambda c: (c.labels.get(SERVICE, ""),
                                            int(c.labels.get(NUMBER, "0") or 0)))

    def networks(self) -> list:
        return self.client.networks.list(filters={"label": f"{PROJECT}={self.project}"})

    def volumes(self) -> list:
        return self.client.volumes.list(filters={"label": f"{PROJECT}={self.project}"})

    def services(self, tail: int = 3, cfg: dict | None = None) -> list[ServiceRow]:
        """Every service of the file with each of its containers: state, health, ports, and
        the last `tail` log lines. A service without a container shows as "not created"."""
        from docker.errors import NotFound
        rows, seen = [], set()
        for c in self.containers():
            state = c.attrs.get("State") or {}
            service = c.labels.get(SERVICE, "?")
            seen.add(service)
            try:
                logs = c.logs(tail=tail).decode(errors="replace").splitlines() if tail else []
            except NotFound:   # removed since the listing (a `down` under way)
                continue
            ports = ", ".join(f"{b['HostIp']}:{b['HostPort']}→{p.split('/')[0]}"
                              for p, binds in (c.ports or {}).items() for b in binds or [])
            rows.append(ServiceRow(service, c.name, state.get("Status", c.status),
                                   (state.get("Health") or {}).get("Status", ""), ports,
                                   [l[-160:] for l in logs[-tail:]] if tail else [],
                                   int(c.labels.get(NUMBER, "0") or 0)))
        try:
            declared = (cfg or self.config()).get("services") or {}
        except ComposeError:
            declared = {}
        rows += [ServiceRow(name, "", "not created", "", "") for name in sorted(declared)
                 if name not in seen]
        return sorted(rows, key=lambda r: (r.service, r.number))

    def logs(self, service: str | None = None, tail: int = 20) -> str:
        """`docker compose logs --tail N [SERVICE]`, through python-on-whales."""
        return self.compose.logs(services=[service] if service else [], tail=str(tail),
                                 no_log_prefix=False)

    # -- changing -------------------------------------------------------------------------
    def _run(self, stream, done: set, total: int, progress) -> None:
        """Feed Compose's progress lines to the bar; keep them in .steps and .output."""
        finished = set()
        for _source, raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            self.output.append(line)
            step = parse_step(line)
            if step is None:
                continue
            self.steps.append(step)
            if step.verb in done:
                finished.add((step.kind, step.name, step.verb))
            if progress is not None:
                progress.update(min(len(finished), total), total,
                                f"{step.kind} {step.name} {step.verb.lower()}")

    def up(self, progress=None, wait: bool = True, wait_seconds: int = 60,
           scales: dict | None = None) -> list:
        """`docker compose up -d --pull never [--wait]`: check the file and the images, start
        the stack, and return its containers. On any failure, take it down again and raise a
        ComposeError that says what to do."""
        cfg = self.config()
        missing = missing_images(self.client, cfg, self.built_by)
        if missing:
            raise ComposeError("\n".join(missing) + "\nNothing was started.")
        self.lesson.record_project(self.project)   # before anything exists: clean-up finds it
        self.steps, self.output = [], []
        counts = replicas(cfg, scales)
        total = (len(cfg.get("networks") or {}) + len(cfg.get("volumes") or {}) +
                 2 * sum(counts.values()))
        try:
            stream = self.compose.up(detach=True, wait=wait, wait_timeout=wait_seconds,
                                     pull="never", scales=scales or {}, remove_orphans=True,
                                     color=False, stream_logs=True)
            self._run(stream, _UP_DONE, total, progress)
        except _whales_error() as exc:
            message = self._why_up_failed(exc.stderr or str(exc))
            self._record_built(cfg)
            self.down(quiet=True)
            raise ComposeError(message + "\nThe stack was taken down again: nothing is left "
                               "running.") from None
        except BaseException:
            self.down(quiet=True)
            raise
        self._record_built(cfg)
        if progress is not None:
            progress.close(f"{self.project}: {sum(counts.values())} container(s) up")
        return self.containers()

    def _record_built(self, cfg: dict) -> None:
        """Images Compose built for the stack are the lesson's (clean-up removes them)."""
        from docker.errors import ImageNotFound
        for service in (cfg.get("services") or {}).values():
            if service.get("build") and service.get("image"):
                tag = full_tag(service["image"])
                try:
                    self.lesson.record(self.client.images.get(tag), tags=[tag])
                except ImageNotFound:
                    pass

    def _why_up_failed(self, stderr: str) -> str:
        """Compose's last words, with what to do for the usual causes."""
        lines = [l.strip() for l in stderr.splitlines() if l.strip() and not parse_step(l)]
        last = lines[-1] if lines else stderr.strip()[-300:]
        port = re.search(r"(?:Bind for |listen tcp4? )([\d.]+:\d+)", last)
        if port:
            return (f"Host port {port[1]} is taken (by another container or program). Stop what "
                    "holds it, or give the stack another port (WEB_PORT in the environment or "
                    f"in .env beside the file). Compose said: {last}")
        if "unhealthy" in last or "exited" in last:
            from helpers.course.health import why_unhealthy
            reasons = [why_unhealthy(c) for c in self.containers()]
            reasons = [r for r in reasons if r]
            if reasons:
                return "\n".join(reasons) + f"\n(Compose said: {last})"
        if "No such image" in last or "pull access denied" in last:
            return f"{last}: build or load that image first; the course never pulls here."
        return f"`docker compose up` failed: {last}"

    def down(self, progress=None, volumes: bool = True, quiet: bool = False) -> None:
        """`docker compose down --remove-orphans [-v]`: containers, networks (and volumes)."""
        self.steps, self.output = [], []
        before = self.containers()
        total = 2 * len(before) + len(self.networks()) + (len(self.volumes()) if volumes else 0)
        try:
            stream = self.compose.down(volumes=volumes, remove_orphans=True,
                                       timeout=STOP_SECONDS, stream_logs=True)
            self._run(stream, _DOWN_DONE, max(total, 1), progress)
        except _whales_error() as exc:
            if quiet:
                return
            raise ComposeError(f"`docker compose down` failed: "
                               f"{cli_message(exc.stderr or str(exc), self.files)}") from None
        if progress is not None:
            progress.close(f"{self.project}: down")


def down_project(project: str) -> None:
    """`docker compose -p PROJECT down -v --remove-orphans -t 1`: Compose finds the project's
    containers, networks and volumes by their labels, so no file is needed."""
    try:
        whales(project=project).compose.down(volumes=True, remove_orphans=True,
                                             timeout=STOP_SECONDS, quiet=True)
    except _whales_error() as exc:
        raise ComposeError(f"`docker compose -p {project} down` failed: "
                           f"{(exc.stderr or str(exc)).strip()[-300:]}") from None


def reset_copy(project: str, work: Path, prepare) -> None:
    """An exercise's reset: the project down, the learner's copy back to the starter, and the
    learner's own edits kept beside it as `compose.yaml.yours` (never lost)."""
    import shutil
    down_project(project)
    target = work / "compose.yaml"
    if target.exists() and target.read_text() != prepare(folder=work / ".starter",
                                                         overwrite=True).read_text():
        shutil.copy2(target, work / "compose.yaml.yours")
    shutil.rmtree(work / ".starter", ignore_errors=True)
    prepare(folder=work, overwrite=True)


def learner_copy(folder: Path, nn: str, overwrite: bool = False, port: int | None = None) -> Path:
    """The course's stack (data/compose/stack.yaml) as one file the learner may edit:
    `folder/compose.yaml` with the project's name and the web app's build folder pointing back
    at data/webapp, and `folder/.env` with the lesson's label (and WEB_PORT). The shipped file
    is never written; the learner's edits are kept unless `overwrite`."""
    import os
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "compose.yaml"
    if overwrite or not target.exists():
        lines = (COMPOSE_DIR / "stack.yaml").read_text().splitlines()
        while lines and lines[0].startswith("#"):   # the shipped file's own header
            lines.pop(0)
        webapp = os.path.relpath(DATA / "webapp", folder)
        body = "\n".join(lines).replace("context: ../webapp", f"context: {webapp}")
        target.write_text(
            f"# Your copy of the course's stack for lesson {nn} (from data/compose/stack.yaml):\n"
            f"# edit it freely. From the notebooks folder:\n"
            f"#   docker compose -f {os.path.relpath(target, ROOT / 'notebooks')} up -d\n"
            f"# .env beside this file sets the lesson's label and the web app's host port.\n"
            f"name: course{nn}\n" + body.lstrip("\n") + "\n")
    env = folder / ".env"
    if overwrite or port or not env.exists():
        env.write_text(f"DOCKERCOURSE_NOTEBOOK={nn}\n" +
                       (f"WEB_PORT={port}\n" if port else ""))
    return target


def broken_copy(folder, nn: str, change=lambda text: text) -> Path:
    """A copy of the course's stack with a mistake made on purpose (`change`: text → text), to
    see what a panel says about it."""
    copy = learner_copy(Path(folder), nn, overwrite=True)
    copy.write_text(change(copy.read_text()))
    return copy


def insert_after(text: str, line: str, block: str) -> str:
    """`block` inserted under the first line equal to `line` (a YAML key), or appended with
    that key when there is none."""
    lines = text.splitlines()
    if line in lines:
        i = lines.index(line) + 1
        return "\n".join(lines[:i] + block.rstrip("\n").splitlines() + lines[i:]) + "\n"
    return text.rstrip("\n") + f"\n{line}\n{block.rstrip()}\n"
