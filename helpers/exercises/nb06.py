"""06-healthchecks: give Redis a healthcheck that catches a real failure; quiz on health."""
from __future__ import annotations

from pathlib import Path

from . import Line, exercise, question

from helpers.course.compose import (CONFIG_FILES, PROJECT, SERVICE, Stack, insert_after, learner_copy,
                       reset_copy)
from helpers.course.health import (check_settings, command_text, freeze, seconds_to_notice, thaw, wait_for,
                      why_unhealthy)
from helpers.course.settings import ROOT

NN = "06"
NAME = f"course{NN}"
WORK = ROOT / "notebooks" / "work" / NN          # the learner's folder (not in git)
TARGET = "redis"
WEBAPP = f"course{NN}.invalid/webapp:latest"
UP = "docker compose -f work/06/compose.yaml up -d"   # from the notebooks folder
MAX_INTERVAL_S = 5.0   # the Check waits retries × (interval + timeout): it must stay short
MAX_TIMEOUT_S = 5.0
# Checks that look at nothing: they pass whatever Redis does.
ALWAYS_PASS = {"true", "exit 0", ":", "/bin/true", "echo ok", "echo"}

CHECK_BLOCK = """\
    healthcheck:
      test: ["CMD-SHELL", "redis-cli ping | grep -q PONG"]
      interval: 1s
      timeout: 1s
      retries: 2
      start_period: 5s
"""


def where(path: Path | None = None) -> str:
    path = path or WORK
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def prepare(port: int | None = None, overwrite: bool = False, folder: Path | None = None) -> Path:
    """The learner's copy of the stack, without any healthcheck: work/06/compose.yaml."""
    return learner_copy(folder or WORK, NN, overwrite=overwrite, port=port)


def with_healthcheck(text: str, block: str = CHECK_BLOCK) -> str:
    """A copy's text with `block` as the redis service's healthcheck."""
    return insert_after(text, f"  {TARGET}:", block)


def stack(folder: Path | None = None, lesson=None) -> Stack:
    from helpers.course.lesson import Lesson
    return Stack([(folder or WORK) / "compose.yaml"], NAME, lesson=lesson or Lesson(6))


def _solve(client):
    from helpers.course.ports import free_port
    target = prepare(overwrite=True, port=free_port(40000, quiet=True))
    target.write_text(with_healthcheck(target.read_text()))
    stack().up()


def _reset(client):
    reset_copy(NAME, WORK, prepare)


@exercise(
    id="06.healthcheck", title="A healthcheck that catches a real failure",
    task=f"The cell above copied the stack into <code>{where()}/compose.yaml</code>; its "
         "<code>redis</code> service has no healthcheck. Give it one that fails when Redis stops "
         "answering, with an interval of at most 5 s, then start your copy (from the notebooks "
         f"folder: <code>{UP}</code>). The Check makes Redis hang for real (SIGSTOP: the "
         "container keeps running), expects <b>unhealthy</b>, lets it go on (SIGCONT), and "
         "expects <b>healthy</b> again.",
    hint="Ask the server itself something, and fail when it does not answer: the redis image has "
         "redis-cli (but no curl). redis-cli exits 0 even when Redis replies with an error, so "
         "look for the expected reply in its output. A hung server never replies, so give the "
         "check a short `timeout`, and keep `interval` and `retries` small.",
    answer="# under services: redis: in work/06/compose.yaml\n" + CHECK_BLOCK +
           f"# then, from the notebooks folder:\n{UP}",
    solve=_solve, reset=_reset,
    names={"projects": [NAME], "images": [WEBAPP]})
def check_healthcheck(client) -> list:
    found = client.containers.list(filters={"label": [f"{PROJECT}={NAME}",
                                                      f"{SERVICE}={TARGET}"]},
                                   ignore_removed=True)
    if not found:
        return [Line(False, f"no {TARGET} container of the project {NAME} is running",
                     f"start your copy: {UP} (from the notebooks folder)")]
    container = found[0]
    mine = str(WORK.resolve() / "compose.yaml")
    if mine not in container.labels.get(CONFIG_FILES, "").split(","):
        return [Line(False, f"{NAME} runs from {container.labels.get(CONFIG_FILES) or '?'}, "
                            f"not from your copy {where()}/compose.yaml",
                     f"docker compose -p {NAME} down, then {UP}")]
    settings = check_settings(container)
    if not settings:
        return [Line(False, f"{TARGET} has no healthcheck: the engine can only say it runs",
                     f"add `healthcheck:` under `{TARGET}:` in your copy, then {UP}")]
    command = command_text(settings["test"])
    lines = [Line(True, f"{TARGET} checks itself with `{command}` every "
                        f"{settings['interval_s']:g} s (timeout {settings['timeout_s']:g} s, "
                        f"{settings['retries']} retries)")]
    if command.strip() in ALWAYS_PASS:
        return lines + [Line(False, f"`{command}` always succeeds: it never asks Redis anything, "
                                    "so a hung Redis stays healthy",
                             "make the check ask the server (redis-cli) and fail on no answer")]
    slow = [f"{what} {settings[key]:g} s" for what, key, limit in
            (("interval", "interval_s", MAX_INTERVAL_S), ("timeout", "timeout_s", MAX_TIMEOUT_S))
            if settings[key] > limit]
    if slow:
        return lines + [Line(False, f"{' and '.join(slow)}: a hang would be noticed only after "
                                    f"up to {seconds_to_notice(settings):.0f} s, too long for "
                                    "this Check to watch (Docker's defaults, 30 s each, suit "
                                    "production, where every check costs a process start)",
                             f"use at most {MAX_INTERVAL_S:g} s for interval and timeout here")]
    waited = settings["start_period_s"] + 2 * seconds_to_notice(settings) + 5
    status, seconds = wait_for(container, "healthy", waited)
    if status != "healthy":
        reason = why_unhealthy(container) or f"it stayed {status or 'without a result'}"
        return lines + [Line(False, f"{TARGET} is not healthy while Redis answers: {reason}",
                             "run the check by hand: docker compose -f work/06/compose.yaml "
                             f"exec {TARGET} sh -c '<your test>'")]
    lines.append(Line(True, f"{TARGET} is healthy while Redis answers ({seconds:.1f} s)"))
    freeze(container)
    try:
        # retries × (interval + timeout), and the engine's own slack (a timed-out check
        # is killed and reaped before the next one starts)
        status, seconds = wait_for(container, "unhealthy", seconds_to_notice(settings) +
                                   settings["interval_s"] + settings["timeout_s"] + 5)
    finally:
        thaw(container)
    if status != "unhealthy":
        return lines + [Line(False, f"Redis hung for {seconds:.0f} s and your check still said "
                                    f"{status}: `{command}` does not ask the Redis server",
                             "a process or a file that exists is not an answer: ask the server "
                             "(redis-cli) and fail when no reply comes")]
    lines.append(Line(True, f"Redis hung (SIGSTOP) and {TARGET} turned unhealthy after "
                            f"{seconds:.1f} s"))
    status, seconds = wait_for(container, "healthy", 2 * seconds_to_notice(settings) + 3)
    lines.append(Line(status == "healthy",
                      f"Redis went on (SIGCONT) and {TARGET} was {status} after {seconds:.1f} s",
                      "" if status == "healthy" else
                      "the check must pass again once Redis answers"))
    return lines


question("06.running", "`docker ps` says a container is Up. What do you know?",
         ["Its application answers requests", "Its main process exists: nothing more",
          "It passed its healthcheck"], 1,
         "Up means the process runs. A hung server, a deadlock, a full disk: all Up. Only a "
         "healthcheck asks the application itself, and then `docker ps` says (healthy) or "
         "(unhealthy) too.")
question("06.nothing", "A container with `restart: unless-stopped` turns unhealthy. What does the "
         "Docker Engine do?",
         ["Restarts it", "Nothing but report it: the state, the event and the check's log",
          "Stops it"], 1,
         "Restart policies act when the process exits, never on health. Acting on health is an "
         "orchestrator's job: Swarm replaces an unhealthy task; Kubernetes restarts a container "
         "whose liveness probe fails and stops sending traffic to one whose readiness probe "
         "fails.")
question("06.noauth", "Redis requires a password you did not give. `redis-cli ping` prints "
         "\"NOAUTH Authentication required.\" What is its exit code?",
         ["0", "1", "127"], 0,
         "redis-cli reports Redis's error reply and still exits 0, so `test: [\"CMD\", "
         "\"redis-cli\", \"ping\"]` would pass. Checking the reply itself (`| grep -q PONG`) "
         "catches it.")
question("06.pause", "Why does this lesson make Redis hang with SIGSTOP rather than `docker pause`?",
         ["They are the same", "`docker pause` freezes every process of the container, the "
          "check included, so no check runs at all; SIGSTOP stops only the server",
          "`docker pause` removes the container"], 1,
         "Pause freezes the container's whole cgroup: the engine's checks, started in it with "
         "exec, freeze as well. SIGSTOP to the server alone is what a hang looks like: the "
         "container runs, the check runs, the server does not answer.")
