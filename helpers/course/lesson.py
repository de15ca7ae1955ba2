"""`Lesson(nn)`: one notebook's handle on the engine, which records what it creates.

    lesson = Lesson(2)
    client = lesson.client          # a docker.DockerClient; what it creates is recorded
    client.containers.run("busybox:1.35", "echo hi", labels=lesson.labels, remove=True)
    lesson.port                     # 40000, or the next free port, said aloud
    lesson.clean_up()               # removes what lesson 02 recorded, and nothing else

The label `dockercourse.notebook=NN` shows which lesson a thing belongs to; the creation record
(`helpers.course.record`) says that the course made it. Clean-up trusts only the record, and the names
the lesson's exercises ask for.

The course's own images (`courseNN.invalid/...`) are never pulled: creating or running one the
engine lacks raises `CourseImageMissing`, whose message names the cell that builds it
(`helpers.course.builder.MADE_IN`).
"""
from __future__ import annotations

import time

import docker
from docker.errors import ImageNotFound
from docker.models.containers import ContainerCollection
from docker.models.images import ImageCollection
from docker.models.networks import NetworkCollection
from docker.models.volumes import VolumeCollection

from helpers.course import record
from helpers.course.labels import LABEL, notebook_id
from helpers.course.ui import BadInput

LESSON_PORT = 40000   # the seed's `docker run -p 40000:8080`
PING_EVERY = 5.0      # seconds between checks that the engine is still the one we talk to


def _labelled(kwargs: dict) -> str | None:
    """The lesson a create call labels its result with (None: not the course's to record)."""
    given = kwargs.get("labels")
    return given.get(LABEL) if isinstance(given, dict) else None


class CourseImageMissing(BadInput, ImageNotFound):
    """One of the course's own images (`courseNN.invalid/...`) is not on the engine. Raised
    before the engine is asked for it, so nothing is pulled; the message names the cell that
    builds the image."""

    def __init__(self, message: str):
        ImageNotFound.__init__(self, message, explanation=message)

    def __str__(self) -> str:
        return self.explanation


def _refuse_missing(client, image, made_only: bool) -> None:
    """Raise CourseImageMissing when `image` is one of the course's own names and the engine
    does not have it: for every such name (`made_only=False`: run and pull, which would ask a
    registry), or only for those a cell makes (create, where the engine's own answer for other
    names is what lesson 02 shows)."""
    from helpers.course.builder import COURSE_IMAGE, made_in, where_made
    name = getattr(image, "id", image)
    if not isinstance(name, str) or not COURSE_IMAGE.match(name):
        return
    if made_only and made_in(name) is None:
        return
    try:
        client.api.inspect_image(name)
    except ImageNotFound:
        raise CourseImageMissing(where_made(name)) from None


def _image_arg(args: tuple, kwargs: dict):
    return kwargs.get("image", args[0] if args else None)


class _Containers(ContainerCollection):
    def create(self, *args, **kwargs):
        _refuse_missing(self.client, _image_arg(args, kwargs), made_only=True)
        container = super().create(*args, **kwargs)
        if nn := _labelled(kwargs):
            self.client.lesson.record(container, nn=nn)
        return container

    def run(self, *args, **kwargs):
        # the SDK's run pulls an image the engine lacks: never for one of the course's names
        _refuse_missing(self.client, _image_arg(args, kwargs), made_only=False)
        return super().run(*args, **kwargs)


class _Images(ImageCollection):
    def pull(self, repository, tag=None, *args, **kwargs):
        from helpers.course.builder import COURSE_IMAGE
        if isinstance(repository, str) and COURSE_IMAGE.match(repository):
            # no registry serves the course's names: what is here is all there is
            name = f"{repository}:{tag}" if tag else repository
            _refuse_missing(self.client, name, made_only=False)
            return self.get(name)
        return super().pull(repository, tag, *args, **kwargs)

    def build(self, **kwargs):
        image, logs = super().build(**kwargs)
        if nn := _labelled(kwargs):
            self.client.lesson.record(image, tags=[kwargs["tag"]] if kwargs.get("tag") else [],
                                      nn=nn)
        return image, logs


class _Volumes(VolumeCollection):
    def create(self, *args, **kwargs):
        volume = super().create(*args, **kwargs)
        if nn := _labelled(kwargs):
            self.client.lesson.record(volume, nn=nn)
        return volume


class _Networks(NetworkCollection):
    def create(self, *args, **kwargs):
        network = super().create(*args, **kwargs)
        if nn := _labelled(kwargs):
            self.client.lesson.record(network, nn=nn)
        return network


class RecordingClient(docker.DockerClient):
    """The SDK's client, unchanged to use, whose create calls write the creation record."""

    def __init__(self, lesson: "Lesson", **kwargs):
        super().__init__(**kwargs)
        self.lesson = lesson

    @property
    def containers(self):
        return _Containers(client=self)

    @property
    def images(self):
        return _Images(client=self)

    @property
    def volumes(self):
        return _Volumes(client=self)

    @property
    def networks(self):
        return _Networks(client=self)


_KIND = {"Container": "containers", "Image": "images", "Volume": "volumes", "Network": "networks"}


class Lesson:
    """Notebook `nn`'s client, labels, port, record and clean-up."""

    def __init__(self, nn: int | str, names: dict | None = None):
        self.nn = notebook_id(nn)
        self._client: RecordingClient | None = None
        self._checked = 0.0
        self._port: int | None = None
        self.extra_names = {k: list(v) for k, v in (names or {}).items()}
        from helpers.course.cli import register
        register(self)   # %%docker in this notebook records for this lesson

    def __repr__(self) -> str:
        return f"Lesson({int(self.nn)})"

    # -- the engine ----------------------------------------------------------------------
    @property
    def client(self) -> RecordingClient:
        """Connected on first use; connected again when the engine restarted meanwhile."""
        now = time.monotonic()
        if self._client is not None and now - self._checked < PING_EVERY:
            return self._client
        if self._client is not None:
            try:
                self._client.ping()
                self._checked = now
                return self._client
            except Exception:  # the engine went away: make a new connection below
                self._client.close()
                self._client = None
        from helpers.course.engine import EngineUnavailable, advice, use_course_engine
        use_course_engine()
        try:
            client = RecordingClient(self, **_from_env_kwargs())
            client.ping()
        except Exception as exc:
            raise EngineUnavailable(advice(exc)) from None
        self._client, self._checked = client, now
        return client

    # -- labels, names, port --------------------------------------------------------------
    @property
    def labels(self) -> dict:
        """`labels=` for anything this lesson creates."""
        return {LABEL: self.nn}

    def label(self, **extra: str) -> dict:
        return {**self.labels, **extra}

    @property
    def prefix(self) -> str:
        """Names of this lesson's own things start so: `course02-web`, `course02.invalid/webapp`."""
        return f"course{self.nn}"

    @property
    def port(self) -> int:
        """The lesson's host port: 40000 if free, else the next free one (said once)."""
        if self._port is None:
            from helpers.course.ports import free_port
            self._port = free_port(LESSON_PORT)
        return self._port

    def names(self) -> dict:
        """What this lesson's exercises ask for by name, plus names given to Lesson()."""
        from helpers.exercises import all_exercises
        found = {k: list(v) for k, v in self.extra_names.items()}
        for ex in all_exercises().values():
            if ex.notebook == self.nn:
                for kind, values in ex.names.items():
                    found.setdefault(kind, []).extend(values)
        return found

    # -- the record -----------------------------------------------------------------------
    def record(self, thing, tags: list | None = None, kind: str | None = None,
               nn: str | None = None):
        """Write `thing` (a Container, Image, Volume or Network, or an ID with `kind`) into the
        creation record, as this lesson's (or lesson `nn`'s, the one its label names); returns
        it, so `x = lesson.record(make())` reads well."""
        kind = kind or _KIND.get(type(thing).__name__)
        if kind is None:
            raise TypeError(f"cannot record a {type(thing).__name__}")
        key = thing if isinstance(thing, str) else (thing.name if kind == "volumes" else thing.id)
        record.add(self.client, kind, key, notebook_id(nn) if nn else self.nn, tags)
        return thing

    def record_project(self, name: str) -> str:
        record.add(self.client, "projects", name, self.nn)
        return name

    def clean_up(self):
        """Remove what this lesson recorded (and what its exercises asked for by name)."""
        from helpers.course.labels import clean_up
        return clean_up(self.nn, self.client, names=self.names())


def _from_env_kwargs() -> dict:
    """What `docker.from_env()` would pass, for our subclass (DOCKER_HOST, TLS, API version)."""
    from docker.utils import kwargs_from_env
    return {"version": "auto", "timeout": 60, **kwargs_from_env()}
