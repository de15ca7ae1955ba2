"""Where a container's data lives: its layer, a named volume, a bind mount, a tmpfs (04-volumes).

    survival("named volume", volume="course04-lab", lesson=lesson)  # write, docker rm, read again
    VolumeLab(lesson=lesson)      # the four places side by side: what survived a removal
    VolumeBrowser(lesson=lesson)  # the course's volumes: size, mount point, containers, files

Files inside a volume are read on the host when the engine's folder is visible from here (a
Linux engine run by this user), else through a small fenced helper container that mounts the
volume read-only (Docker Desktop keeps volumes inside its VM).
"""
from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from pathlib import Path

from docker.errors import NotFound
from docker.types import Mount

from helpers.course import record
from helpers.course import settings
from helpers.course.images import ref
from helpers.course.ui import BadInput, Panel, html_table, human_bytes

KINDS = ("container layer", "named volume", "bind mount", "tmpfs")
TARGET = "/data"                 # where each kind is mounted in the lab's containers
NOTE = "note.txt"
# The engine's own rule for volume names (daemon/names: RestrictedNamePattern)
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
# What a helper container may use: a little memory, a few processes, half a core, no network
FENCE = {"mem_limit": "32m", "pids_limit": 32, "nano_cpus": 500_000_000,
         "network_mode": "none"}
OUTPUT_LIMIT = 64 * 1024         # bytes of a helper container's output kept
FILES_LIMIT = 200                # files listed per volume
READ_LIMIT = 4096                # bytes of a file shown
NOTE_LIMIT = 200                 # characters a learner may write in the lab


# ---------------------------------------------------------------- checking what was typed

def check_volume_name(name: str) -> str:
    """A name the engine accepts for a volume (`docker volume create NAME`), else BadInput."""
    name = (name or "").strip()
    if not VOLUME_NAME.match(name):
        bad = sorted({ch for ch in name if not re.match(r"[a-zA-Z0-9_.-]", ch)})
        why = (f"it contains {' '.join(repr(c) for c in bad)}" if bad else
               "it must be at least 2 characters and start with a letter or digit")
        raise BadInput(f"{name!r} cannot name a volume: {why}. Use letters, digits, '_', '.' "
                       "and '-', starting with a letter or digit (e.g. course04-lab).")
    return name


def check_bind_source(path: str | Path) -> Path:
    """An existing folder on this machine, as an absolute path (a bind mount's source)."""
    text = str(path or "").strip()
    if not text:
        raise BadInput("Give the folder on this machine to mount (a bind mount needs a source).")
    folder = Path(text).expanduser().resolve()
    if not folder.exists():
        raise BadInput(f"The folder {folder} does not exist on this machine. Create it first "
                       f"(mkdir -p {folder}), or give one that exists: `--mount type=bind` "
                       "refuses a missing source rather than make an empty one.")
    if not folder.is_dir():
        raise BadInput(f"{folder} is a file, not a folder: give a folder to mount at {TARGET}.")
    return folder


def host_folder(lesson, name: str) -> Path:
    """A folder of this lesson's on this machine, for bind mounts (made if missing)."""
    folder = settings.cache_dir() / lesson.prefix / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_host_folders(lesson) -> list[Path]:
    """Delete the folders `host_folder` made for this lesson (files containers wrote there
    included); returns what was removed."""
    import shutil
    root = settings.cache_dir() / lesson.prefix
    gone = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    shutil.rmtree(root, ignore_errors=True)
    return gone


# ---------------------------------------------------------------- a fenced container

def run_fenced(command: list, image: str | None = None, environment: dict | None = None,
               *, lesson, **create) -> tuple[int, str]:
    """Run a short busybox command under the course's fence (memory, processes, CPU, no network,
    a wall-clock limit), and remove the container: (exit code, its first 64 KiB of output)."""
    client = lesson.client
    container = client.containers.create(image or ref("busybox"), command,
                                         labels=lesson.labels, environment=environment or {},
                                         **{**FENCE, **create})
    try:
        container.start()
        try:
            code = container.wait(timeout=settings.fence_seconds())["StatusCode"]
        except Exception:  # the wait timed out (requests' ReadTimeout/ConnectionError)
            raise TimeoutError(f"the helper container ran longer than "
                               f"{settings.fence_seconds():.0f} s and was stopped") from None
        output = container.logs(stdout=True, stderr=True)[:OUTPUT_LIMIT]
        return code, output.decode(errors="replace")
    finally:
        try:
            container.remove(force=True, v=True)
        except NotFound:
            pass


# ---------------------------------------------------------------- what survives removal

@dataclass
class Survival:
    """One place a container wrote to, and what a new container found there after `docker rm`."""
    kind: str
    option: str                 # the `docker run` option that made the place
    written: str                # what the first container wrote
    found: str | None           # what the second one read (None: nothing there)
    where: str                  # where the data lived meanwhile

    @property
    def survived(self) -> bool:
        return self.found == self.written


def mount_options(kind: str, volume: str = "", bind: Path | None = None) -> tuple[dict, str]:
    """SDK `create` arguments for one kind, and the `docker run` option learners type."""
    if kind == "container layer":
        return {}, "(no option: the container's own writable layer)"
    if kind == "named volume":
        return ({"mounts": [Mount(TARGET, volume, type="volume")]},
                f"-v {volume}:{TARGET}")
    if kind == "bind mount":
        return ({"mounts": [Mount(TARGET, str(bind), type="bind")]},
                f"--mount type=bind,source={bind},target={TARGET}")
    if kind == "tmpfs":
        return {"tmpfs": {TARGET: "size=1m"}}, f"--tmpfs {TARGET}"
    raise BadInput(f"No kind {kind!r}: choose one of {', '.join(KINDS)}.")


def survival(kind: str, volume: str = "course04-lab", bind: Path | str | None = None,
             text: str = "written by the first container", *, lesson) -> Survival:
    """Write `text` to /data/note.txt in one container, remove it (`docker rm -v`), and read
    /data/note.txt in a new container made with the same options."""
    text = (text or "").strip()[:NOTE_LIMIT] or "hello"
    if kind == "named volume":
        volume = check_volume_name(volume)
    if kind == "bind mount":
        bind = check_bind_source(bind)
    opts, option = mount_options(kind, volume, bind)
    where = {"container layer": "in the first container's writable layer",
             "named volume": f"in the volume {volume}, kept by the engine",
             "bind mount": f"in {bind}/{NOTE}, on this machine",
             "tmpfs": "in the first container's memory"}[kind]
    if kind == "named volume":
        ensure_volume(volume, lesson=lesson)
    write = ["sh", "-c", f'mkdir -p {TARGET} && printf "%s" "$NOTE" > {TARGET}/{NOTE}']
    code, out = run_fenced(write, environment={"NOTE": text}, **opts, lesson=lesson)
    if code != 0:
        raise RuntimeError(f"The first container could not write {TARGET}/{NOTE}: {out.strip()}")
    read = ["sh", "-c", f"cat {TARGET}/{NOTE} 2>/dev/null || echo -n '<nothing>'"]
    _, found = run_fenced(read, **opts, lesson=lesson)
    return Survival(kind, option, text, None if found == "<nothing>" else found, where)


def ensure_volume(name: str, *, lesson):
    """The volume `name`, created with the lesson's label if it does not exist yet."""
    client = lesson.client
    try:
        return client.volumes.get(name)
    except NotFound:
        return client.volumes.create(name, labels=lesson.labels)


class VolumeLab(Panel):
    """Write → remove the container → a new container reads: for each place, side by side."""

    def __init__(self, volume: str = "course04-lab", folder: Path | None = None, *, lesson):
        import ipywidgets as w
        super().__init__()
        self.lesson = lesson
        self.results: list[Survival] = []
        self.text = w.Text(value="my notes", description="write:",
                           layout=w.Layout(width="40%"))
        self.volume = w.Text(value=volume, description="volume:", layout=w.Layout(width="40%"))
        self.folder = w.Text(value=str(folder or host_folder(lesson, "lab")),
                             description="folder:", layout=w.Layout(width="80%"))
        self.table = w.HTML()
        self.button("run", self.run, description="Write, remove, read again",
                    button_style="primary")
        self.layout(w.HTML(f"<b>Each place, mounted at {TARGET}:</b> a container writes "
                           f"<code>{TARGET}/{NOTE}</code> and is removed; a new one with the "
                           "same options reads it."),
                    self.text, self.volume, self.folder, self.buttons["run"], self.table)

    def run(self) -> list[Survival]:
        # Check both inputs before anything is created, so bad input leaves nothing behind.
        volume = check_volume_name(self.volume.value)
        folder = check_bind_source(self.folder.value)
        self.say(None, "running 8 containers, one after the other…")
        self.results = [survival(kind, volume=volume, bind=folder,
                                 text=self.text.value, lesson=self.lesson) for kind in KINDS]
        rows = [(r.kind, r.option, r.found if r.found is not None else "(nothing)",
                 "survived" if r.survived else "lost", r.where) for r in self.results]
        self.table.value = html_table(["place", "docker run option", "the new container read",
                                       "", "where it lived"], rows)
        kept = [r.kind for r in self.results if r.survived]
        self.say(True, f"survived the container's removal: {', '.join(kept) or 'nothing'}")
        return self.results


# ---------------------------------------------------------------- the volume browser

@dataclass
class VolumeRow:
    name: str
    lesson: str            # the lesson of its label or record ("" if neither says)
    size_bytes: int | None
    mountpoint: str
    containers: list       # names of the containers that mount it
    anonymous: bool


def course_volumes(client) -> list[VolumeRow]:
    """Volumes with the course's label, and anonymous ones that course containers use or the
    course recorded (`docker volume ls --filter label=...` cannot find those: no labels)."""
    from helpers.course.labels import LABEL, label_filter
    labelled = {v.name: v for v in client.volumes.list(filters=label_filter())}
    users: dict = {}
    for c in client.containers.list(all=True, ignore_removed=True):
        for m in c.attrs.get("Mounts") or []:
            if m.get("Type") == "volume":
                users.setdefault(m["Name"], []).append((c.name, c.labels.get(LABEL, "")))
    recorded = record.entries(client, "volumes")
    anonymous = {}
    for name in set(users) | set(recorded):
        if name in labelled or not re.fullmatch(r"[0-9a-f]{64}", name):
            continue
        if name in recorded or any(nn for _, nn in users[name]):
            try:
                anonymous[name] = client.volumes.get(name)
            except NotFound:
                continue
    sizes = {v["Name"]: (v.get("UsageData") or {}).get("Size")
             for v in client.df().get("Volumes") or []}
    rows = []
    for name, volume in {**labelled, **anonymous}.items():
        size = sizes.get(name)
        nn = (volume.attrs.get("Labels") or {}).get(LABEL) or recorded.get(name, {}).get("nn", "")
        rows.append(VolumeRow(name, nn if nn != "kit" else "",
                              size if size is not None and size >= 0 else None,
                              volume.attrs.get("Mountpoint", ""),
                              [n for n, _ in users.get(name, [])], name in anonymous))
    return sorted(rows, key=lambda r: (r.anonymous, r.lesson, r.name))


def host_can_read(mountpoint: str) -> bool:
    """Whether this machine sees the volume's folder (a local Linux engine, enough rights)."""
    path = Path(mountpoint)
    return path.is_dir() and os.access(path, os.R_OK | os.X_OK)


@dataclass
class FileRow:
    path: str        # relative to the volume's root
    kind: str        # "file", "directory", "link", ...
    size_bytes: int


def _relative(path: str) -> str:
    """A path inside a volume, refused if it climbs out of it."""
    parts = [p for p in Path(path.strip()).parts if p not in ("/", ".")]
    if not parts or ".." in parts:
        raise BadInput(f"{path!r} is not a path inside the volume: give one as the list shows "
                       "it (e.g. appendonlydir/appendonly.aof.1.incr.aof).")
    return "/".join(parts)


def _host_files(root: Path) -> list[FileRow]:
    rows = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            full = Path(folder) / name
            st = full.lstat()
            kind = "link" if full.is_symlink() else "directory" if full.is_dir() else "file"
            rows.append(FileRow(str(full.relative_to(root)), kind, st.st_size))
            if len(rows) >= FILES_LIMIT:
                return rows
    return rows


# Lists /v in the helper container: one "type|size|path" line per entry.
_LIST = (f"cd /v && find . -mindepth 1 | head -n {FILES_LIMIT} | "
         "while IFS= read -r f; do stat -c '%F|%s|%n' \"$f\"; done")
_KIND = {"regular file": "file", "regular empty file": "file", "directory": "directory",
         "symbolic link": "link"}


def _mount_ro(name: str) -> dict:
    return {"mounts": [Mount("/v", name, type="volume", read_only=True)], "read_only": True}


def volume_files(name: str, via: str = "auto", *, lesson) -> tuple[list[FileRow], str]:
    """The files in volume `name` (at most 200) and how they were read ("host" or
    "helper container")."""
    volume = lesson.client.volumes.get(name)
    mountpoint = volume.attrs.get("Mountpoint", "")
    if via == "host" or (via == "auto" and host_can_read(mountpoint)):
        return _host_files(Path(mountpoint)), "host"
    code, out = run_fenced(["sh", "-c", _LIST], **_mount_ro(name), lesson=lesson)
    if code != 0:
        raise RuntimeError(f"The helper container could not list the volume: {out.strip()}")
    rows = []
    for line in out.splitlines():
        kind, size, path = (line.split("|", 2) + ["", ""])[:3]
        if path:
            rows.append(FileRow(path[2:] if path.startswith("./") else path,
                                _KIND.get(kind, kind), int(size or 0)))
    return rows, "helper container"


def read_volume_file(name: str, path: str, via: str = "auto", *, lesson) -> bytes:
    """The first 4 KiB of a file in volume `name`."""
    rel = _relative(path)
    volume = lesson.client.volumes.get(name)
    mountpoint = volume.attrs.get("Mountpoint", "")
    if via == "host" or (via == "auto" and host_can_read(mountpoint)):
        root = Path(mountpoint).resolve()
        full = (root / rel).resolve()
        if root not in full.parents or not full.is_file():
            raise BadInput(f"There is no file {rel} in the volume {name}.")
        with open(full, "rb") as f:
            return f.read(READ_LIMIT)
    code, out = run_fenced(["sh", "-c", f'[ -f "/v/$P" ] && head -c {READ_LIMIT} "/v/$P"'],
                           environment={"P": rel}, **_mount_ro(name), lesson=lesson)
    if code != 0:
        raise BadInput(f"There is no file {rel} in the volume {name}.")
    return out.encode()


class VolumeBrowser(Panel):
    """The course's volumes (`docker volume ls` + `docker system df -v`), and inside one."""

    def __init__(self, via: str = "auto", *, lesson):
        import ipywidgets as w
        super().__init__()
        self.lesson, self.via = lesson, via
        self.rows: list[VolumeRow] = []
        self.files: list[FileRow] = []
        self.table = w.HTML()
        self.choice = w.Dropdown(options=[], description="volume:",
                                 layout=w.Layout(width="70%"))
        self.path = w.Text(description="file:", placeholder="a path from the list",
                           layout=w.Layout(width="70%"))
        self.inside = w.HTML()
        self.button("refresh", self.refresh, description="Refresh", icon="refresh")
        self.button("files", self.show_files, description="Show files")
        self.button("read", self.read, description="Read file")
        self.layout(self.buttons["refresh"], self.table,
                    w.HBox([self.choice, self.buttons["files"]]),
                    w.HBox([self.path, self.buttons["read"]]), self.inside)
        self.guarded(self.refresh)

    def refresh(self) -> list[VolumeRow]:
        self.rows = course_volumes(self.lesson.client)
        self.table.value = html_table(
            ["volume", "lesson", "size", "mount point (on the engine's machine)", "used by"],
            [(r.name[:12] + "… (anonymous)" if r.anonymous else r.name, r.lesson or "—",
              "?" if r.size_bytes is None else human_bytes(r.size_bytes), r.mountpoint,
              ", ".join(r.containers) or "no container") for r in self.rows])
        self.choice.options = [r.name for r in self.rows]
        self.say(True, f"{len(self.rows)} volume(s) of the course on this engine")
        return self.rows

    def show_files(self) -> list[FileRow]:
        if not self.choice.value:
            raise BadInput("Choose a volume first (Refresh lists them).")
        self.files, how = volume_files(self.choice.value, self.via, lesson=self.lesson)
        self.inside.value = html_table(["path", "type", "size"],
                                       [(f.path, f.kind, human_bytes(f.size_bytes))
                                        for f in self.files])
        self.say(True, f"{len(self.files)} entries in {self.choice.value[:20]}, read through "
                       f"the {how}")
        return self.files

    def read(self) -> bytes:
        if not self.choice.value:
            raise BadInput("Choose a volume first (Refresh lists them).")
        data = read_volume_file(self.choice.value, self.path.value, self.via, lesson=self.lesson)
        self.inside.value = (f"<pre style='max-height:20em;overflow:auto'>"
                             f"{html.escape(data.decode(errors='replace'))}</pre>")
        self.say(True, f"the first {len(data)} bytes of {_relative(self.path.value)}")
        return data


# ---------------------------------------------------------------- container vs VM: writing

def throughput_figure(result, machine):
    """`bench.write_throughput`'s result as bars: median MiB/s per place, 95% whiskers."""
    from helpers.measure import charts
    places = list(result.write_mib_s)
    colours = [charts.VM if "VM" in p else charts.CONTAINER for p in places]
    fig, ax = charts.figure(f"Writing {result.mib_written} MiB, then fsync", machine, width=7.5)
    charts.summary_bars(ax, result.write_mib_s, "MiB/s (log scale)",
                        "containers (blue) vs VM (orange)", colours=colours, log=True)
    return fig


def page_cache_lines(result) -> list[str]:
    """How much of each write was the copy into memory (the page cache), judged by the tmpfs,
    which has no disk behind it: the rest is the flush to storage that fsync waits for."""
    speeds = {place: s.median for place, s in result.write_mib_s.items()}
    memory, mib = speeds.get("tmpfs"), result.mib_written
    lines = []
    for place, speed in speeds.items():
        seconds = mib / speed
        if memory and place != "tmpfs":
            share = min(1.0, (mib / memory) / seconds)
            lines.append(f"{place:16} {speed:8.0f} MiB/s  {seconds:6.3f} s; the copy into "
                         f"memory is ~{share:.0%} of it, the flush to disk the rest")
        else:
            lines.append(f"{place:16} {speed:8.0f} MiB/s  {seconds:6.3f} s; memory only: fsync "
                         "has no disk to wait for")
    return lines
