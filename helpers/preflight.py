"""The preflight panel of 00-setup: is this machine ready for the course? Each line green or red."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

from .engine import EngineUnavailable, connect, describe
from .exercises import Line
from .images import catalogue, ensure_images, present
from .labels import clean_up_all
from .ports import free_port
from .ui import Progress, error_html, status_html

MIN_DISK_GIB = 5.0
LESSON_PORT = 40000


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
        Line(info.compose != "none", f"Compose: {info.compose}",
             "" if info.compose != "none" else "install Docker Compose (lesson 05 uses it)"),
    ]
    return lines, client


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


def check_kvm() -> Line:
    """KVM usable or not, probed with a watchdog; 'not usable' is a grey line, not a failure."""
    from . import vm
    try:
        accel = vm.accelerator()
    except vm.VmUnavailable as exc:
        return Line(False, "No VM to compare with: QEMU or a kernel is missing", str(exc))
    if accel.name == "kvm":
        return Line(True, f"KVM usable: {accel.reason}")
    return Line(None, f"KVM not usable ({accel.reason}): the VM side runs under {accel.label}, "
                      "slower than with KVM",
                "on a Linux laptop, enable virtualisation in the firmware and join the kvm group")


class Preflight:
    """The panel: `Preflight().widget` in a notebook; `.run()` re-checks; buttons do the rest."""

    def __init__(self):
        import ipywidgets as w
        self.lines: list[Line] = []
        self.output = w.HTML()
        self.progress = Progress.make_widget("")
        self.progress.layout.visibility = "hidden"
        self.buttons = {
            "check": w.Button(description="Check again", icon="refresh", layout=w.Layout(width="auto")),
            "prepare": w.Button(description="Prepare missing images", icon="download",
                                layout=w.Layout(width="auto")),
            "clean": w.Button(description="Clean up course resources", icon="trash",
                              layout=w.Layout(width="auto")),
        }
        self.buttons["check"].on_click(lambda _: self.run())
        self.buttons["prepare"].on_click(lambda _: self.prepare_images())
        self.buttons["clean"].on_click(lambda _: self.clean_up())
        self.message = w.HTML()
        self.widget = w.VBox([w.HTML("<b>Preflight: is this machine ready?</b>"), self.output,
                              w.HBox(list(self.buttons.values())), self.progress, self.message])
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """Every line green, KVM aside (software emulation is slower, not broken)."""
        return bool(self.lines) and all(l.ok is not False for l in self.lines)

    def run(self) -> list[Line]:
        with self._lock:
            lines, client = check_engine()
            if client is not None:
                lines += [check_port(), check_disk(client), check_images(client)]
            lines.append(check_kvm())
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
            self.message.value = ""
        except Exception as exc:  # the panel reports, never raises into the notebook
            self.message.value = error_html(f"Preparing images failed: {exc}")
        self.run()

    def clean_up(self) -> None:
        try:
            report = clean_up_all()
            self.message.value = status_html(not report.problems, str(report))
        except EngineUnavailable as exc:
            self.message.value = error_html(str(exc))
