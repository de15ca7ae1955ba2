"""The real `docker` command in a notebook cell: `%%docker`, with clean output and a checked exit.

    %%docker
    docker run --rm --label dockercourse.notebook=02 busybox:1.35 echo hello

Each line runs in bash (`set -euo pipefail`), against the same engine the helpers use (the
course's own engine is found without any variable set), with its output shown as it comes, free
of colour codes and progress redraws. A non-zero exit raises `CommandFailed`, so a lesson whose
command fails stops there, and so does its test. What the cell creates with the lesson's label is
written into the lesson's creation record. `Lesson(nn)` registers the magic in the notebook.
"""
from __future__ import annotations

import os
import re
import subprocess
import time

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
# How the CLI says it lacks an image: then the engine tried a registry, which for the course's
# own names (`courseNN.invalid/...`) can never answer.
MISSING = re.compile(r"Unable to find image '(course\d\d\.invalid/[^']+)' locally|"
                     r"No such image: (course\d\d\.invalid/[^\s\"']+)")
DEFAULT_TIMEOUT = 120.0


class CommandFailed(RuntimeError):
    """A command in a `%%docker` cell exited non-zero; the message has its last lines."""


def _snapshot(lesson) -> dict:
    client, f = lesson.client, {"label": f"dockercourse.notebook={lesson.nn}"}
    return {
        "containers": {c.id: c for c in client.containers.list(all=True, filters=f,
                                                                ignore_removed=True)},
        "images": {i.id: i for i in client.images.list(all=True, filters=f)},
        "volumes": {v.name: v for v in client.volumes.list(filters=f)},
        "networks": {n.id: n for n in client.networks.list(filters=f)},
    }


def _record_new(lesson, before: dict) -> None:
    after = _snapshot(lesson)
    for kind, things in after.items():
        for key, thing in things.items():
            if key in before[kind]:
                continue
            if kind == "images":
                lesson.record(thing, tags=thing.tags)
            else:
                lesson.record(thing)
            project = (getattr(thing, "labels", None) or {}).get("com.docker.compose.project")
            if kind == "containers" and project:
                lesson.record_project(project)


def run(script: str, lesson=None, timeout: float = DEFAULT_TIMEOUT, echo: bool = True) -> str:
    """Run `script` in bash; print its output as it comes; return it; raise on failure."""
    from helpers.course.engine import use_course_engine
    use_course_engine()
    before = _snapshot(lesson) if lesson is not None else None
    started = time.monotonic()
    proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, env=os.environ.copy(),
                            start_new_session=True)
    lines = []
    try:
        for raw in proc.stdout:
            line = ANSI.sub("", raw.rstrip("\n"))
            lines.append(line)
            if echo:
                print(line, flush=True)
            if time.monotonic() - started > timeout:
                raise subprocess.TimeoutExpired(script, timeout)
        code = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        raise CommandFailed(f"The command ran longer than {timeout:.0f} s and was stopped.") \
            from None
    finally:
        if before is not None:
            _record_new(lesson, before)
    if code != 0:
        tail = "\n".join(lines[-5:])
        raise CommandFailed(f"The command exited with status {code}. Its last lines:\n{tail}" +
                            missing_images_hint(lines))
    return "\n".join(lines)


def missing_images_hint(lines: list) -> str:
    """For each of the course's own images the output says the engine lacks: the cell that
    builds it."""
    from helpers.course.builder import repository, where_made
    names = {}
    for line in lines:
        for match in MISSING.finditer(line):
            name = match[1] or match[2]
            names.setdefault(repository(name), name)
    return "".join(f"\n{where_made(name)}" for name in names.values())


def register(lesson) -> None:
    """Make `%%docker` available in this notebook, recording for `lesson`."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def docker_magic(line: str, cell: str) -> None:
        timeout = float(line.strip()) if line.strip() else DEFAULT_TIMEOUT
        run(cell, lesson=lesson, timeout=timeout)

    shell.register_magic_function(docker_magic, magic_kind="cell", magic_name="docker")
