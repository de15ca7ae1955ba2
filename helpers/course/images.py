"""The course's image kit: every image a lesson uses, made present one way or another.

`ensure_images()` tries, for each image in `data/images.json`: already there → pull (as
`docker pull`) → load the workshop bundle (as `docker load -i`) → build the offline recipe from
Debian packages on this machine. With DOCKERCOURSE_OFFLINE=1 it never pulls.

Entries marked "optional" (the VM image) are made only when named:
`python -m helpers.images ensure --name vmkit`.

Instructors:  python -m helpers.images bundle PATH   (write every course image to one file)
              python -m helpers.images ensure [--offline] [--name NAME ...]
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from helpers.course.builder import Fence, build
from helpers.course.engine import connect, save_images_stream
from helpers.course.settings import DATA, bundle_path, cache_dir, offline
from helpers.course.ui import Progress, in_notebook

KIT_LABEL = "dockercourse.kit"






@dataclass
class KitImage:
    name: str
    ref: str
    software: str
    recipe: str
    version_command: list
    version_expect: str
    used_for: str = ""
    debian_packages: tuple = ()
    host_packages: tuple = ()
    optional: bool = False   # made only when asked for by name (large, and rarely needed)
    own: bool = False        # the course's own image: no public tag, so never pulled
    # What the stand-in keeps of the public image, and the file that says so (`source`);
    # tests check each fact against the stand-in.
    matches: dict = field(default_factory=dict)

    @property
    def public(self) -> str:
        if self.own:
            return "none: the course's own image, no public tag"
        return f"docker.io/library/{self.ref}"


def catalogue(optional: bool = False) -> dict[str, KitImage]:
    """The images every lesson needs, by short name (`catalogue()['python'].ref`);
    with `optional=True` also those made only on request (the VM image)."""
    raw = json.loads((DATA / "images.json").read_text())
    entries = (KitImage(**{k: (tuple(v) if k.endswith("packages") else v)
                           for k, v in e.items()}) for e in raw["images"])
    return {e.name: e for e in entries if optional or not e.optional}


def ref(name: str) -> str:
    """The tag a notebook uses for a course image: `ref('busybox')` → 'busybox:1.35'."""
    return catalogue(optional=True)[name].ref


def present(client: docker.DockerClient, image: KitImage) -> bool:
    try:
        client.images.get(image.ref)
        return True
    except ImageNotFound:
        return False


class PullFailed(RuntimeError):
    pass


def pull(client: docker.DockerClient, image: KitImage) -> None:
    """`docker pull`, with progress: a bar per layer in a notebook, one bar in a terminal."""
    repo, tag = image.ref.rsplit(":", 1)
    bars: dict[str, Progress] = {}
    overall = None
    try:
        for event in client.api.pull(repo, tag, stream=True, decode=True):
            if "error" in event:
                raise PullFailed(event["error"])
            layer, detail = event.get("id"), event.get("progressDetail") or {}
            if not layer or not detail.get("total"):
                continue
            done, total = detail.get("current", 0) / 2**20, detail["total"] / 2**20
            caption = f"{event.get('status', '')} {layer}"
            if in_notebook():
                if layer not in bars:
                    bars[layer] = Progress(f"{image.ref} {layer}", total, "MiB")
                bars[layer].update(done, total, event.get("status", ""))
            else:
                overall = overall or Progress(f"pull {image.ref}", 1.0)
                overall.update(done, total, caption)
    except (APIError, DockerException, OSError) as exc:
        reason = getattr(exc, "explanation", None) or str(exc)
        raise PullFailed(str(reason).splitlines()[0][:200]) from None
    finally:
        for bar in bars.values():
            bar.close()
        if overall:
            overall.close()


def load_bundle(client: docker.DockerClient, path: Path | None = None) -> list[str]:
    """`docker load -i bundle.tar`: the images the bundle held."""
    path = path or bundle_path()
    with Progress(f"load {path.name}", 1.0) as bar, open(path, "rb") as f:
        loaded = client.images.load(f)
        bar.update(1.0, caption=f"{len(loaded)} images")
    return [t for img in loaded for t in img.tags]


def save_bundle(path: Path | None = None, client: docker.DockerClient | None = None) -> Path:
    """`docker save -o PATH <every course image>`: one file for a USB stick."""
    client = client or connect()
    path = Path(path or bundle_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    refs = [img.ref for img in catalogue().values()]
    missing = [img.ref for img in catalogue().values() if not present(client, img)]
    if missing:
        raise RuntimeError(f"Not present, so not saved: {', '.join(missing)}. "
                           "Run `python -m helpers.images ensure` first.")
    # Every image in one archive, so that the layers they share are stored once.
    chunks = save_images_stream(client, refs)
    tmp = path.with_suffix(".part")
    with Progress(f"save {path.name}", 1.0) as bar, open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            bar.update(0.5, caption=f"{f.tell() / 2**20:.0f} MiB")
    tmp.replace(path)
    return path


# Offline recipes: each prepares files on the host, then builds data/images/<recipe>/Dockerfile.

def _prepare_busybox(image: KitImage, context: Path) -> None:
    binary = shutil.which("busybox") or "/bin/busybox"
    probe = subprocess.run(["file", "-L", binary], capture_output=True, text=True).stdout \
        if shutil.which("file") else "statically linked"
    if not Path(binary).exists() or "statically linked" not in probe:
        raise RuntimeError("The offline busybox image needs a static busybox on this machine: "
                           "install Debian's busybox-static (`apt-get install busybox-static`).")
    shutil.copy2(binary, context / "busybox")


def rootfs_tar(packages: tuple, name: str, options: tuple = ()) -> Path:
    """A Debian 12 root file system with `packages`, made once by mmdebstrap and cached.

    `options` go to mmdebstrap as they are (e.g. `--dpkgopt=FILE`).
    """
    out = cache_dir() / f"rootfs-{name}.tar"
    if out.exists():
        return out
    if not shutil.which("mmdebstrap"):
        raise RuntimeError("Building the offline images needs mmdebstrap "
                           "(`apt-get install mmdebstrap`), or a bundle from your instructor "
                           f"at {bundle_path()}.")
    cache_dir().mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".part.tar")
    cmd = ["mmdebstrap", "--variant=minbase", "--quiet", *options,
           "--include=" + ",".join(packages), "bookworm", str(part)]
    with Progress(f"mmdebstrap {name}", 1.0) as bar:
        bar.update(0.1, caption="Debian root file system (about 30 s)")
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        part.unlink(missing_ok=True)
        raise RuntimeError(f"mmdebstrap failed: {done.stderr.strip()[-400:]}")
    part.replace(out)
    return out


def _prepare_debian_rootfs(image: KitImage, context: Path) -> None:
    tar = rootfs_tar(image.debian_packages, image.name)
    os.link(tar, context / "rootfs.tar") if tar.stat().st_dev == context.stat().st_dev \
        else shutil.copy2(tar, context / "rootfs.tar")


def _prepare_vm_rootfs(image: KitImage, context: Path) -> None:
    # Same packages as the online recipe; dpkg.cfg leaves out docs and all but the virtio
    # kernel modules at install time, so the image never holds them.
    tar = rootfs_tar(image.debian_packages, image.name,
                     (f"--dpkgopt={DATA / 'images' / image.name / 'dpkg.cfg'}",))
    os.link(tar, context / "rootfs.tar") if tar.stat().st_dev == context.stat().st_dev \
        else shutil.copy2(tar, context / "rootfs.tar")


# What a root file system made of a few packages leaves out: documentation, the C library's
# character-set converters (gconv), and the host's service files (an image starts its program
# itself).
DEB_LEFT_OUT = ("usr/share/doc", "usr/share/man", "usr/share/lintian", "usr/share/locale",
                "etc/init.d", "lib/systemd", "usr/lib/systemd")


def debs_tar(packages: tuple, name: str) -> Path:
    """Debian's `packages` (no more: their dependencies only where named) as one tar, fetched
    with `apt-get download` from this machine's apt sources and unpacked with `dpkg -x`; made
    once and cached. Nothing is installed on the host."""
    out = cache_dir() / f"debs-{name}.tar"
    if out.exists():
        return out
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        raise RuntimeError(f"Building the offline {name} image needs apt-get and dpkg (Debian or "
                           f"Ubuntu), or a bundle from your instructor at {bundle_path()}.")
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dockercourse-debs-") as tmp:
        debs, root = Path(tmp) / "debs", Path(tmp) / "root"
        debs.mkdir()
        # apt's download user cannot enter a private temporary folder; root fetches itself
        sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
        with Progress(f"apt-get download {name}", 1.0) as bar:
            bar.update(0.1, caption=" ".join(packages))
            done = subprocess.run(["apt-get", "download", "-qq", *sandbox, *packages], cwd=debs,
                                  capture_output=True, text=True)
        if done.returncode != 0 or len(list(debs.glob("*.deb"))) != len(packages):
            raise RuntimeError(f"Fetching Debian's {' '.join(packages)} with `apt-get download` "
                               f"failed (run `apt-get update` first?): "
                               f"{done.stderr.strip()[-300:]}")
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        # Where a release keeps the C library under /usr only (merged /usr), the dynamic
        # loader is still looked for at /lib64/ld-linux-x86-64.so.2.
        for top in ("lib", "lib64"):
            if not (root / top).exists() and (root / "usr" / top).is_dir():
                (root / top).symlink_to(f"usr/{top}")

        def as_root(info: tarfile.TarInfo):
            if info.name.startswith(DEB_LEFT_OUT) or "gconv" in info.name.split("/"):
                return None
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            return info

        part = out.with_suffix(".part.tar")
        with tarfile.open(part, "w") as tar:
            for entry in sorted(root.iterdir()):
                tar.add(entry, arcname=entry.name, filter=as_root)
        part.replace(out)
    return out


def _prepare_debian_debs(image: KitImage, context: Path) -> None:
    # The static busybox gives the image a shell, as the official images' Alpine base does.
    _prepare_busybox(image, context)
    tar = debs_tar(image.debian_packages, image.name)
    os.link(tar, context / "rootfs.tar") if tar.stat().st_dev == context.stat().st_dev \
        else shutil.copy2(tar, context / "rootfs.tar")


PREPARE = {"busybox": _prepare_busybox, "debian-rootfs": _prepare_debian_rootfs,
           "vm-rootfs": _prepare_vm_rootfs, "debian-debs": _prepare_debian_debs}
ONLINE_DOCKERFILE = "Dockerfile.online"


def _recipe_dir(image: KitImage) -> Path:
    named = DATA / "images" / image.name
    return named if named.is_dir() else DATA / "images" / image.recipe


def build_offline(client: docker.DockerClient, image: KitImage, online: bool = False,
                  tag: str | None = None) -> str:
    """Build the stand-in for `image.ref` from Debian packages; labels say what it stands for.

    With `online`, build the recipe's Dockerfile.online instead (apt inside the build: needs
    network). `tag` builds it under another name (to try a changed recipe beside the image in
    use). BuildKit builds it wherever the docker CLI has buildx, as `docker build` would.
    Returns the image ID.
    """
    recipe_dir = _recipe_dir(image)
    with tempfile.TemporaryDirectory(prefix="dockercourse-") as tmp:
        context = Path(tmp)
        for f in recipe_dir.iterdir():
            shutil.copy2(f, context / f.name)
        if not online:
            PREPARE[image.recipe](image, context)
        kit_labels = {
            KIT_LABEL: image.name,
            f"{KIT_LABEL}.local-build": "true",
            f"{KIT_LABEL}.stands-for": image.public,
            f"{KIT_LABEL}.software": image.software,
        }
        name = tag or image.ref
        with Progress(f"build {name}", 1.0) as bar:
            # The course's own recipe: no learner's fence (a kit build may take minutes).
            result = build(client, context, name, labels=kit_labels, progress=bar,
                           dockerfile=ONLINE_DOCKERFILE if online else None, fence=Fence())
        if not result.ok:
            raise RuntimeError(f"Building the {'online' if online else 'offline'} {name} "
                               f"with {result.builder} failed: {result.error}")
        return result.image_id


def ensure_images(client: docker.DockerClient | None = None, names: list | None = None,
                  allow_pull: bool | None = None) -> dict[str, str]:
    """Make every course image present; returns {ref: how} ('present', 'pulled', 'bundle', 'built').

    Optional entries (the VM image) only when named in `names`.
    """
    client = client or connect(timeout=600)
    allow_pull = (not offline()) if allow_pull is None else allow_pull
    kit = catalogue(optional=True)
    unknown = [n for n in names or () if n not in kit]
    if unknown:
        raise ValueError(f"No course image called {', '.join(unknown)}; there are {', '.join(kit)}.")
    wanted = [kit[n] for n in names] if names else [i for i in kit.values() if not i.optional]
    report: dict[str, str] = {}
    for image in wanted:
        if present(client, image):
            report[image.ref] = "present"
            continue
        if image.own and allow_pull and (_recipe_dir(image) / ONLINE_DOCKERFILE).exists():
            # No public tag to pull (a pull could fetch a stranger's image of that name):
            # build it from Debian's packages online instead.
            try:
                build_offline(client, image, online=True)
                report[image.ref] = "built"
                continue
            except RuntimeError as exc:
                print(f"Could not build {image.ref} online ({str(exc)[:200]}); "
                      "using the offline kit instead.")
        elif allow_pull and not image.own:
            try:
                pull(client, image)
                report[image.ref] = "pulled"
                continue
            except PullFailed as exc:
                print(f"Could not pull {image.ref} ({exc}); using the offline kit instead.")
        if bundle_path().exists():
            try:
                load_bundle(client)
            except (APIError, OSError) as exc:
                print(f"Could not load the bundle {bundle_path()}: {exc}")
            if present(client, image):
                report[image.ref] = "bundle"
                continue
        build_offline(client, image)
        report[image.ref] = "built"
    return report


def main(argv: list | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m helpers.images", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ensure = sub.add_parser("ensure", help="make every course image present")
    ensure.add_argument("--offline", action="store_true", help="never pull")
    ensure.add_argument("--name", action="append", default=None,
                        help="only this image (repeatable); optional ones, e.g. vmkit, "
                             "are made only when named")
    bundle = sub.add_parser("bundle", help="write every course image to one file")
    bundle.add_argument("path", nargs="?", default=None)
    sub.add_parser("list", help="the catalogue, and what is present")
    args = parser.parse_args(argv)
    try:
        if args.command == "ensure":
            for r, how in ensure_images(names=args.name,
                                        allow_pull=not (args.offline or offline())).items():
                print(f"{r:24} {how}")
        elif args.command == "bundle":
            path = save_bundle(args.path)
            print(f"Wrote {path} ({path.stat().st_size / 2**20:.0f} MiB). On a machine without "
                  f"network: put it at {bundle_path()} (or set DOCKERCOURSE_BUNDLE) and run "
                  "the course as usual.")
        else:
            client = connect()
            for img in catalogue(optional=True).values():
                print(f"{img.ref:24} {'present' if present(client, img) else 'missing':8} "
                      f"{img.software}{' (optional)' if img.optional else ''}")
    except Exception as exc:  # a command-line tool: one line, no traceback
        print(f"✘ {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
