"""04-volumes: a database's data that outlives its container; quiz on the kinds of mounts.

The Check does what a learner's data must survive: it removes the container `course04-redis`
and creates it again from what `docker inspect` says (same image, command, mounts, ports,
network), then reads Redis's counter in the new one.
"""
from __future__ import annotations

import re
import time

from docker.errors import APIError, NotFound

from . import Line, exercise, question
from helpers.course.cli import run as run_cli
from helpers.course.images import ref

CONTAINER = "course04-redis"
VOLUME = "course04-redis-data"
KEY = "hits"                      # the key the web app counts visits under (INCR hits)
READY_SECONDS = 15.0

ANSWER_CLI = (f"docker volume create --label dockercourse.notebook=04 {VOLUME}\n"
              f"docker run -d --name {CONTAINER} --label dockercourse.notebook=04 "
              f"-v {VOLUME}:/data {ref('redis')} redis-server --appendonly yes\n")
ANSWER_SDK = (f"# or: client.volumes.create('{VOLUME}', labels=lesson.labels)\n"
              f"#     client.containers.run('{ref('redis')}', ['redis-server', '--appendonly', "
              f"'yes'], name='{CONTAINER}',\n"
              f"#         detach=True, volumes={{'{VOLUME}': {{'bind': '/data', 'mode': 'rw'}}}}, "
              "labels=lesson.labels)\n")


def redis_cli(container, *args: str) -> tuple[int, str]:
    """`docker exec CONTAINER redis-cli ARGS...`: (exit code, its answer)."""
    result = container.exec_run(["redis-cli", *args])
    return result.exit_code, result.output.decode(errors="replace").strip()


def wait_ready(container, seconds: float = READY_SECONDS) -> str:
    """Wait until Redis answers PING (it may still be loading its data); '' when it does,
    else what it said last."""
    deadline, last = time.monotonic() + seconds, ""
    while time.monotonic() < deadline:
        container.reload()
        if container.status != "running":
            return f"the container is {container.status}"
        code, last = redis_cli(container, "PING")
        if code == 0 and last == "PONG":
            return ""
        time.sleep(0.2)
    return last or "no answer"


def where_redis_writes(container, folder: str) -> tuple[str, str]:
    """Where `folder` lives for this container: (kind, description), kind one of
    'layer', 'anonymous', 'named', 'bind', 'tmpfs'."""
    attrs = container.attrs
    tmpfs = (attrs.get("HostConfig") or {}).get("Tmpfs") or {}
    mounts = [(m["Destination"], m) for m in attrs.get("Mounts") or []]
    mounts += [(path, {"Type": "tmpfs"}) for path in tmpfs]
    inside = [(dest, m) for dest, m in mounts
              if folder == dest or folder.startswith(dest.rstrip("/") + "/")]
    if not inside:
        return "layer", f"{folder} in the container's own writable layer"
    dest, mount = max(inside, key=lambda pair: len(pair[0]))
    if mount["Type"] == "tmpfs":
        return "tmpfs", f"{dest}, a tmpfs in the container's memory"
    if mount["Type"] == "bind":
        return "bind", f"{dest}, a bind mount of {mount.get('Source')} on the engine's machine"
    if re.fullmatch(r"[0-9a-f]{64}", mount.get("Name", "")):
        return "anonymous", (f"{dest}, an anonymous volume ({mount['Name'][:12]}…) that the "
                             "image's VOLUME /data made for this container alone")
    return "named", f"{dest}, the named volume {mount.get('Name')}"


FIX = {
    "layer": "keep Redis's data folder (/data) on storage that outlives the container",
    "anonymous": "a new container gets a new, empty anonymous volume: give the volume a name "
                 "you can mount again into the next container",
    "tmpfs": "a tmpfs lives in memory and goes with the container: mount storage that is kept "
             "on disk instead",
}


def recreate(client, container):
    """`docker rm -f -v` the container, then create and start it again as `docker inspect`
    describes it: same name, image, command, environment, mounts, ports, network."""
    attrs = container.attrs
    config, host = attrs["Config"], attrs["HostConfig"]
    name = attrs["Name"].lstrip("/")
    container.stop(timeout=10)          # as `docker stop`: Redis saves what it has on SIGTERM
    try:
        container.remove(v=True)        # anonymous volumes go with it, as with `docker rm -v`
    except NotFound:                    # started with --rm: already gone
        pass
    host_config = client.api.create_host_config(
        binds=host.get("Binds") or None, mounts=host.get("Mounts") or None,
        tmpfs=host.get("Tmpfs") or None, port_bindings=host.get("PortBindings") or None,
        network_mode=host.get("NetworkMode") or None,
        restart_policy=host.get("RestartPolicy") or None, auto_remove=host.get("AutoRemove"))
    created = client.api.create_container(
        config["Image"], command=config.get("Cmd"), entrypoint=config.get("Entrypoint"),
        environment=config.get("Env"), user=config.get("User") or None,
        working_dir=config.get("WorkingDir") or None, labels=config.get("Labels") or {},
        volumes=list(config.get("Volumes") or {}) or None,
        ports=[tuple(p.split("/")) for p in config.get("ExposedPorts") or {}] or None,
        name=name, host_config=host_config)
    new = client.containers.get(created["Id"])
    new.start()
    return new


def _solve(client):
    run_cli(ANSWER_CLI, echo=False)


def _reset(client):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.containers.get(CONTAINER).remove(force=True, v=True)
        except NotFound:
            break
        except APIError:        # a removal already under way (409): wait for it to finish
            time.sleep(0.2)
    try:
        client.volumes.get(VOLUME).remove(force=True)
    except NotFound:
        pass


@exercise(
    id="04.redis-data", title="Make Redis's counter survive its container's removal",
    task=f"Run Redis ({ref('redis')}) in the background in a container named "
         f"<code>{CONTAINER}</code>, so that its data outlives the container. The Check counts "
         f"one visit (<code>INCR {KEY}</code>), then stops and removes the container "
         f"(<code>docker stop</code>, <code>docker rm -v</code>) and creates it again as "
         "<code>docker inspect</code> describes it (same image, command, mounts), and reads the "
         "counter in the new one. It rejects the counter kept in the container's own layer "
         "(e.g. <code>redis-server --dir /tmp</code>), in the anonymous volume the image's "
         "<code>VOLUME /data</code> makes when you mount nothing, and on a tmpfs "
         "(<code>--tmpfs /data</code>).",
    hint="Redis keeps its data in its working folder, /data: the image declares VOLUME /data, "
         "and `docker inspect` shows what is mounted there. Of the three kinds of mounts, which "
         "one outlives the container and can be found again by name for the next one?",
    answer=ANSWER_CLI + ANSWER_SDK,
    solve=_solve, reset=_reset,
    names={"containers": [CONTAINER], "volumes": [VOLUME]})
def check_redis_data(client) -> list:
    try:
        container = client.containers.get(CONTAINER)
    except NotFound:
        return [Line(False, f"there is no container named {CONTAINER}",
                     f"run Redis from {ref('redis')} with --name {CONTAINER} (see the task)")]
    lines = [Line(True, f"{CONTAINER} exists ({container.status}), from "
                        f"{container.attrs['Config']['Image']}")]
    if container.status != "running":
        return lines + [Line(False, f"{CONTAINER} is not running", f"docker start {CONTAINER}")]
    problem = wait_ready(container)
    if problem:
        return lines + [Line(False, f"no Redis answers in {CONTAINER} ({problem[:120]})",
                             f"run it from {ref('redis')}; `docker logs {CONTAINER}` says why")]
    code, folder = redis_cli(container, "CONFIG", "GET", "dir")
    folder = folder.splitlines()[-1] if code == 0 and folder else "/data"
    kind, place = where_redis_writes(container, folder)
    code, count = redis_cli(container, "INCR", KEY)
    if code != 0 or not count.lstrip("-").isdigit():
        return lines + [Line(False, f"Redis refused INCR {KEY}: {count[:120]}",
                             f"`docker logs {CONTAINER}` says why")]
    lines.append(Line(True, f"Redis answers; one visit counted: {KEY} = {count}; it writes "
                            f"to {place}"))
    try:
        new = recreate(client, container)
    except APIError as exc:
        return lines + [Line(False, f"{CONTAINER} could not be created again as it was: "
                                    f"{exc.explanation or exc}",
                             "run your command again, then Check")]
    problem = wait_ready(new)
    if problem:
        return lines + [Line(False, f"the new {CONTAINER} does not answer ({problem[:120]})",
                             f"`docker logs {CONTAINER}` says why")]
    _, after = redis_cli(new, "GET", KEY)
    if after == count:
        return lines + [Line(True, f"removed and created again: the new {CONTAINER} still "
                                   f"counts {KEY} = {after}, kept in {place}")]
    return lines + [Line(False, f"removed and created again: the counter is "
                                f"{'gone' if not after else after} instead of {count}: it was in "
                                f"{place}, which went with the container",
                         FIX.get(kind, "mount storage at /data that outlives the container"))]


question("04.anonymous", "You run `docker run -d --name db redis:7-alpine`, count to 5, remove "
         "it with `docker rm -f db`, and run the same command again. What does the new counter "
         "start from?",
         ["5: the image's VOLUME /data kept it", "Nothing: the new container gets a new, empty "
          "anonymous volume", "The command fails: the name db is still taken by the volume"], 1,
         "VOLUME /data makes an anonymous volume for each new container. The old one still sits "
         "on disk under a 64-character name (unless `docker rm -v` or `--rm` removed it), but "
         "nothing mounts it again: only a volume with a name you give is found again.")
question("04.logs", "A container writes log files you want to read and analyse with tools on "
         "your machine. Which mount fits?",
         ["A bind mount of a folder on your machine", "A named volume", "A tmpfs"], 0,
         "A bind mount puts the files in a folder you chose, where any program on your machine "
         "reads them. A named volume lives in the engine's own storage (inside Docker Desktop's "
         "VM on Windows and macOS); a tmpfs is gone when the container stops.")
question("04.tmpfs", "When is `--tmpfs` the right choice?",
         ["For a database's data", "For scratch files or secrets that must never be written to "
          "disk and may vanish with the container", "For files shared between two containers"],
         1, "A tmpfs lives in memory: fast, never on disk, and gone when the container stops. "
            "That suits scratch space and secrets, never data you want to keep.")
question("04.rm-v", "Does `docker rm -v` delete a named volume the container used?",
         ["Yes, every volume it mounted", "No: -v removes only its anonymous volumes; a named "
          "one goes with `docker volume rm NAME`", "No volume is ever removed"], 1,
         "Named volumes are meant to outlive containers, so removing a container never deletes "
         "them; `-v` (and `--rm`) clean up only the anonymous ones.")
