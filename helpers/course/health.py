"""Health checks as the engine reports them, and a real failure to cause (06-healthchecks).

    health(container)            # docker inspect --format '{{json .State.Health}}'
    check_settings(container)    # the healthcheck it runs, with the engine's defaults filled in
    freeze(container)            # docker kill --signal SIGSTOP: the server hangs, still "running"
    thaw(container)              # docker kill --signal SIGCONT

The panel that charts them is `helpers.labs.health_panel.HealthPanel`.
"""
from __future__ import annotations

import time

from helpers.course.compose import SERVICE

NS = 1_000_000_000
# What the engine uses where a healthcheck leaves a setting out (Docker's documented defaults).
DEFAULTS = {"interval_s": 30.0, "timeout_s": 30.0, "retries": 3, "start_period_s": 0.0}


def health(container) -> dict:
    """`State.Health` now: {'Status': 'healthy'|'unhealthy'|'starting', 'FailingStreak': n,
    'Log': [{'Start', 'End', 'ExitCode', 'Output'}, ...]} (the last five checks), or {}."""
    container.reload()
    return container.attrs.get("State", {}).get("Health") or {}


def check_settings(container) -> dict:
    """`Config.Healthcheck` in seconds, the engine's defaults filled in; {} without a check."""
    raw = container.attrs.get("Config", {}).get("Healthcheck") or {}
    test = raw.get("Test") or []
    if not test or test == ["NONE"]:
        return {}
    return {"test": test,
            "interval_s": (raw.get("Interval") or 0) / NS or DEFAULTS["interval_s"],
            "timeout_s": (raw.get("Timeout") or 0) / NS or DEFAULTS["timeout_s"],
            "retries": raw.get("Retries") or DEFAULTS["retries"],
            "start_period_s": (raw.get("StartPeriod") or 0) / NS}


def command_text(test: list) -> str:
    """["CMD", "redis-cli", "ping"] → 'redis-cli ping'; ["CMD-SHELL", "x | y"] → 'x | y'."""
    if not test:
        return ""
    if test[0] == "CMD-SHELL":
        return " ".join(test[1:])
    return " ".join(test[1:] if test[0] == "CMD" else test)


def _missing_command(output: str, exit_code: int) -> bool:
    text = output.lower()
    return "executable file not found" in text or "no such file or directory" in text and \
        "exec" in text or (exit_code == 127 and "not found" in text)


def why_unhealthy(container) -> str | None:
    """Plain words for a container that is unhealthy or exited, from the engine's own record
    (the check's log, the exit code); None when nothing is wrong."""
    container.reload()
    state = container.attrs.get("State", {})
    service = container.labels.get(SERVICE, container.name)
    image = container.attrs.get("Config", {}).get("Image", "?")
    if state.get("Status") in ("exited", "dead"):
        logs = container.logs(tail=3).decode(errors="replace").strip().replace("\n", " | ")
        return (f"Service {service} stopped (exit code {state.get('ExitCode')}); its last words: "
                f"{logs or 'none'}.")
    report = state.get("Health") or {}
    if report.get("Status") != "unhealthy":
        return None
    log = report.get("Log") or [{}]
    last = log[-1]
    output = (last.get("Output") or "").strip()
    code = last.get("ExitCode")
    command = command_text(check_settings(container).get("test", []))
    if _missing_command(output, code if code is not None else 0):
        program = command.split()[0] if command else "?"
        return (f"The healthcheck of service {service} runs `{command}`, but `{program}` does "
                f"not exist in its image ({image}), so every check fails. Use a program the "
                "image has (for Redis: redis-cli), then start the stack again. "
                f"(The engine said: {output[-200:]})")
    return (f"Service {service} is unhealthy: its check `{command}` failed "
            f"{report.get('FailingStreak', '?')} time(s) in a row; the last one said "
            f"{output[-200:]!r} (exit code {code}).")


def freeze(container) -> None:
    """`docker kill --signal SIGSTOP`: the main process stops answering, as a deadlocked server
    does, while the container stays "running" (a check started with exec still runs; `docker
    pause` would freeze the check too)."""
    container.kill(signal="SIGSTOP")


def thaw(container) -> None:
    """`docker kill --signal SIGCONT`: the process carries on where it stopped."""
    container.kill(signal="SIGCONT")


def frozen(container) -> bool:
    """Whether the container's main process is stopped by a signal (read from /proc, which the
    host sees on Linux; False where it cannot tell)."""
    container.reload()
    pid = container.attrs.get("State", {}).get("Pid") or 0
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


def wait_for(container, wanted: str, timeout: float) -> tuple[str, float]:
    """Poll until the health status is `wanted`; (status seen last, seconds waited)."""
    began = time.monotonic()
    status = ""
    while True:
        status = health(container).get("Status", "")
        if status == wanted or time.monotonic() - began >= timeout:
            return status, time.monotonic() - began
        time.sleep(0.2)


def seconds_to_notice(settings: dict) -> float:
    """The longest a failure can go unnoticed: `retries` checks in a row must fail, each one
    waiting `interval` and then up to `timeout`."""
    return settings["retries"] * (settings["interval_s"] + settings["timeout_s"])
