"""The creation record: what the course made, by ID, per engine (clean-up removes only that).

A label says which lesson a thing belongs to, but labels pass through `FROM` and onto containers,
so a learner's image built from a course image looks like the course's own. Ownership therefore
comes from this record: every container, image, volume, network and Compose project the course
creates is written here, under the engine's ID, in a file that survives a kernel restart
(`~/.cache/dockercourse/records/<engine ID>.json`).
"""
from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from pathlib import Path

from helpers.course import settings

KINDS = ("containers", "images", "volumes", "networks", "projects")


def folder() -> Path:
    return settings.cache_dir() / "records"


def engine_id(client) -> str:
    """The engine's own ID (`docker info --format '{{.ID}}'`), safe as a file name."""
    raw = client.info().get("ID") or "unknown"
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in raw)


def path_for(client) -> Path:
    return folder() / f"{engine_id(client)}.json"


@contextmanager
def _open(client):
    """The record of this engine, locked for the block; written back when the block ends."""
    path = path_for(client)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            data = {}
        for kind in KINDS:
            data.setdefault(kind, {})
        yield data
        tmp = path.with_suffix(".part")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)


def exists(client) -> bool:
    return path_for(client).exists()


def full_tag(tag: str) -> str:
    """`course02.invalid/webapp` as the engine lists it: `course02.invalid/webapp:latest`."""
    return tag if ":" in tag.rsplit("/", 1)[-1] else f"{tag}:latest"


def add(client, kind: str, key: str, nn: str, tags: list | None = None) -> None:
    """Record that lesson `nn` created `key` (an ID, a volume's name, a project's name).

    For images, `tags` are the course's own tags on it: clean-up removes those tags, so a
    learner's extra tag keeps the image."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    with _open(client) as data:
        entry = data[kind].setdefault(key, {"nn": nn, "tags": []})
        entry["nn"] = nn
        entry["tags"] = sorted(set(entry.get("tags", [])) | {full_tag(t) for t in tags or []})


def entries(client, kind: str, nn: str | None = None) -> dict:
    """{key: entry} of what the record holds for lesson `nn` (every lesson when None)."""
    with _open(client) as data:
        return {k: v for k, v in data[kind].items() if nn is None or v["nn"] == nn}


def forget(client, kind: str, keys) -> None:
    with _open(client) as data:
        for key in keys:
            data[kind].pop(key, None)
