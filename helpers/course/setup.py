"""Getting a machine ready for the course: host packages, a Docker Engine, the course's images.

    python -m helpers.setup              what `./course start` runs before JupyterLab
    python -m helpers.setup --for-tests  what `./course test` runs: offline, plus Chromium

Where your own Docker Engine answers, the course uses it and installs nothing. Where none does,
on Linux as root with apt, it starts the course's own engine (`helpers.course.own_engine`: Debian's
current Docker Engine unpacked into a private prefix); anywhere else it says exactly what to
start, and exits non-zero.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time

from helpers.course.engine import EngineUnavailable, advice, connect

# What the course uses from the host, by Debian package name.
KIT_PACKAGES = ["busybox-static", "mmdebstrap"]          # the offline image recipes
VM_PACKAGES = ["qemu-system-x86"]                        # the VM side of every benchmark
TEST_PACKAGES = ["chromium"]                             # JupyterLab in a real browser


def say(text: str) -> None:
    print(f"[setup] {text}", flush=True)


def can_install() -> bool:
    """Linux, root and apt: the one case where the course installs host packages itself."""
    return platform.system() == "Linux" and os.geteuid() == 0 and bool(shutil.which("apt-get"))


def missing_packages(packages: list[str]) -> list[str]:
    missing = []
    for pkg in packages:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                              capture_output=True, text=True)
        if "install ok installed" not in done.stdout:
            missing.append(pkg)
    return missing


def apt_install(packages: list[str]) -> None:
    missing = missing_packages(packages)
    if not missing:
        return
    say(f"installing Debian packages: {' '.join(missing)} (a few minutes the first time)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def learner_engine() -> str:
    """Where an engine that is not the course's answers (DOCKER_HOST or the default socket)."""
    from helpers.course import own_engine
    from helpers.course.engine import DEFAULT_SOCKET, engine_answers_at
    state = own_engine.read_state()
    for host in (os.environ.get("DOCKER_HOST", ""), f"unix://{DEFAULT_SOCKET}"):
        if host and not (state and host == state.host) and engine_answers_at(host):
            return host
    return ""


def ensure_engine() -> str:
    """Use the learner's engine where one answers; else the course's own (Linux, root, apt);
    else say what to start. Returns what serves: 'yours' or 'course'."""
    from helpers.course import own_engine
    if learner_engine():
        say("your Docker Engine answers: the course uses it and installs nothing")
        return "yours"
    if own_engine.read_state():
        say(own_engine.status())
        return "course"
    if not can_install():
        raise EngineUnavailable(advice())
    try:
        own_engine.start("26")
    except own_engine.EngineError as exc:
        if "name no Debian archive" in str(exc) and own_engine.distribution_engine_ok():
            raise EngineUnavailable(
                "This system's own docker.io is recent enough: install and start it "
                "(`sudo apt-get install docker.io docker-compose-v2 docker-buildx && "
                "sudo systemctl start docker`), then run this again.") from None
        raise EngineUnavailable(str(exc)) from None
    say(own_engine.status())
    return "course"


def main(argv: list | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m helpers.setup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--for-tests", action="store_true",
                        help="never pull, and install the browser the tests drive")
    parser.add_argument("--no-engine", action="store_true",
                        help="only install and fetch what the engines and the VM need")
    args = parser.parse_args(argv)
    if args.for_tests:
        os.environ["DOCKERCOURSE_OFFLINE"] = "1"
    started = time.monotonic()
    try:
        if can_install():
            apt_install(KIT_PACKAGES + VM_PACKAGES + (TEST_PACKAGES if args.for_tests else []))
        if can_install():
            from helpers.measure.vm import find_kernel, unpack_kernel
            if not find_kernel():
                say("unpacking Debian's Linux kernel into the course's cache (for the VM side)")
                unpack_kernel()
        if args.no_engine:
            if can_install() and not learner_engine():
                from helpers.course import own_engine
                own_engine.install_host_packages()
                for version in ("26", "20.10", "nft"):
                    own_engine.unpack(version)
            return 0
        ensure_engine()
        from helpers.course.images import ensure_images
        for ref, how in ensure_images(connect(timeout=600)).items():
            say(f"image {ref}: {how}")
    except EngineUnavailable as exc:
        print(f"\n✘ {exc}\n", file=sys.stderr)
        return 2
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"\n✘ Setting up failed: {exc}\n", file=sys.stderr)
        return 1
    say(f"ready in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
