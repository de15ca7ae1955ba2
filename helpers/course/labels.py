"""The one label on everything the course creates, and the clean-up that removes exactly that.

Every container, network, volume and image a notebook makes carries
`dockercourse.notebook=<NN>`, which shows which lesson it belongs to. What the course may remove
is decided by the creation record (`helpers.course.record`), never by the label alone: labels pass
through `FROM` and onto containers, so a learner's image built from a course image carries the
label too. `clean_up(NN)` removes what lesson NN recorded, and what its exercises asked for by
name; a learner's own containers, images, tags, volumes and networks stay.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import docker
from docker.errors import APIError, NotFound

from helpers.course import record
from helpers.course.engine import connect

LABEL = "dockercourse.notebook"
KIT = "kit"   # the record's lesson for the course's base images, which stay for next time


def notebook_id(nn: int | str) -> str:
    return f"{int(nn):02d}"


def labels(nn: int | str, **extra: str) -> dict:
    """The labels to pass as `labels=` to any SDK call that creates something."""
    return {LABEL: notebook_id(nn), **extra}


def label_filter(nn: int | str | None = None) -> dict:
    """`filters=` for list calls: one notebook's resources, or (nn=None) the whole course's."""
    return {"label": LABEL if nn is None else f"{LABEL}={notebook_id(nn)}"}


@dataclass
class CleanUpReport:
    containers: list = field(default_factory=list)
    networks: list = field(default_factory=list)
    volumes: list = field(default_factory=list)
    images: list = field(default_factory=list)
    projects: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def total(self) -> int:
        return (len(self.containers) + len(self.networks) + len(self.volumes) +
                len(self.images) + len(self.projects))

    def __str__(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in
                 (("containers", self.containers), ("networks", self.networks),
                  ("volumes", self.volumes), ("images", self.images),
                  ("Compose projects", self.projects))]
        text = "Removed " + ", ".join(parts) + "."
        if self.problems:
            text += "\nCould not remove: " + "; ".join(self.problems)
        for note in self.notes:
            text += "\n" + note
        return text


def _remove(report: CleanUpReport, kind: str, name: str, remove) -> bool:
    try:
        remove()
        getattr(report, kind).append(name)
        return True
    except NotFound:
        return True  # already gone: what we wanted
    except APIError as exc:
        report.problems.append(f"{kind[:-1]} {name}: {exc.explanation or exc}")
        return False


def _own_name(name: str, nn: str | None) -> bool:
    """The lesson's own names: `course02-web`, `course02.invalid/webapp:1`, `course05_data`."""
    return re.match(rf"^course{nn or '[0-9][0-9]'}[-_/.]", name) is not None


def _down_project(report: CleanUpReport, name: str) -> None:
    """`docker compose -p NAME down -v --remove-orphans` (Compose v2 finds it by its labels)."""
    from helpers.course.compose import ComposeError, down_project
    try:
        down_project(name)
        report.projects.append(name)
    except ComposeError as exc:
        report.problems.append(f"project {name}: {exc}")


def _clean(client: docker.DockerClient, nn: str | None, names: dict) -> CleanUpReport:
    report = CleanUpReport()
    wanted = lambda entry: entry["nn"] != KIT and (nn is None or entry["nn"] == nn)
    recorded = {kind: {k: e for k, e in record.entries(client, kind).items() if wanted(e)}
                for kind in record.KINDS}
    filters = label_filter(nn)
    lost = not record.exists(client) and bool(
        client.containers.list(all=True, filters=filters) or client.images.list(filters=filters)
        or client.volumes.list(filters=filters))
    if lost:
        report.notes.append(
            "The course's record of what it created on this engine is missing, so only the "
            "lessons' own names (course<NN>-..., course<NN>/...) were looked for.")
    own = lambda name: lost and _own_name(name, nn)

    for project in set(recorded["projects"]) | set(names.get("projects", [])):
        project_filter = {"label": f"com.docker.compose.project={project}"}
        if client.containers.list(all=True, filters=project_filter) or \
                client.networks.list(filters=project_filter) or \
                client.volumes.list(filters=project_filter):
            _down_project(report, project)
    record.forget(client, "projects", recorded["projects"])

    gone = []
    existing = {c.id: c for c in client.containers.list(all=True, ignore_removed=True)}
    for c in existing.values():
        if c.id in recorded["containers"] or asked(c.name, names.get("containers", [])) or \
                (own(c.name) and c.labels.get(LABEL)):
            if _remove(report, "containers", c.name, lambda c=c: c.remove(force=True, v=True)):
                gone.append(c.id)
    record.forget(client, "containers",
                  [k for k in recorded["containers"] if k not in existing] + gone)

    gone = []
    existing = {n.id: n for n in client.networks.list()}
    for n in existing.values():
        if n.id in recorded["networks"] or asked(n.name, names.get("networks", [])) or \
                (own(n.name) and (n.attrs.get("Labels") or {}).get(LABEL)):
            if _remove(report, "networks", n.name, n.remove):
                gone.append(n.id)
    record.forget(client, "networks", [k for k in recorded["networks"] if k not in existing] + gone)

    gone = []
    existing = {v.name: v for v in client.volumes.list()}
    for v in existing.values():
        if v.name in recorded["volumes"] or asked(v.name, names.get("volumes", [])) or \
                (own(v.name) and (v.attrs.get("Labels") or {}).get(LABEL)):
            if _remove(report, "volumes", v.name, lambda v=v: v.remove(force=True)):
                gone.append(v.name)
    record.forget(client, "volumes", [k for k in recorded["volumes"] if k not in existing] + gone)

    _clean_images(client, report, recorded["images"], names.get("images", []), own)
    return report


def asked(name: str, names: list) -> bool:
    """`name` is one an exercise asked for: given as is, or matching a pattern given (a name
    whose part is the learner's machine's, such as the port of lesson 01's registry)."""
    return any(name == n if isinstance(n, str) else bool(n.fullmatch(name)) for n in names)


def _clean_images(client, report, recorded: dict, tags_asked: list, own) -> None:
    """Remove the course's tags; an image goes with its last tag, so a learner's extra tag keeps
    it. Untagged images the course recorded (a build's other stages) go by ID."""
    images = {img.id: img for img in client.images.list(all=True)}
    forgotten = [k for k in recorded if k not in images]   # gone already
    todo = []
    for image_id, entry in recorded.items():
        img = images.get(image_id)
        if img is not None:
            todo.append((img, [t for t in entry.get("tags", []) if t in img.tags]))
    for img in images.values():
        if img.id in recorded:
            continue
        asked_tags = [t for t in img.tags if asked(t, tags_asked) or
                 (own(t) and (img.labels or {}).get(LABEL))]
        if asked_tags:
            todo.append((img, asked_tags))
    # Newest first: an image built FROM another course image goes before its parent.
    todo.sort(key=lambda pair: pair[0].attrs.get("Created", ""), reverse=True)
    for img, tags in todo:
        ok = True
        for tag in tags:
            ok &= _remove(report, "images", tag, lambda t=tag: client.images.remove(t))
        try:
            img.reload()
        except NotFound:
            forgotten.append(img.id)
            continue
        if not img.tags and img.id in recorded:
            if _remove(report, "images", img.short_id, lambda i=img: client.images.remove(i.id)):
                forgotten.append(img.id)
        elif ok:
            forgotten.append(img.id)  # what stays is held by a tag that is not the course's
    record.forget(client, "images", forgotten)


def _exercise_names(nn: str | None) -> dict:
    from helpers.exercises import all_exercises
    found: dict = {}
    for ex in all_exercises().values():
        if nn is None or ex.notebook == nn:
            for kind, values in ex.names.items():
                found.setdefault(kind, []).extend(values)
    return found


def clean_up(nn: int | str, client: docker.DockerClient | None = None,
             names: dict | None = None) -> CleanUpReport:
    """Remove what notebook `nn` created (as recorded), and what its exercises asked for."""
    nn = notebook_id(nn)
    return _clean(client or connect(), nn, _exercise_names(nn) if names is None else names)


def clean_up_all(client: docker.DockerClient | None = None) -> CleanUpReport:
    """Remove everything any notebook created (the course's images from the kit stay)."""
    return _clean(client or connect(), None, _exercise_names(None))
