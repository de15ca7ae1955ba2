"""The one label on everything the course creates, and the clean-up that removes exactly that.

Every container, network, volume and image a notebook makes carries
`dockercourse.notebook=<NN>`; `clean_up(NN)` mirrors
`docker rm -f $(docker ps -aq --filter label=dockercourse.notebook=NN)` and the same for
networks, volumes and images. Nothing without the label is ever touched.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import docker
from docker.errors import APIError, NotFound

from .engine import connect

LABEL = "dockercourse.notebook"


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
    problems: list = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.containers) + len(self.networks) + len(self.volumes) + len(self.images)

    def __str__(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in
                 (("containers", self.containers), ("networks", self.networks),
                  ("volumes", self.volumes), ("images", self.images))]
        text = "Removed " + ", ".join(parts) + "."
        if self.problems:
            text += "\nCould not remove: " + "; ".join(self.problems)
        return text


def _remove(report: CleanUpReport, kind: str, name: str, remove) -> None:
    try:
        remove()
        getattr(report, kind).append(name)
    except NotFound:
        pass  # already gone: what we wanted
    except APIError as exc:
        report.problems.append(f"{kind[:-1]} {name}: {exc.explanation or exc}")


def _clean(client: docker.DockerClient, filters: dict) -> CleanUpReport:
    report = CleanUpReport()
    for c in client.containers.list(all=True, filters=filters, ignore_removed=True):
        _remove(report, "containers", c.name, lambda c=c: c.remove(force=True, v=True))
    for n in client.networks.list(filters=filters):
        _remove(report, "networks", n.name, n.remove)
    for v in client.volumes.list(filters=filters):
        _remove(report, "volumes", v.name, lambda v=v: v.remove(force=True))
    # Children before parents: an image built FROM another course image must go first.
    images = client.images.list(all=True, filters=filters)
    for _ in range(3):
        left = []
        for img in images:
            name = (img.tags or [img.short_id])[0]
            try:
                client.images.remove(img.id, force=True, noprune=False)
                report.images.append(name)
            except NotFound:
                pass
            except APIError:
                left.append(img)
        if not left:
            break
        images = left
    else:
        report.problems += [f"image {(i.tags or [i.short_id])[0]}: still in use" for i in images]
    return report


def clean_up(nn: int | str, client: docker.DockerClient | None = None) -> CleanUpReport:
    """Remove what notebook `nn` created: containers, networks, volumes, images with its label."""
    return _clean(client or connect(), label_filter(nn))


def clean_up_all(client: docker.DockerClient | None = None) -> CleanUpReport:
    """Remove everything any notebook created (the course's images from the kit stay)."""
    return _clean(client or connect(), label_filter(None))
