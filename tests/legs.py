"""`./course test`: the course's tests on three engines, one after the other.

    leg 1  Docker Engine 26, classic image store      every test (notebooks in nbclient and
                                                       in Chromium); writes the image bundle
    leg 2  Docker Engine 26, containerd image store   notebooks, builder, explorer, image kit,
                                                       exercises; images from leg 1's bundle
    leg 3  Docker Engine 20.10 (Debian 12)            the same as leg 2

Each leg starts the course's own engine afresh (its own data-root and exec-root), sealed: a dead
proxy, so nothing is pulled, and a rule that keeps its containers' traffic on this machine.
Where your own engine answers, leg 1's tests run once on it, unsealed, and legs 2 and 3 do not
run (the course never starts a second engine beside yours).

Last, with every engine stopped, the host's packet filter, forwarding and network links must
equal what they were before the first engine started, and every file changed outside the
checkout since set-up began must fall under an entry of the README's table of what the course
changes on a machine (CHANGES), or be the machine's own doing (NOT_THE_COURSES).

    ./course test                    all three legs
    ./course test --legs 1 -k ports  leg 1 only, with pytest's own options after the legs
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers.course import own_engine  # noqa: E402
from tests.allowed_skips import ALLOWED  # noqa: E402

SUBSET = ["tests/test_notebooks.py", "tests/test_builder.py", "tests/test_explorer.py",
          "tests/test_images.py", "tests/test_exercises.py"]
LEGS = {
    "1": ("test-26", "Docker Engine 26, classic image store", ["tests"]),
    "2": ("test-26-containerd", "Docker Engine 26, containerd image store", SUBSET),
    "3": ("test-20.10", "Docker Engine 20.10", SUBSET),
}


def say(text: str) -> None:
    print(f"\n[test] {text}", flush=True)


def host_network() -> dict:
    """What an engine changes on the host, in a form to compare: rules without counters, the
    forwarding switch and the network links."""
    def rules(tool: str) -> str:
        out = subprocess.run([f"{tool}-save"], capture_output=True, text=True).stdout
        return "\n".join(re.sub(r"\[\d+:\d+\]", "", line) for line in out.splitlines()
                         if line and not line.startswith("#"))
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {"iptables": rules("iptables"), "ip6tables": rules("ip6tables"),
            "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
            "links": sorted(line.split(":")[1].strip().split("@")[0]
                            for line in links.splitlines())}


# Where `./course test` may change files outside the checkout, each with the entry of the README's
# table "What the course changes on a machine" that lists it and its undo (the start of that
# entry's first column). `~` is the home folder. The longest matching prefix decides.
CHANGES = [
    ("~/.cache/dockercourse/records/", "the creation record"),
    ("~/.cache/dockercourse/", "root file systems for offline images"),
    ("~/.cache/dockercourse/engine/", "the course's engine"),
    ("/var/lib/dockercourse/", "the course's engine"),
    ("/run/dockercourse/", "the course's engine"),
    ("/var/log/dockercourse/", "the course's engine"),
    ("~/.cache/pip/", "pip's cache"),
    ("/var/lib/apt/", "apt's package lists"),
    ("/var/cache/apt/", "apt's package lists"),
    ("/var/lib/dpkg/", "apt's package lists"),
    ("/var/log/apt/", "apt's package lists"),
    ("/var/log/dpkg.log", "apt's package lists"),
    ("/var/cache/debconf/", "apt's package lists"),
    ("/var/cache/ldconfig/", "apt's package lists"),
    ("/etc/ld.so.cache", "Debian packages `busybox-static`"),      # refreshed by their install
    ("/etc/alternatives/", "Debian packages `busybox-static`"),
    ("~/.ipython/", "Jupyter's and IPython's own files"),
    ("~/.jupyter/", "Jupyter's and IPython's own files"),
    ("~/.local/share/jupyter/", "Jupyter's and IPython's own files"),
    ("~/.cache/matplotlib/", "Matplotlib's font cache"),
    ("~/.config/matplotlib/", "Matplotlib's font cache"),
    ("~/.config/chromium/", "Chromium's profile and Playwright's cache"),
    ("~/.cache/chromium/", "Chromium's profile and Playwright's cache"),
    ("~/.cache/dconf/", "Chromium's profile and Playwright's cache"),
    ("~/.pki/nssdb/", "Chromium's profile and Playwright's cache"),
    ("~/.cache/ms-playwright/", "Chromium's profile and Playwright's cache"),
]
# Files of Debian packages installed (or upgraded) during the run: under these prefixes a file
# counts only when dpkg lists it as a package's file; anything else there is unexplained.
PACKAGED = ("/usr/", "/etc/", "/lib/", "/lib64/", "/bin/", "/sbin/", "/opt/")
PACKAGES_ENTRY = "Debian packages `busybox-static`"
# Where the install scripts (triggers) of packages refresh files that no package lists: font and
# icon caches, ld.so.cache, certificates, mime databases. Counted only when packages were
# installed during the run.
REFRESHED = ("/var/cache/", "/var/lib/", "/usr/share/icons/", "/usr/share/mime/", "/etc/fonts/",
             "/etc/ssl/certs/", "/usr/lib/x86_64-linux-gnu/gdk-pixbuf-2.0/")
# Changed during a run, but by the machine itself, not by the course.
NOT_THE_COURSES = [
    ("/var/log/journal/", "the system journal: every service logs there"),
    ("/var/log/", "the system's own logs (syslog, wtmp, ...), written whoever runs what"),
    ("/var/cache/man/", "man-db's index, refreshed by its own timer and after any package install"),
    ("/var/lib/systemd/", "systemd's timers and random seed"),
    ("/var/lib/logrotate/", "logrotate's own state, written by its daily timer"),
    ("/run/", "the running system's state (a memory file system on most machines): gone at reboot"),
    ("/var/tmp/", "the system's temporary files"),
    ("~/.npm/", "npm's own logs: the course runs no npm (Playwright's driver is not npm)"),
    ("~/.bash_history", "an interactive shell's history: the course runs bash only with -c"),
]


OWN_OUTPUT = "not the course's: where this run's own output is written (its log)"
RUN_ID = uuid.uuid4().hex


def changed_files(stamp: Path) -> list[str]:
    """Files and links outside the checkout (and /proc, /sys, /dev, /tmp) changed since `stamp`,
    on the root file system (`find / -xdev -newer STAMP`)."""
    pruned = ["/proc", "/sys", "/dev", "/tmp", str(ROOT)]
    prune = [a for p in pruned for a in ("-o", "-path", p)][1:]
    done = subprocess.run(["find", "/", "-xdev", "(", *prune, ")", "-prune", "-o",
                           "-newer", str(stamp), "(", "-type", "f", "-o", "-type", "l", ")",
                           "-print"], capture_output=True, text=True)
    return sorted(done.stdout.splitlines())


def packaged_since(stamp: Path) -> set:
    """The files of every Debian package installed or upgraded since `stamp` (dpkg's lists)."""
    files = set()
    for listing in Path("/var/lib/dpkg/info").glob("*.list"):
        if listing.stat().st_mtime > stamp.stat().st_mtime:
            files.update(listing.read_text(errors="replace").splitlines())
    return files


def workspace() -> tuple:
    """The folder the checkout sits in, where CI keeps its own files beside it (`../shared`, its
    logs): not the course's. Never the home folder or `/`, whose other files the course may write."""
    parent, home = ROOT.parent, Path.home()
    if parent in (home, Path("/")) or home.is_relative_to(parent) or \
            any(parent.is_relative_to(Path(p.replace("~", str(home), 1))) for p, _ in CHANGES):
        return ()
    return (str(parent) + "/",)


def run_marker() -> str:
    """A line this run prints first, that no other output contains."""
    return f"run {RUN_ID}, set-up begins"


def output_of_this_run(paths: list, marker: str) -> list:
    """Of `paths`, the files this run's own output went to, wherever whoever started it keeps
    them (`./course test > ci.log`, `| tee ci.log`): the files whose first MiB holds `marker`."""
    found = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                if marker.encode() in f.read(1 << 20):
                    found.append(path)
        except OSError:
            continue
    return found


def group_changes(paths: list, packaged: set, others: tuple = ()) -> dict:
    """{README entry, or "not the course's: <reason>", or "UNEXPLAINED": [paths]}. `others`:
    prefixes that other programs on this machine write to meanwhile (`--not-ours`)."""
    home = str(Path.home())
    rules = [(p.replace("~", home, 1), entry) for p, entry in CHANGES] + \
            [(p.replace("~", home, 1), f"not the course's: {why}") for p, why in NOT_THE_COURSES] + \
            [(p, "not the course's: other programs on this machine (--not-ours)") for p in others] + \
            [(p, "not the course's: the folder the checkout sits in (CI's own files)")
             for p in workspace()]
    groups: dict = {}
    for path in paths:
        found = max((r for r in rules if path.startswith(r[0])), key=lambda r: len(r[0]),
                    default=None)
        if found:
            key = found[1]
        elif path.startswith(PACKAGED) and path in packaged:
            key = PACKAGES_ENTRY
        elif packaged and path.startswith(REFRESHED):
            key = PACKAGES_ENTRY    # caches the install scripts of this run's packages refresh
        else:
            key = "UNEXPLAINED"
        groups.setdefault(key, []).append(path)
    return groups


def report_changes(stamp: Path, others: tuple = ()) -> list:
    """Print the files changed outside the checkout, grouped by the README's entries; returns
    those that fall under none."""
    groups = group_changes(changed_files(stamp), packaged_since(stamp), others)
    logs = output_of_this_run(groups.get("UNEXPLAINED", []), run_marker())
    if logs:
        groups[OWN_OUTPUT] = logs
        rest = [p for p in groups.pop("UNEXPLAINED") if p not in logs]
        if rest:
            groups["UNEXPLAINED"] = rest
    say("files changed outside the checkout since set-up began, by the README's entries:")
    for key in sorted(groups, key=lambda k: (k == "UNEXPLAINED", k)):
        paths = groups[key]
        print(f"  {key}: {len(paths)} files" + ("" if key == "UNEXPLAINED" else
                                                f", e.g. {', '.join(paths[:3])}"))
    unexplained = groups.get("UNEXPLAINED", [])
    for path in unexplained[:200]:
        print(f"    ✘ {path}")
    return unexplained


def run_pytest(leg: str, paths: list, extra: list, env: dict, junit: Path) -> int:
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "--durations=10",
           f"--junitxml={junit}", "-o", "junit_family=xunit1", *paths, *extra]
    return subprocess.call(cmd, cwd=ROOT, env={**env, "DOCKERCOURSE_LEG": leg})


def count(junit: Path) -> dict:
    """passed / failed / skipped from pytest's JUnit XML, and skips outside the allow-list."""
    tally = {"passed": 0, "failed": 0, "skipped": 0, "unexplained": []}
    if not junit.exists():
        tally["failed"] += 1
        return tally
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('file') or case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            tally["failed"] += 1
        elif case.find("skipped") is not None:
            tally["skipped"] += 1
            if not any(key in name for key in ALLOWED):
                tally["unexplained"].append(name)
        else:
            tally["passed"] += 1
    return tally


TIMES = ROOT / "tests" / "artifacts" / "notebook-times.tsv"


def print_notebook_times() -> None:
    """Each notebook's time on each leg, as the notebook tests wrote them (printed, never
    asserted: the targets are for leg 1, 60 s a notebook and 180 s for 07)."""
    if not TIMES.exists():
        return
    rows = [line.split("\t") for line in TIMES.read_text().splitlines() if line.count("\t") == 3]
    names = sorted({r[2] for r in rows})
    columns = sorted({(r[0], r[1]) for r in rows})
    print("\nnotebook times (s): " + "  ".join(f"leg {leg} {how}" for leg, how in columns))
    for name in names:
        cells = []
        for leg, how in columns:
            found = [r[3] for r in rows if (r[0], r[1], r[2]) == (leg, how, name)]
            cells.append(f"{found[-1]:>8}" if found else f"{'-':>8}")
        print(f"  {name:28} " + "  ".join(cells))


def setup(env: dict, *flags: str) -> None:
    subprocess.run([sys.executable, "-m", "helpers.setup", "--for-tests", *flags], cwd=ROOT,
                   env=env, check=True)


RUN_LOCK = Path(tempfile.gettempdir()) / "dockercourse-test.lock"


def take_the_run_lock(path: Path | None = None):
    """One `./course test` at a time: the open lock file while this run holds it, or None when
    another run holds it (a second run would stop the first one's engine under it)."""
    import fcntl
    path = path or RUN_LOCK
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        other = f.read().strip() or "?"
        f.close()
        print(f"✘ another ./course test is running (pid {other}) and owns the course's test "
              "engine; starting now would stop that engine under it. Wait until it ends, or "
              f"stop it first (kill -INT {other}).", file=sys.stderr, flush=True)
        return None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./course test", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--legs", default="1,2,3", help="which legs, e.g. 1 or 2,3")
    parser.add_argument("--not-ours", action="append", default=[], metavar="PREFIX",
                        help="a path prefix that other programs on this machine write to while "
                             "the tests run: its files are listed, never counted against the "
                             "course (repeatable)")
    args, extra = parser.parse_known_args(argv)
    lock = take_the_run_lock()
    if lock is None:
        return 2
    legs = [leg for leg in args.legs.split(",") if leg]
    env = {**os.environ, "DOCKERCOURSE_OFFLINE": "1", "DOCKERCOURSE_FENCE_SECONDS": "10"}
    started = time.monotonic()
    minutes, totals = {}, {"passed": 0, "failed": 0, "skipped": 0, "unexplained": []}
    workdir = Path(tempfile.mkdtemp(prefix="dockercourse-test-"))
    stamp = workdir / "stamp"      # files changed after it are listed at the end
    stamp.touch()
    say(run_marker())   # the file this line lands in holds the run's own output

    setup(env, "--no-engine")   # packages, kernel and engines fetched before any engine runs
    from helpers.course.setup import learner_engine
    if learner_engine():
        say("your own Docker Engine answers: leg 1's tests run once on it, unsealed; legs 2 "
            "and 3 are not run (they need the course's own engines, which never start beside "
            "yours)")
        setup(env)
        code = run_pytest("yours", ["tests"], extra, env, workdir / "yours.xml")
        tally = count(workdir / "yours.xml")
        print(f"total: {tally['passed']} passed, {tally['failed']} failed, "
              f"{tally['skipped']} skipped")
        unexplained = report_changes(stamp, tuple(args.not_ours))
        return code or (1 if unexplained else 0)

    own_engine.stop()
    TIMES.unlink(missing_ok=True)
    before = host_network()
    bundle = workdir / "bundle.tar"
    for leg in legs:
        instance, title, paths = LEGS[leg]
        leg_started = time.monotonic()
        say(f"leg {leg}: {title}")
        state = own_engine.start(instance, sealed=True, fresh=True)
        leg_env = {**env, **state.env()}
        if leg != "1" and bundle.exists():
            leg_env["DOCKERCOURSE_BUNDLE"] = str(bundle)
        code = 1
        try:
            setup(leg_env)
            code = run_pytest(leg, paths, extra, leg_env, workdir / f"leg{leg}.xml")
            if leg == "1" and len(legs) > 1:
                subprocess.run([sys.executable, "-m", "helpers.course.images", "bundle", str(bundle)],
                               cwd=ROOT, env=leg_env, check=True)
        except subprocess.CalledProcessError as exc:
            print(f"✘ leg {leg}: {exc}", file=sys.stderr)
        finally:
            own_engine.stop()
        tally = count(workdir / f"leg{leg}.xml")
        if code != 0 and tally["failed"] == 0:
            tally["failed"] = 1   # set-up failed before any test ran
        for key in ("passed", "failed", "skipped"):
            totals[key] += tally[key]
        totals["unexplained"] += tally["unexplained"]
        minutes[leg] = (time.monotonic() - leg_started) / 60
        say(f"leg {leg} ({title}): {tally['passed']} passed, {tally['failed']} failed, "
            f"{tally['skipped']} skipped in {minutes[leg]:.1f} min")

    after = host_network()
    changed = [key for key in before if before[key] != after[key]]
    say("the host after every engine stopped: " +
        ("as before" if not changed else "CHANGED: " + ", ".join(changed)))
    for key in changed:
        print(f"  {key} before:\n{before[key]}\n  {key} after:\n{after[key]}")
    if totals["unexplained"]:
        print("Skipped without a reason in tests/allowed_skips.py:\n  " +
              "\n  ".join(totals["unexplained"]))
    print_notebook_times()
    for leg, m in minutes.items():
        print(f"leg {leg}: {m:.1f} min")
    print(f"all legs: {(time.monotonic() - started) / 60:.1f} min")
    unexplained = report_changes(stamp, tuple(args.not_ours))   # last: every engine stopped, the host compared
    failed = totals["failed"] + len(totals["unexplained"]) + (1 if changed else 0) + \
        (1 if unexplained else 0)
    print(f"total: {totals['passed']} passed, {failed} failed, {totals['skipped']} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
