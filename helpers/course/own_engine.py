"""The course's own Docker Engine, for a Linux machine that has none (root and apt only).

Where no engine answers, the course unpacks Docker Engine from Debian's packages into a prefix of
its own and runs it beside nothing else: its own socket, data-root, exec-root, pid file, log and
bridge. Nothing of the engine is installed into the system; the three helpers it needs from the
distribution (`runc`, `tini`, `iptables`) are ordinary packages, listed in the README.

    python -m helpers.course.own_engine status            what runs, where, since when
    python -m helpers.course.own_engine start [--instance 26|26-containerd|20.10] [--sealed]
    python -m helpers.course.own_engine stop              stop it and undo what it changed on the host
    python -m helpers.course.own_engine remove            stop it and delete every file it has
    python -m helpers.course.own_engine env               the shell variables that point the CLI at it

`./course engine status|stop|remove` calls these. Sealing (a dead proxy and an egress rule) is
only for the engine `./course test` starts: `./course start` never seals and never adds a rule.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from helpers.course import settings

# Debian's packages of each engine version, and the release that ships them.
PACKAGES = {
    "26": ("trixie", ["docker.io", "docker-cli", "containerd", "docker-compose",
                      "docker-buildx"]),
    "20.10": ("bookworm", ["docker.io", "containerd"]),
    # `nft`, only to delete the empty tables a stopped engine leaves (iptables cannot).
    "nft": ("", ["nftables", "libnftables1"]),
}
# The plugins (Compose v2, buildx) and the CLI come from the current release for every engine.
CLI_VERSION = "26"
# The engines the course can run, each with its own data-root, exec-root and log: the one
# `./course start` uses, and the three `./course test` starts afresh for its legs.
CONTAINERD_STORE = {"features": {"containerd-snapshotter": True}}
INSTANCES = {
    "26": ("26", {}),
    "test-26": ("26", {}),
    "test-26-containerd": ("26", CONTAINERD_STORE),
    "test-20.10": ("20.10", {}),
}
HOST_PACKAGES = ["runc", "tini", "iptables"]  # from the distribution, as ordinary packages
BRIDGE = "dockercourse0"                      # a name of its own: a stale docker0 is no matter
BRIDGE_ADDRESS = "172.31.252.1/24"
BUILD_CGROUP = "dockercourse-builds"          # the parent of every build step on this engine
BUILD_LIMITS = {"pids.max": "512", "memory.limit_in_bytes": str(512 << 20)}
# A proxy that answers nothing: a pull fails at once instead of reaching a registry.
DEAD_PROXY = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
              "NO_PROXY": "localhost,127.0.0.1"}
# Chains that dockerd makes, by table; removed on stop when they were not there before.
DOCKER_CHAINS = {"filter": ["DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2",
                            "DOCKER-USER"],
                 "nat": ["DOCKER"]}

CACHE = settings.cache_dir() / "engine"
DATA = Path("/var/lib/dockercourse")
RUN = Path("/run/dockercourse")
LOGS = Path("/var/log/dockercourse")
STATE = RUN / "engine.json"


class EngineError(RuntimeError):
    """The course's engine could not be started or stopped; the message says what to do."""


def say(text: str) -> None:
    print(f"[engine] {text}", flush=True)


def prefix(version: str) -> Path:
    return CACHE / version / "prefix"


def cli_config_dir() -> Path:
    """A CLI configuration of the course's own: it finds the plugins, and ~/.docker stays as is."""
    return CACHE / "cli-config"


def plugins_dir() -> Path:
    return prefix(CLI_VERSION) / "usr" / "libexec" / "docker" / "cli-plugins"


@dataclass
class State:
    """What the course knows of the engine it started (kept in /run/dockercourse/engine.json)."""
    instance: str
    version: str
    pid: int
    socket: str
    sealed: bool
    started: float
    bridge: str = BRIDGE
    ip_forward_before: str = "1"
    forward_policy_before: str = "ACCEPT"
    tables_before: list = field(default_factory=list)
    chains_before: dict = field(default_factory=dict)
    rules: list = field(default_factory=list)   # [table, chain, *spec] the course added
    cgroups: list = field(default_factory=list)
    made: list = field(default_factory=list)    # host files and folders this engine made

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def path(self) -> str:
        """PATH with the engine's programs (dockerd, containerd) and the course's CLI first."""
        dirs = [prefix(self.version) / "usr" / "sbin", prefix(self.version) / "usr" / "bin",
                prefix(CLI_VERSION) / "usr" / "bin"]
        return os.pathsep.join([*map(str, dirs), os.environ.get("PATH", "")])

    def env(self) -> dict:
        """The variables JupyterLab, its kernels and terminals get while this engine serves."""
        return {"DOCKER_HOST": self.host, "DOCKER_CONFIG": str(cli_config_dir()),
                "PATH": self.path}


def read_state() -> State | None:
    """The course's engine, if one was started and its dockerd still runs."""
    try:
        state = State(**json.loads(STATE.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return state if _alive(state.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie or a recycled pid is not our dockerd
        return "dockerd" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True


def _reap(pid: int) -> None:
    """Collect an ended dockerd this process started, so that no zombie of it stays."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass   # not our child: its own parent reaps it


def _run(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, **kw)


# ---- fetching and unpacking ----------------------------------------------------------------

def _archive_uri() -> str:
    """The Debian archive this machine's apt already uses (its address never goes in the repo)."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list"),
               *Path("/etc/apt/sources.list.d").glob("*.sources")]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if path.suffix == ".sources" and words[:1] == ["URIs:"]:
                candidates = words[1:]
            elif words[:1] == ["deb"]:
                candidates = [w for w in words[1:] if "://" in w][:1]
            else:
                continue
            for uri in candidates:
                if uri.rstrip("/").endswith("/debian") and "security" not in uri:
                    return uri.rstrip("/")
    raise EngineError("This machine's apt sources name no Debian archive, so the course cannot "
                      "fetch Docker's packages. Install Docker Engine yourself "
                      "(Debian or Ubuntu's `docker.io`, 23 or newer) and start it.")


def _own_suite() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    return "bookworm"


def _apt_options(root: Path) -> list:
    return ["-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={root / 'lists'}",
            "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
            "-o", "APT::Sandbox::User=root", "-qq"]


def unpack(version: str) -> Path:
    """Fetch Debian's packages of `version` with `apt-get download` and `dpkg -x` them into the
    course's prefix (once). Returns the prefix."""
    target = prefix(version)
    if (target / "usr" / "sbin").is_dir():
        return target
    suite, packages = PACKAGES[version]
    suite = suite or _own_suite()
    root = CACHE / version
    root.mkdir(parents=True, exist_ok=True)
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    (root / "sources.list").write_text(
        f"deb [signed-by={keyring}] {_archive_uri()} {suite} main\n")
    debs = root / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir()
    say(f"fetching {' '.join(packages)} from Debian {suite} into {target}")
    try:
        _run("apt-get", *_apt_options(root), "update")
        _run("apt-get", *_apt_options(root), "download", *packages, cwd=debs)
    except subprocess.CalledProcessError as exc:
        raise EngineError(f"Fetching Docker's packages from Debian {suite} failed: "
                          f"{(exc.stderr or '').strip()[-300:]}") from None
    part = target.with_suffix(".part")
    shutil.rmtree(part, ignore_errors=True)
    for deb in sorted(debs.glob("*.deb")):
        _run("dpkg", "-x", str(deb), str(part))
    shutil.rmtree(debs)
    shutil.rmtree(target, ignore_errors=True)
    part.rename(target)
    return target


def _write_cli_config() -> None:
    """`cliPluginsExtraDirs` lets the CLI find Compose v2 and buildx in the course's prefix."""
    folder = cli_config_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(
        {"cliPluginsExtraDirs": [str(plugins_dir())]}, indent=2) + "\n")


def install_host_packages() -> None:
    missing = [p for p in HOST_PACKAGES
               if "install ok installed" not in _run("dpkg-query", "-W", "-f=${Status}", p,
                                                     check=False).stdout]
    if missing:
        say(f"installing {' '.join(missing)} from the distribution (the engine runs them)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run("apt-get", "update", "-qq", env=env)
        _run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env)


def distribution_engine_ok() -> bool:
    """On an apt system without trixie (Ubuntu, Mint): the distribution's docker.io, if >= 23."""
    done = _run("apt-cache", "policy", "docker.io", check=False)
    for line in done.stdout.splitlines():
        if "Candidate:" in line:
            version = line.split(":", 1)[1].strip()
            try:
                return int(version.split(".")[0].split(":")[-1]) >= 23
            except ValueError:
                return False
    return False


# ---- the host's network and cgroups ---------------------------------------------------------

def _chains(tool: str, table: str) -> set:
    done = _run(tool, "-t", table, "-S", check=False)
    return {line.split()[1] for line in done.stdout.splitlines() if line.startswith("-N ")}


def _snapshot_chains() -> dict:
    return {f"{tool}/{table}": sorted(_chains(tool, table) & set(names))
            for tool in ("iptables", "ip6tables") if shutil.which(tool)
            for table, names in DOCKER_CHAINS.items()}


def _remove_chains(before: dict) -> None:
    """Delete the chains dockerd made (and every jump to them), where they were not there before
    the course's engine started."""
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        for table, names in DOCKER_CHAINS.items():
            ours = (_chains(tool, table) & set(names)) - set(before.get(f"{tool}/{table}", []))
            if not ours:
                continue
            rules = _run(tool, "-t", table, "-S", check=False).stdout.splitlines()
            for line in rules:  # jumps from other chains, e.g. FORWARD -j DOCKER-USER
                words = line.split()
                if words[:1] == ["-A"] and words[1] not in ours and \
                        any(w in ours for w in words[2:]):
                    _run(tool, "-t", table, "-D", *words[1:], check=False)
            for chain in ours:
                _run(tool, "-t", table, "-F", chain, check=False)
            for chain in ours:
                _run(tool, "-t", table, "-X", chain, check=False)


def _forward_policy() -> str:
    for line in _run("iptables", "-S", "FORWARD", check=False).stdout.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return "ACCEPT"


def _tables() -> list:
    """The iptables tables that exist now (`iptables-save` lists only those)."""
    out = _run("iptables-save", check=False).stdout if shutil.which("iptables-save") else ""
    return sorted({line[1:] for line in out.splitlines() if line.startswith("*")})


def _drop_new_empty_tables(before: list) -> None:
    """With the nftables back end, a table dockerd made (nat, on a fresh machine) can go again
    once it holds no rule; the legacy back end keeps its tables in the kernel anyway."""
    if "nf_tables" not in _run("iptables", "--version", check=False).stdout:
        return
    empty = [t for t in set(_tables()) - set(before)
             if all(r.startswith("-P ") and r.endswith(" ACCEPT")
                    for r in _run("iptables", "-t", t, "-S", check=False).stdout.splitlines())]
    if not empty:
        return
    tools = unpack("nft")
    libs = next((tools / "usr" / "lib").glob("*/libnftables.so*"), None)
    env = {**os.environ, "LD_LIBRARY_PATH": str(libs.parent) if libs else ""}
    for table in empty:
        _run(str(tools / "usr" / "sbin" / "nft"), "delete", "table", "ip", table,
             check=False, env=env)


def _remove_dead_bridge_rules() -> None:
    """dockerd also writes rules straight into FORWARD and POSTROUTING for each bridge it runs
    (`-o dockercourse0 ... -j ACCEPT`, `-o br-<id> ...`); once the bridge's link is gone they
    match nothing, so they go. A bridge that still exists (another tool's) keeps its rules."""
    def dead(word: str) -> bool:
        return (word == BRIDGE or re.fullmatch(r"br-[0-9a-f]{12}", word) is not None) and \
            not Path(f"/sys/class/net/{word}").exists()
    for table in ("filter", "nat"):
        rules = _run("iptables", "-t", table, "-S", check=False).stdout.splitlines()
        for line in rules:
            words = line.split()
            if words[:1] == ["-A"] and any(dead(w) for w in words[2:]):
                _run("iptables", "-t", table, "-D", *words[1:], check=False)


def _egress_rules() -> list:
    """Containers of the sealed engine may talk to each other and to nothing beyond."""
    rules = []
    for iface in (BRIDGE, "br-+"):
        rules.append(["filter", "DOCKER-USER", "-i", iface, "-m", "conntrack", "--ctstate",
                      "RELATED,ESTABLISHED", "-j", "RETURN"])
        rules.append(["filter", "DOCKER-USER", "-i", iface, "!", "-d", "172.16.0.0/12",
                      "-j", "REJECT"])
    return rules


def _add_rules(rules: list) -> list:
    added = []
    for table, chain, *spec in rules:
        position = str(len([r for r in added if r[1] == chain]) + 1)
        _run("iptables", "-t", table, "-I", chain, position, *spec)
        added.append([table, chain, *spec])
    return added


def _remove_rules(rules: list) -> None:
    for table, chain, *spec in rules:
        while _run("iptables", "-t", table, "-D", chain, *spec, check=False).returncode == 0:
            pass


def _make_bridge() -> None:
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        return
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")


def _remove_links(network_ids: list) -> None:
    for name in [BRIDGE, *(f"br-{n[:12]}" for n in network_ids)]:
        if Path(f"/sys/class/net/{name}").exists():
            _run("ip", "link", "delete", name, check=False)


def _cgroup_v2() -> bool:
    return Path("/sys/fs/cgroup/cgroup.controllers").exists()


def make_build_cgroup() -> list:
    """The cgroup parent every build step on the course's engine runs under: 512 processes and
    512 MiB at most, on cgroup v1 or v2. Returns the folders made (removed on stop)."""
    made = []
    if _cgroup_v2():
        folder = Path("/sys/fs/cgroup") / BUILD_CGROUP
        folder.mkdir(exist_ok=True)
        made.append(str(folder))
        for controller in ("pids", "memory"):
            try:
                Path("/sys/fs/cgroup/cgroup.subtree_control").write_text(f"+{controller}")
            except OSError:
                pass
        (folder / "pids.max").write_text(BUILD_LIMITS["pids.max"])
        (folder / "memory.max").write_text(BUILD_LIMITS["memory.limit_in_bytes"])
        return made
    for controller, limit in (("pids", "pids.max"), ("memory", "memory.limit_in_bytes")):
        folder = Path("/sys/fs/cgroup") / controller / BUILD_CGROUP
        if not folder.parent.is_dir():
            continue
        folder.mkdir(exist_ok=True)
        (folder / limit).write_text(BUILD_LIMITS[limit])
        made.append(str(folder))
    return made


def _remove_cgroups(folders: list) -> None:
    for folder in folders:
        # Children first (dockerd makes one per build step under the parent).
        for child in sorted(Path(folder).glob("**/"), key=lambda p: -len(p.parts)):
            try:
                child.rmdir()
            except OSError:
                pass


def build_cgroup_parent() -> str:
    """The `--cgroup-parent` for builds on the course's engine ('' on any other engine)."""
    state = read_state()
    return f"/{BUILD_CGROUP}" if state and state.cgroups else ""


# ---- starting and stopping ------------------------------------------------------------------

def _foreign_dockerd() -> list:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                # A zombie (state Z) has ended already: only its parent has not reaped it yet.
                if (proc / "comm").read_text().strip() == "dockerd" and \
                        (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(proc.name))
            except (OSError, IndexError):
                pass
    state = read_state()
    return [p for p in pids if not state or p != state.pid]


def paths(instance: str) -> dict:
    run = RUN / instance
    return {"data_root": DATA / instance, "exec_root": run, "socket": run / "docker.sock",
            "pidfile": run / "dockerd.pid", "log": LOGS / f"{instance}.log",
            "config": run / "daemon.json"}


def start(instance: str = "26", sealed: bool = False, fresh: bool = False,
          wait_seconds: int = 90) -> State:
    """Start the course's engine `instance` (unpacking it first if need be) and wait for it.
    `fresh` empties its data-root first (the tests' engines start with no image at all)."""
    if instance not in INSTANCES:
        raise EngineError(f"No engine called {instance}; there are {', '.join(INSTANCES)}.")
    current = read_state()
    from helpers.course.engine import DEFAULT_SOCKET, engine_answers_at
    for host in {os.environ.get("DOCKER_HOST") or "", f"unix://{DEFAULT_SOCKET}"} - {""}:
        if (not current or host != current.host) and engine_answers_at(host):
            raise EngineError(f"A Docker Engine already answers at {host}: the course uses it "
                              "and starts no second one beside it.")
    foreign = _foreign_dockerd()
    if foreign:
        raise EngineError(f"A dockerd the course did not start runs here (pid "
                          f"{', '.join(map(str, foreign))}). Two engines would fight over the "
                          "same iptables chains: start that one (`sudo systemctl start docker`) "
                          "or stop it, then try again.")
    if current:
        if current.instance == instance and current.sealed == sealed and not fresh:
            return current
        stop()
    version, config = INSTANCES[instance]
    install_host_packages()
    unpack(version)
    unpack(CLI_VERSION)
    if "nf_tables" in _run("iptables", "--version", check=False).stdout:
        unpack("nft")   # to delete on stop the tables this engine creates
    _write_cli_config()
    p = paths(instance)
    LOGS.mkdir(parents=True, exist_ok=True)
    p["exec_root"].mkdir(parents=True, exist_ok=True)
    p["config"].write_text(json.dumps({
        **config, "data-root": str(p["data_root"]), "exec-root": str(p["exec_root"]),
        "pidfile": str(p["pidfile"]), "hosts": [f"unix://{p['socket']}"], "bridge": BRIDGE,
        "init-path": shutil.which("tini-static") or "/usr/bin/tini-static",
        "ipv6": False, "ip6tables": False,
        # Every network this engine makes stays inside 172.16.0.0/12, the range the tests'
        # egress rule lets containers reach (the default pools go on into 192.168.0.0/16).
        "default-address-pools": [{"base": "172.17.0.0/16", "size": 24}],
    }, indent=2))
    ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    chains, policy, tables = _snapshot_chains(), _forward_policy(), _tables()
    if fresh:
        shutil.rmtree(p["data_root"], ignore_errors=True)
        p["log"].unlink(missing_ok=True)
    for key in ("data_root", "exec_root"):
        p[key].mkdir(parents=True, exist_ok=True)
    _make_bridge()
    cgroups = make_build_cgroup()
    env = {**os.environ, **(DEAD_PROXY if sealed else {})}
    env["PATH"] = State(instance, version, 0, "", sealed, 0).path
    for name in ("DOCKER_HOST", "DOCKER_CONFIG"):
        env.pop(name, None)
    say(f"starting Docker Engine {version} ({instance}){' sealed' if sealed else ''}; "
        f"log in {p['log']}")
    log = open(p["log"], "ab")
    args = [str(prefix(version) / "usr" / "sbin" / "dockerd"), "--config-file", str(p["config"])]
    proc = subprocess.Popen(args,
                            env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    state = State(instance, version, proc.pid, str(p["socket"]), sealed, time.time(),
                  ip_forward_before=ip_forward, forward_policy_before=policy,
                  tables_before=tables, chains_before=chains, cgroups=cgroups,
                  made=[str(f) for f in WRITES_OUTSIDE if not f.exists()])
    RUN.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(asdict(state), indent=2))
    deadline = time.monotonic() + wait_seconds
    while not engine_answers_at(state.host):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = p["log"].read_text(errors="replace")[-1200:]
            stop()
            raise EngineError(f"The course's Docker Engine {version} did not come up. "
                              f"Its log ({p['log']}) ends:\n{tail}")
        time.sleep(0.3)
    if sealed:
        state.rules = _add_rules(_egress_rules())
        STATE.write_text(json.dumps(asdict(state), indent=2))
    return state


# Engine 20.10 writes its identity key to /etc/docker/key.json whatever its data-root (no flag
# moves it); Engine 26 writes none. The course removes what was not there before it started.
WRITES_OUTSIDE = [Path("/etc/docker/key.json"), Path("/etc/docker")]


def _remove_made(made: list) -> None:
    for name in made:                        # files first, then their folders if left empty
        path = Path(name)
        if path.is_file():
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def stop(wait_seconds: int = 40) -> bool:
    """Stop the course's engine and undo what it changed: rules, chains, links, ip_forward,
    cgroups. Returns False when none ran."""
    try:
        state = State(**json.loads(STATE.read_text()))
    except (OSError, ValueError, TypeError):
        return False
    networks = []
    try:
        from helpers.course.engine import client_at
        client = client_at(state.host, timeout=5)
        networks = [n["Id"] for n in client.api.networks()]
        client.close()
    except Exception:  # the engine may already be gone; its links are found by name then
        pass
    if _alive(state.pid):
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_seconds
        while _alive(state.pid) and time.monotonic() < deadline:
            _reap(state.pid)
            time.sleep(0.2)
        if _alive(state.pid):
            os.kill(state.pid, signal.SIGKILL)
            time.sleep(1)
        _reap(state.pid)
    _remove_rules(state.rules)
    _remove_chains(state.chains_before)
    _remove_links(networks)
    _remove_dead_bridge_rules()
    if _forward_policy() != state.forward_policy_before:
        _run("iptables", "-P", "FORWARD", state.forward_policy_before, check=False)
    _drop_new_empty_tables(state.tables_before)
    if state.ip_forward_before == "0":
        Path("/proc/sys/net/ipv4/ip_forward").write_text("0\n")
    _remove_cgroups(state.cgroups)
    _remove_made(state.made)
    STATE.unlink(missing_ok=True)
    say(f"stopped Docker Engine {state.version} ({state.instance})")
    return True


def remove() -> None:
    """Stop the engine and delete every file of it: data-roots, exec-roots, logs, prefixes."""
    stop()
    for path in (DATA, RUN, LOGS, CACHE):
        shutil.rmtree(path, ignore_errors=True)
    say("removed the course's engines, their data, logs and unpacked packages")


def status() -> str:
    state = read_state()
    if not state:
        return "The course's own engine is not running."
    since = time.strftime("%H:%M:%S", time.localtime(state.started))
    return (f"The course's Docker Engine {state.version} ({state.instance}) runs since {since}, "
            f"pid {state.pid}, at {state.host}{', sealed' if state.sealed else ''}.")


def main(argv: list | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m helpers.course.own_engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    begin = sub.add_parser("start")
    begin.add_argument("--instance", default="26", choices=list(INSTANCES))
    begin.add_argument("--sealed", action="store_true")
    begin.add_argument("--fresh", action="store_true", help="empty its data-root first")
    for name in ("status", "stop", "remove", "env"):
        sub.add_parser(name)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            start(args.instance, args.sealed, args.fresh)
            print(status())
        elif args.command == "stop":
            stop() or print("The course's own engine is not running.")
        elif args.command == "remove":
            remove()
        elif args.command == "env":
            from helpers.course.setup import learner_engine
            state = None if learner_engine() else read_state()
            for key, value in (state.env() if state else {}).items():
                print(f"export {key}={value!r}" if "'" not in value else f'export {key}="{value}"')
        else:
            print(status())
    except (EngineError, subprocess.CalledProcessError, OSError) as exc:
        print(f"✘ {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
