"""Getting a machine ready for the course: host packages, a Docker Engine, the course's images.

    python -m helpers.setup              what `./course start` runs before JupyterLab
    python -m helpers.setup --for-tests  what `./course test` runs: offline, sealed, plus Chromium

Where no engine answers, Linux as root with apt installs Debian's docker.io and starts dockerd;
anywhere else it says exactly what to start, and exits non-zero.
"""
from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from .engine import EngineUnavailable, advice, connect, engine_answers

# What the course uses from the host, by Debian package name.
ENGINE_PACKAGES = ["docker.io", "docker-compose"]
KIT_PACKAGES = ["busybox-static", "mmdebstrap"]          # the offline image recipes
VM_PACKAGES = ["qemu-system-x86", "linux-image-amd64"]  # the VM side of every benchmark
TEST_PACKAGES = ["chromium"]                            # JupyterLab in a real browser

DOCKERD_LOG = Path("/var/log/dockercourse-dockerd.log")
# A proxy that answers nothing: a pull fails at once instead of reaching a registry.
DEAD_PROXY = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
              "NO_PROXY": "localhost,127.0.0.1"}
# Containers may talk to each other on Docker's bridges, and to nothing beyond.
EGRESS_RULES = [
    ["DOCKER-USER", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN"],
    ["DOCKER-USER", "!", "-d", "172.16.0.0/12", "-j", "REJECT"],
]


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


def registry_resolves(host: str = "registry-1.docker.io") -> bool:
    """Whether the public registry's name resolves at all (here it does not: no network)."""
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def start_engine(sealed: bool, wait_seconds: int = 60) -> None:
    """Start dockerd as root, in the background, and wait until its socket answers."""
    if not shutil.which("dockerd"):
        raise EngineUnavailable("dockerd is not installed: `apt-get install docker.io`.")
    env = {**os.environ, **(DEAD_PROXY if sealed else {})}
    say(f"starting dockerd{' (sealed: dead proxy, no egress)' if sealed else ''}; "
        f"log in {DOCKERD_LOG}")
    log = open(DOCKERD_LOG, "ab")
    subprocess.Popen(["dockerd"], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                     start_new_session=True)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if engine_answers(timeout=2):
            return
        time.sleep(0.5)
    tail = DOCKERD_LOG.read_text(errors="replace")[-800:]
    raise EngineUnavailable(f"dockerd did not answer within {wait_seconds} s. Its log ends:\n{tail}")


def seal_egress() -> bool:
    """Reject container traffic to anything beyond Docker's bridges (idempotent)."""
    if not (shutil.which("iptables") and os.geteuid() == 0):
        return False
    for position, rule in ((1, EGRESS_RULES[0]), (2, EGRESS_RULES[1])):
        exists = subprocess.run(["iptables", "-C", *rule], capture_output=True).returncode == 0
        if not exists:
            chain, spec = rule[0], rule[1:]
            subprocess.run(["iptables", "-I", chain, str(position), *spec], check=True,
                           capture_output=True)
    return True


def ensure_engine(sealed: bool) -> None:
    if engine_answers():
        say("a Docker Engine answers")
    elif can_install():
        apt_install(ENGINE_PACKAGES)
        start_engine(sealed)
    else:
        raise EngineUnavailable(advice())
    if sealed and can_install():
        # Only when the course starts the engine may it set the proxy; the egress rule it can
        # always add, so that no test container reaches beyond this machine.
        if seal_egress():
            say("egress from containers is rejected beyond Docker's bridges")


def main(argv: list | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m helpers.setup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--for-tests", action="store_true",
                        help="offline and sealed, and install the browser the tests drive")
    args = parser.parse_args(argv)
    offline = args.for_tests or os.environ.get("DOCKERCOURSE_OFFLINE", "") not in ("", "0")
    if offline:
        os.environ["DOCKERCOURSE_OFFLINE"] = "1"
    started = time.monotonic()
    try:
        if can_install():
            apt_install(KIT_PACKAGES + VM_PACKAGES + (TEST_PACKAGES if args.for_tests else []))
        # No network (the registry's name does not even resolve): seal the engine we start too.
        ensure_engine(sealed=offline or not registry_resolves())
        from .images import ensure_images
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
