"""Connecting to the Docker Engine and describing it (taught in 00-setup).

`connect()` returns a plain `docker.DockerClient`, the SDK object every notebook uses, or raises
`EngineUnavailable` with one message that says what to start.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import docker
from docker.errors import DockerException

DEFAULT_SOCKET = "/var/run/docker.sock"


class EngineUnavailable(RuntimeError):
    """No Docker Engine answered; the message says what to do."""


def advice(error: BaseException | str = "", system: str | None = None) -> str:
    """What to start, for this operating system, when no engine answers."""
    system = system or platform.system()
    text = str(error)
    host = os.environ.get("DOCKER_HOST", "")
    where = host or f"unix://{DEFAULT_SOCKET}"
    lines = [f"No Docker Engine answered at {where}."]
    if host:
        lines.append(f"DOCKER_HOST is set to {host}: check that an engine listens there, "
                     "or unset it to use the default socket.")
    if "Permission denied" in text or "PermissionError" in text:
        lines.append("The socket exists but you may not use it. Add yourself to the docker group "
                     "(`sudo usermod -aG docker $USER`), then log out and in again "
                     "(or run `newgrp docker`).")
    elif system == "Darwin":
        lines.append("Start Docker Desktop and wait until it says it is running. If it already "
                     "runs, turn on Settings → Advanced → \"Allow the default Docker socket to be "
                     "used\", or run `export DOCKER_HOST=unix://$HOME/.docker/run/docker.sock`.")
    elif system == "Windows":
        lines.append("Start Docker Desktop and wait until it says it is running "
                     "(with the WSL 2 back end if you run the course inside WSL).")
    else:
        lines.append("Start the engine: `sudo systemctl start docker` (Docker Engine), "
                     "or start Docker Desktop if you use it. Rootless Docker: "
                     "`systemctl --user start docker` and "
                     "`export DOCKER_HOST=unix://$XDG_RUNTIME_DIR/docker.sock`.")
    if text:
        lines.append(f"(The SDK said: {text.splitlines()[0][:200]})")
    return "\n".join(lines)


def use_course_engine() -> bool:
    """Point this process (and the `docker` commands it runs) at the course's own engine, when
    no DOCKER_HOST is set, nothing answers at the default socket, and the course's engine runs.

    Kernels started by a plain `jupyter lab` (the conda route) find the engine this way."""
    if os.environ.get("DOCKER_HOST") or engine_answers_at(f"unix://{DEFAULT_SOCKET}"):
        return False
    from helpers.course.own_engine import read_state
    state = read_state()
    if not state:
        return False
    os.environ.update(state.env())
    return True


def client_at(host: str, timeout: int = 30) -> docker.DockerClient:
    return docker.DockerClient(base_url=host, timeout=timeout)


def engine_answers_at(host: str, timeout: int = 2) -> bool:
    """Whether an engine answers at `host` (`unix:///...`), without DOCKER_HOST's help."""
    if host.startswith("unix://") and not Path(host[len("unix://"):]).exists():
        return False
    try:
        client = client_at(host, timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (DockerException, OSError):
        return False


def connect(timeout: int = 30) -> docker.DockerClient:
    """`docker.from_env()` plus a ping; mirrors what `docker version` needs to succeed."""
    use_course_engine()
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except (DockerException, OSError) as exc:
        raise EngineUnavailable(advice(exc)) from None


def engine_answers(timeout: int = 3) -> bool:
    try:
        connect(timeout=timeout).close()
        return True
    except EngineUnavailable:
        return False


@dataclass
class EngineInfo:
    """What `docker version` and `docker info` say, in one object a notebook can print."""
    endpoint: str
    sdk_version: str
    cli_version: str
    engine_version: str
    api_version: str
    os: str
    os_type: str
    kernel: str
    architecture: str
    cpus: int
    memory_gib: float
    storage_driver: str
    cgroup_version: str
    rootless: bool
    desktop: bool
    compose: str            # 'v2' (docker compose), 'v1' (docker-compose only) or 'none'
    compose_version: str
    buildx_version: str     # '' where the CLI has no buildx plugin: the legacy builder runs
    image_store: str        # 'containerd' or 'classic'
    course_engine: bool     # the course's own engine (helpers.course.own_engine), or the learner's

    @property
    def builder(self) -> str:
        return f"BuildKit (buildx {self.buildx_version})" if self.buildx_version \
            else "legacy builder"

    @property
    def major(self) -> int:
        try:
            return int(self.engine_version.split(".")[0])
        except ValueError:
            return 0

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        width = max(len(k) for k in self.__dataclass_fields__)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in asdict(self).items())


def compose_available() -> str:
    """'v2' if `docker compose` works, 'v1' if only `docker-compose` does, '' if neither."""
    if shutil.which("docker"):
        done = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if done.returncode == 0:
            return "v2"
    if shutil.which("docker-compose"):
        done = subprocess.run(["docker-compose", "version", "--short"], capture_output=True,
                              text=True)
        if done.returncode == 0:
            return "v1"
    return ""


def _cli_output(*args: str) -> str:
    if not shutil.which("docker"):
        return ""
    done = subprocess.run(["docker", *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def compose_version() -> str:
    """`docker compose version --short` ('' without Compose v2)."""
    return _cli_output("compose", "version", "--short").lstrip("v")


def buildx_version() -> str:
    """The buildx plugin's version ('' without it): BuildKit builds go through it."""
    words = _cli_output("buildx", "version").split()
    return words[1].lstrip("v").split("+")[0] if len(words) > 1 else ""


def image_store(info: dict) -> str:
    """'containerd' where the engine keeps images in containerd (Docker 29's and Desktop's
    default), else 'classic' (the engine's own graph driver, e.g. overlay2)."""
    status = dict((k, v) for k, v in (info.get("DriverStatus") or []) if isinstance(k, str))
    return "containerd" if "snapshotter" in status.get("driver-type", "") else "classic"


def cli_version() -> str:
    if not shutil.which("docker"):
        return "no docker CLI on PATH"
    done = subprocess.run(["docker", "version", "--format", "{{.Client.Version}}"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def describe(client: docker.DockerClient | None = None) -> EngineInfo:
    """Collect engine facts: `client.version()` (docker version) and `client.info()` (docker info)."""
    client = client or connect()
    version, info = client.version(), client.info()
    security = " ".join(info.get("SecurityOptions") or [])
    os_name = info.get("OperatingSystem", "")
    return EngineInfo(
        endpoint=os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}",
        sdk_version=docker.__version__,
        cli_version=cli_version(),
        engine_version=version.get("Version", ""),
        api_version=client.api.api_version,
        os=os_name,
        os_type=info.get("OSType", ""),
        kernel=info.get("KernelVersion", ""),
        architecture=info.get("Architecture", ""),
        cpus=int(info.get("NCPU", 0)),
        memory_gib=round(info.get("MemTotal", 0) / 2**30, 1),
        storage_driver=info.get("Driver", ""),
        cgroup_version=str(info.get("CgroupVersion", "")),
        rootless="rootless" in security,
        desktop="Docker Desktop" in os_name,
        compose=compose_available() or "none",
        compose_version=compose_version(),
        buildx_version=buildx_version(),
        image_store=image_store(info),
        course_engine=_is_course_engine(),
    )


def _is_course_engine() -> bool:
    from helpers.course.own_engine import read_state
    state = read_state()
    return bool(state) and os.environ.get("DOCKER_HOST") == state.host


# ---------------------------------------------------------------- the seam
# docker-py's private names are used here and nowhere else (pyproject pins docker>=7,<8);
# tests/test_engine.py calls each function against the engine, so an upgrade that moves one
# fails a test.

def save_images_stream(client: docker.DockerClient, names: list[str],
                       chunk_size: int = 1 << 20):
    """`docker save NAME...`: one tar archive of every image named, as a stream of chunks
    (layers the images share are stored once). APIError when the engine refuses."""
    # Image.save() and APIClient.get_image() take one image; /images/get takes many at once.
    response = client.api._get(client.api._url("/images/get"), params={"names": names},
                               stream=True)
    client.api._raise_for_status(response)
    return response.iter_content(chunk_size=chunk_size)


def container_create_args(client: docker.DockerClient, image: str, command=None,
                          **create) -> dict:
    """The keywords `client.api.create_container()` takes for what
    `client.containers.create(image, command, **create)` is given (labels=, mem_limit=, ...)."""
    # containers.create() converts its keywords privately, then inspects the new container:
    # a round trip that `docker run` does not pay, so timing code creates through the low level.
    from docker.models.containers import _create_container_args
    return _create_container_args({"image": image, "command": command,
                                   "version": client.api.api_version, **create})
