"""The preflight panel of 00-setup: is this machine ready for the course? Each line green or red."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

from helpers.course.engine import EngineUnavailable, connect, describe
from helpers.course.images import catalogue, ensure_images, present
from helpers.course.labels import clean_up_all
from helpers.course.lesson import LESSON_PORT
from helpers.course.ports import free_port
from helpers.course.ui import Line, Panel, Progress, status_html

MIN_DISK_GIB = 5.0


def check_engine() -> tuple[list[Line], object]:
    """Engine reachable and its versions (as `docker version`): the lines, and the client."""
    try:
        client = connect(timeout=10)
    except EngineUnavailable as exc:
        first, *rest = str(exc).splitlines()
        return [Line(False, first, " ".join(rest))], None
    info = describe(client)
    kind = "Docker Desktop" if info.desktop else ("rootless engine" if info.rootless
                                                  else "Linux engine")
    kind += ", the course's own" if info.course_engine else ", yours"
    lines = [
        Line(True, f"Engine {info.engine_version} ({kind}) answers at {info.endpoint}"),
        Line(float(info.api_version) >= 1.41,
             f"API {info.api_version}, Python SDK {info.sdk_version}, CLI {info.cli_version}",
             "" if float(info.api_version) >= 1.41 else "update Docker: the course needs API 1.41+"),
        Line(info.architecture in ("x86_64", "aarch64", "arm64"),
             f"Architecture {info.architecture}, {info.os_type} kernel {info.kernel}, "
             f"{info.cpus} CPUs, {info.memory_gib} GiB for containers",
             "" if info.architecture in ("x86_64", "aarch64", "arm64")
             else "the course's images are built for x86_64 and arm64"),
        Line(True, f"Builder: {info.builder}; image store: {info.image_store}"
                   f"{' (image IDs are manifest digests)' if info.image_store == 'containerd' else ''}"),
        compose_line(info.compose_version),
    ]
    if info.major and info.major < 23:
        lines.append(Line("warn", f"Engine {info.engine_version} is older than 23",
                          "the lessons run, but builds use the legacy builder unless buildx is "
                          "installed, `docker save` writes the older layout, and Compose v2 must "
                          "be installed as a plugin; Docker 26 or newer is what the course "
                          "is shown on first"))
    return lines, client


def compose_line(version: str | None = None) -> Line:
    """Compose v2 (`docker compose`), which lessons 05 and 06 use; v1 reached its end in 2023."""
    from helpers.course.engine import compose_version
    version = compose_version() if version is None else version
    if version:
        return Line(True, f"Compose v2: docker compose {version}")
    return Line(False, "No Compose v2 (`docker compose` fails): lessons 05 and 06 need it",
                "install the Compose plugin: Docker Desktop has it; on Linux "
                "`sudo apt-get install docker-compose-plugin` (Docker's packages) or "
                "`docker-compose-v2` (Ubuntu); `./course start` brings its own where it "
                "runs its own engine")


def check_port(preferred: int = LESSON_PORT) -> Line:
    port = free_port(preferred, quiet=True)
    if port == preferred:
        return Line(True, f"Port {preferred} on 127.0.0.1 is free for the lessons")
    return Line(True, f"Port {preferred} is in use; the lessons will use {port} instead")


def check_disk(client) -> Line:
    root = client.info().get("DockerRootDir", "/var/lib/docker")
    path = Path(root) if Path(root).exists() else Path.home()
    free_gib = shutil.disk_usage(path).free / 2**30
    where = root if path == Path(root) else f"{path} (the engine's {root} is inside its VM)"
    return Line(free_gib >= MIN_DISK_GIB, f"{free_gib:.0f} GiB free at {where}",
                "" if free_gib >= MIN_DISK_GIB else
                f"free at least {MIN_DISK_GIB:.0f} GiB (`docker system prune` removes "
                "unused images and stopped containers)")


def check_images(client) -> Line:
    missing = [img.ref for img in catalogue().values() if not present(client, img)]
    if missing:
        return Line(False, f"Course images missing: {', '.join(missing)}",
                    "press “Prepare missing images” (pulls, or builds them offline)")
    return Line(True, "Course images present: " + ", ".join(i.ref for i in catalogue().values()))


def check_kvm(*, lesson) -> Line:
    """KVM usable or not, probed with a watchdog; 'not usable' is a grey line, not a failure.
    Where QEMU runs in a container of the VM image, `lesson` labels and records it."""
    from helpers.measure import vm
    try:
        accel = vm.accelerator(lesson=lesson)
    except vm.VmUnavailable as exc:
        return Line(False, "No VM to compare with: QEMU or a kernel is missing", str(exc))
    if accel.name == "kvm":
        return Line(True, f"KVM usable: {accel.reason}")
    return Line(None, f"KVM not usable ({accel.reason}): the VM side runs under {accel.label}, "
                      "slower than with KVM",
                "on a Linux laptop, enable virtualisation in the firmware and join the kvm group")


class Preflight(Panel):
    """The panel: `Preflight(lesson=lesson)` in a notebook; `.run()` re-checks; buttons do the
    rest. The KVM probe, where it needs a container, is the lesson's."""

    def __init__(self, *, lesson):
        import ipywidgets as w
        super().__init__()
        self.lesson = lesson
        self.lines: list[Line] = []
        self.output = w.HTML()
        self.progress = Progress.make_widget("")
        self.progress.layout.visibility = "hidden"
        wide = w.Layout(width="auto")
        self.button("check", self.run, "Check again", icon="refresh", layout=wide)
        self.button("prepare", self.prepare_images, "Prepare missing images", icon="download",
                    layout=wide)
        self.button("clean", self.clean_up, "Clean up course resources", icon="trash",
                    layout=wide)
        self.message = self.status
        self.layout(w.HTML("<b>Preflight: is this machine ready?</b>"), self.output,
                    w.HBox(list(self.buttons.values())), self.progress)
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """Every line green (or amber), KVM aside (software emulation is slower, not broken)."""
        return bool(self.lines) and all(l.ok is not False for l in self.lines)

    def run(self) -> list[Line]:
        with self._lock:
            lines, client = check_engine()
            if client is not None:
                lines += [check_port(), check_disk(client), check_images(client)]
            lines.append(check_kvm(lesson=self.lesson))
            self.lines = lines
            self.output.value = "".join(status_html(l.ok, l.text, l.fix) for l in lines)
        return lines

    def prepare_images(self) -> None:
        self.progress.layout.visibility = "visible"
        try:
            client = connect()
            kit = catalogue()
            missing = [n for n, img in kit.items() if not present(client, img)]
            bar = Progress("images", max(len(missing), 1), "images", widget=self.progress)
            for i, name in enumerate(missing):
                bar.update(i, caption=f"preparing {kit[name].ref}")
                ensure_images(client, names=[name])
            bar.close(caption=f"{len(missing)} prepared" if missing else "all present already")
            self.status.value = ""
        finally:
            self.run()

    def clean_up(self) -> None:
        report = clean_up_all()
        self.say(not report.problems, str(report))
