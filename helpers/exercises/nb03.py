"""03-dockerfile: write a Dockerfile for the sample app that runs as a non-root user on 8080."""
from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from docker.errors import APIError

from . import Line, exercise, question
from .nb02 import predict as _predict

from helpers.course.builder import build
from helpers.course.settings import ROOT
from helpers.course.labels import labels
from helpers.course.ports import fetch, free_port

WEBAPP_DIR = ROOT / "data" / "webapp"
WORK = ROOT / "notebooks" / "work" / "03-webapp"   # the learner's folder (not in git)
IMAGE = "course03.invalid/exercise"
CHECK_PORT = 40300

STARTER = (WEBAPP_DIR / "Dockerfile").read_text()
REFERENCE = """\
FROM python:3.11-slim
WORKDIR /app
# a user without a password or home: just an identity that is not root
RUN useradd --uid 10001 --no-create-home app
COPY app.py ./
USER app
EXPOSE 8080
CMD ["python", "app.py"]
"""


def where(path: Path | None = None) -> str:
    path = path or WORK
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def prepare(folder: Path | None = None, overwrite: bool = False) -> Path:
    """The exercise folder: the app, and the starter Dockerfile unless one is there already."""
    folder = folder or WORK
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(WEBAPP_DIR / "app.py", folder / "app.py")
    dockerfile = folder / "Dockerfile"
    if overwrite or not dockerfile.exists():
        dockerfile.write_text(STARTER)
    return folder


# The build the answer shows, run from the course's folder. The Check builds the folder again,
# the same way.
BUILD_CLI = f"docker build -t {IMAGE} notebooks/work/03-webapp"
# Plausible wrong attempts (tests build each): the Check rejects the first two and accepts the
# third, a numeric USER without a line in /etc/passwd (app.py then prints the uid as the name).
USER_ROOT = REFERENCE.replace("USER app", "USER root")
NO_USER = REFERENCE.replace("USER app\n", "")
NUMERIC_USER = REFERENCE.replace("RUN useradd --uid 10001 --no-create-home app\n", "").replace(
    "USER app", "USER 10001")


def _solve(client):
    from helpers.course.cli import run
    prepare(WORK)
    (WORK / "Dockerfile").write_text(REFERENCE)
    run(f"docker build -t {IMAGE} {shlex.quote(str(WORK))}", echo=False)   # BUILD_CLI, wherever WORK is


def _reset(client):
    dockerfile = WORK / "Dockerfile"
    if dockerfile.exists() and dockerfile.read_text() not in (STARTER, REFERENCE):
        # never lose a learner's own work: keep it beside the starter
        shutil.copy2(dockerfile, WORK / "Dockerfile.yours")
    prepare(WORK, overwrite=True)


@exercise(
    id="03.nonroot", title="A Dockerfile that runs the app as a non-root user",
    task=f"Edit <code>{where()}/Dockerfile</code> (the cell above made the folder, with "
         "<code>app.py</code> and a starter Dockerfile that runs the app as root) so that the "
         "image runs the web app as a user that is not root, answering on port 8080. The Check "
         "builds your folder, runs the image on a free port of 127.0.0.1, and looks at the "
         "user and the answer. <code>USER root</code>, <code>USER 0</code> or no USER at all "
         "do not pass; a bare number such as <code>USER 10001</code> does, even with no user of "
         "that number in <code>/etc/passwd</code>.",
    hint="The instruction that says who runs the container's program is named for it; it must "
         "come before CMD. A name must exist in the image first (python:3.11-slim has a tool "
         "that adds users, run in a RUN step); a bare uid number needs nothing.",
    answer="# notebooks/work/03-webapp/Dockerfile\n" + REFERENCE +
           f"\n# then, in a terminal in the course's folder (or a %%docker cell: cd ..):\n"
           f"{BUILD_CLI}",
    solve=_solve, reset=_reset, names={"images": [f"{IMAGE}:latest"]})
def check_nonroot(client) -> list:
    dockerfile = WORK / "Dockerfile"
    if not dockerfile.exists():
        return [Line(False, f"there is no Dockerfile in {where()}",
                     "run the cell that prepares the folder, then edit its Dockerfile")]
    # The learner's build runs under the course's fence (time limit, ulimits, build cgroup).
    result = build(client, WORK, tag=IMAGE, labels=labels(3), progress=False)
    if not result.ok:
        return [Line(False, f"the build failed ({result.builder or 'no builder ran'}): "
                            f"{result.error}", result.explanation)]
    lines = [Line(True, f"{where()}/Dockerfile builds with {result.builder}: image "
                        f"{result.short_id}")]
    config = client.api.inspect_image(result.image_id)["Config"]
    user = config.get("User") or ""
    if user in ("", "root", "0", "0:0"):
        lines.append(Line(False, "the image runs as root: it has no USER instruction"
                          if not user else f"USER {user} is root",
                          "create a user in a RUN step and switch to it (or to a uid number) "
                          "with USER, before CMD"))
    else:
        lines.append(Line(True, f"the image says USER {user}"))
    if "8080/tcp" in (config.get("ExposedPorts") or {}):
        lines.append(Line(True, "the image documents port 8080 (EXPOSE 8080)"))
    else:
        lines.append(Line(False, "the image does not document its port",
                          "add EXPOSE 8080: it tells readers and tools where the app listens"))
    port = free_port(CHECK_PORT, quiet=True)
    container = None
    try:
        container = client.containers.run(result.image_id, detach=True, labels=labels(3),
                                          ports={"8080/tcp": ("127.0.0.1", port)})
        try:
            page = fetch(f"http://127.0.0.1:{port}/", wait_seconds=8)
            ok = "port inside the container: 8080" in page
            lines.append(Line(ok, f"the app answers on 8080 (published on 127.0.0.1:{port}): "
                                  f"{page.splitlines()[0] if page else '(empty page)'}",
                              "" if ok else "CMD must start the course's web app: python app.py"))
        except OSError:
            container.reload()
            logs = container.logs(tail=3).decode(errors="replace").strip().replace("\n", " | ")
            lines.append(Line(False, f"nothing answered on port 8080 (container "
                                     f"{container.status}; its last words: {logs or 'none'})",
                              "CMD must start the web app (CMD [\"python\", \"app.py\"]), "
                              "and WORKDIR/COPY must put app.py where CMD looks"))
            return lines
        container.reload()
        if container.status == "running":
            uid = container.exec_run(["id", "-u"]).output.decode().strip()
            lines.append(Line(uid not in ("0", ""), f"inside the container `id -u` says {uid}"
                              + (" (root)" if uid == "0" else " (not root)"),
                              "" if uid not in ("0", "") else
                              "add a USER instruction that names a user other than root"))
    except APIError as exc:
        lines.append(Line(False, f"the container would not start: {exc.explanation or exc}",
                          "check CMD and the files it names"))
    finally:
        if container is not None:
            container.remove(force=True)
    return lines


def predict(name: str):
    """A prediction asked before the cell that shows the answer: `predict("layers")`."""
    return _predict(name, "03")


question("predict-03-layers.q", "One image writes 5 MB in a RUN and deletes the file in a later "
         "RUN; the other writes and deletes it in the same RUN. Both start FROM busybox:1.35 "
         "(about 2 MB). How big are they?",
         ["Both about 2 MB: the file is gone", "About 7 MB and about 2 MB: the later RUN only "
          "hides the file, whose bytes stay in the layer below", "Both about 7 MB"], 1,
         "Each RUN's changes become a read-only layer. Deleting a file in a later layer records a "
         "whiteout that hides it; the earlier layer keeps its bytes. Deleted in the same RUN, the "
         "file never reaches a layer.")


question("03.context", "In `COPY . /app`, what are `.` and `/app`?",
         ["`.` is your shell's current folder, `/app` a folder on your machine",
          "`.` is the build context (the folder sent to the engine by `docker build <folder>`), "
          "`/app` a path inside the image",
          "both are paths inside the image"], 1,
         "COPY always reads from the build context, the folder you name in `docker build`, and "
         "writes into the image. With `WORKDIR /app` set, `COPY . ./` means the same: `./` is "
         "relative to WORKDIR.")
question("03.expose", "An image says `EXPOSE 8080`. You run it with `docker run IMAGE`. Can "
         "your browser reach the app on port 8080?",
         ["Yes: EXPOSE publishes the port", "No: EXPOSE only documents the port; publish it "
          "with -p 127.0.0.1:40000:8080", "Only on Docker Desktop"], 1,
         "EXPOSE is metadata: readers and tools (and `docker run -P`) learn where the app listens. "
         "Only `-p` (ports= in the SDK) makes the engine forward a host port to the container.")
question("03.entrypoint", "The Dockerfile ends with `ENTRYPOINT [\"python\", \"app.py\"]` and "
         "`CMD [\"--debug\"]`. What runs for `docker run IMAGE --quiet`?",
         ["python app.py --debug", "python app.py --quiet", "--quiet"], 1,
         "Arguments after the image name replace CMD; the exec-form ENTRYPOINT stays and gets "
         "them appended. Without arguments, CMD's `--debug` would be appended instead.")
question("03.cache", "Which order rebuilds the least when you edit app.py?",
         ["COPY . ./ then RUN the slow dependency install",
          "COPY requirements.txt ./, RUN the slow install, then COPY . ./",
          "The order makes no difference"], 1,
         "A changed file breaks the cache at the COPY that copies it and for every step after. "
         "Copy what changes rarely (the dependency list) first, run the slow step, copy the code "
         "last.")
question("03.arg", "`ARG VERSION=1` and `ENV MODE=prod` are in a Dockerfile. What does `env` "
         "show in a running container?",
         ["Both", "MODE only: ARG exists only while building", "VERSION only"], 1,
         "ARG is a build-time variable (set with --build-arg); ENV is stored in the image and "
         "set in every container made from it.")
