"""Building an image from a Dockerfile, step by step (taught in 03-dockerfile).

`build(client, folder)` runs `docker build folder` as learners run it today: through BuildKit
(`docker buildx build`, the default builder since Engine 23), read from its `rawjson` progress
(helpers.course.buildkit). Each step gets BuildKit's own name (`[2/5] RUN ...`), is marked CACHED or
rebuilt, and timed. Only where the docker CLI has no buildx plugin (Engine 20.10 without
plugins) does the engine's legacy builder run, through the SDK (`client.api.build`), whose
stream says "Step 2/7 : ..." and " ---> Using cache". `result.builder` says which one ran.

After a build, `pair_layers()` pairs every step with its entry in the image config's history
and with the layer it made (helpers.labs.explorer.layers): ENV, LABEL, EXPOSE, CMD and the other
metadata steps add a history entry and no layer.

A learner's build is fenced (`Fence`): stopped after DOCKERCOURSE_FENCE_SECONDS, with ulimits,
and on the course's own engine in a cgroup that caps processes and memory. A build that fails
gets the engine's error plus a plain explanation. BuildKit makes no image for a failed build
(its finished steps stay in the build cache, as Docker means them to); the legacy builder keeps
an image for every finished step, which the course removes, so nothing half-built is left.
"""
from __future__ import annotations

import json
import re
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from requests.exceptions import ConnectionError as RequestsConnectionError, ReadTimeout
from urllib3.exceptions import ReadTimeoutError

from helpers.course import record
from helpers.course.buildkit import Buildx, Trace, builder_info
from helpers.course.layers import Layer, image_config, layers as image_layers, step_line
from helpers.course.labels import LABEL
from helpers.course.settings import fence_seconds
from helpers.course.ui import Progress, human_bytes

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
LAYER_ID = re.compile(r"^ ---> ([0-9a-f]{12})$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LEGACY = "legacy builder"
# Instructions BuildKit shows as steps; the others only write the image config.
BUILDKIT_STEPS = {"FROM", "RUN", "COPY", "ADD", "WORKDIR"}

# Words of the engine's errors when a FROM image is neither here nor pullable.
PULL_WORDS = ("failed to resolve source metadata", "pull access denied", "manifest unknown",
              "no such host", "proxyconnect", "repository does not exist")
_NOT_PULLED = ("The FROM image is not on this engine and could not be pulled: use an image you "
               "have (`docker images` lists them), build it first, or load the course's image "
               "bundle.")

# What the engine's error means and what to do about it: (words in the error or in the failed
# step's output, explanation). The first match wins, so specific words come first.
EXPLANATIONS = [
    ("can't fork",
     "A RUN step started more processes than the build may have (the course's build fence "
     "caps them): a fork bomb, or a loop that starts processes without end."),
    ("Resource temporarily unavailable",
     "A RUN step hit a limit of the build fence (processes or open files)."),
    ("exit code: 137",
     "A RUN step was killed (exit code 137): it used more memory than the build may have, or "
     "it was stopped."),
    ("unknown instruction",
     "A line starts with a word Docker does not know: a typo? Instructions are FROM, RUN, COPY, "
     "ADD, WORKDIR, ENV, ARG, EXPOSE, USER, LABEL, CMD, ENTRYPOINT, HEALTHCHECK, VOLUME, SHELL, "
     "STOPSIGNAL, ONBUILD."),
    ("no build stage in current context",
     "The first instruction must be FROM (only ARG may come before it)."),
    ("Cannot locate specified Dockerfile",
     "There is no Dockerfile in the build folder: create one there (named exactly Dockerfile)."),
    ("failed to read dockerfile",
     "There is no Dockerfile in the build folder: create one there (named exactly Dockerfile)."),
    ("file not found in build context",
     "COPY names a file that is not in the build context, or that .dockerignore leaves out. "
     "COPY's source paths are relative to the build context (the folder you build), "
     "never to your shell's current folder."),
    ("failed to compute cache key",
     "COPY names a file that is not in the build context, or that .dockerignore leaves out. "
     "COPY's source paths are relative to the build context (the folder you build), "
     "never to your shell's current folder."),
    ("exit code: 127",
     "A RUN command was not found in the image (exit code 127): a typo, or a tool the base "
     "image does not have. Its output above says which."),
    ("returned a non-zero code: 127",
     "A RUN command was not found in the image (exit code 127): a typo, or a tool the base "
     "image does not have. Its output above says which."),
    ("did not complete successfully",
     "A RUN command failed (non-zero exit code). Its output in the log above says why; "
     "the steps before it are fine and will come from the cache next time."),
    ("returned a non-zero code",
     "A RUN command failed (non-zero exit code). Its output in the log above says why; "
     "the steps before it are fine and will come from the cache next time."),
    ("pull access denied", _NOT_PULLED),
    ("failed to resolve source metadata", _NOT_PULLED),
    ("manifest unknown",
     "The FROM image's tag does not exist in the registry: check the tag."),
    ("no such host",
     "The FROM image is not on this engine and the registry cannot be reached: use an image "
     "you have (`docker images`), or load the course's image bundle."),
    ("proxyconnect",
     "The FROM image is not on this engine and the registry cannot be reached: use an image "
     "you have (`docker images`), or load the course's image bundle."),
    ("dockerfile parse error",
     "The Dockerfile has a syntax error on the line named: check its quotes and brackets "
     "(exec form needs double quotes: [\"python\", \"app.py\"])."),
    ("Error response from daemon",
     "The engine refused the build; its message above says why."),
]


def explain(error: str, output: str = "") -> str:
    """A plain explanation of a build error (and of what the failed step printed)."""
    text = f"{error}\n{output}".lower()
    for words, meaning in EXPLANATIONS:
        if words.lower() in text:
            return meaning
    return "The build stopped with this error; the log above shows the step that failed."


# The cell that makes each of the course's own images: (notebook, the heading above that cell).
# One repository name stands for all its tags. A test checks that every `courseNN.invalid/` name
# the notebooks use is here (or in NEVER_BUILT), under a heading its notebook really has.
MADE_IN = {
    "course01.invalid/hello": ("01-images", "A Dockerfile's steps, in order, make the layers"),
    "course01.invalid/goodbye": ("01-images", "Shared layers: stored once"),
    "course01.invalid/greeting": ("01-images", "IDs, tags and digests"),
    "course01.invalid/mystery": ("01-images", "3. Check yourself"),
    "course02.invalid/webapp": ("02-containers", "A container is always made from an image"),
    "course03.invalid/webapp": ("03-dockerfile", "Building yields an image ID"),
    "course03.invalid/copy": ("03-dockerfile", "COPY: what are `.` and `/app` in `COPY . /app`?"),
    "course03.invalid/add": ("03-dockerfile", "ADD or COPY?"),
    "course03.invalid/tour": ("03-dockerfile", "RUN, ENV, ARG, USER, LABEL, EXPOSE, HEALTHCHECK"),
    "course03.invalid/entrycmd": ("03-dockerfile", "CMD and ENTRYPOINT, exec form and shell form"),
    "course03.invalid/later": ("03-dockerfile", "Chaining RUN, and cleaning up in the same step"),
    "course03.invalid/same": ("03-dockerfile", "Chaining RUN, and cleaning up in the same step"),
    "course03.invalid/site": ("03-dockerfile", "Multi-stage builds: ship only what runs"),
    "course03.invalid/lab": ("03-dockerfile", "2. Live lab: the Dockerfile editor"),
    "course03.invalid/exercise": ("03-dockerfile", "Exercise: a Dockerfile that does not run as root"),
    "course04.invalid/webapp": ("04-volumes", "Bind mounts: logs your machine can read"),
    "course05.invalid/webapp": ("05-compose", "A project: its name, its network, its volume"),
    "course06.invalid/redis-checked": ("06-healthchecks", "`HEALTHCHECK` in a Dockerfile"),
    "course06.invalid/webapp": ("06-healthchecks", "`healthcheck:` in Compose, and waiting for a healthy service"),
}
# Names a lesson uses on purpose for an image that no cell makes.
NEVER_BUILT = {"course02.invalid/no-such-image": "02-containers shows the engine's answer for an "
                                                   "image it does not have"}
COURSE_IMAGE = re.compile(r"^course(\d\d)\.invalid/")


def repository(image: str) -> str:
    """`course03.invalid/site:single` → `course03.invalid/site` (tag and digest dropped)."""
    name = image.split("@")[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':')[0]}" if head else last.split(":")[0]


def made_in(image: str) -> tuple | None:
    """(notebook, heading) of the cell that makes one of the course's own images, or None."""
    return MADE_IN.get(repository(image))


def where_made(image: str) -> str:
    """What makes an image (one a Dockerfile names in FROM, or one a cell runs) when it is not
    on this engine."""
    from helpers.course.images import catalogue
    name = image.split("@")[0]
    if name.startswith("docker.io/library/"):
        name = name[len("docker.io/library/"):]
    if name in {img.ref for img in catalogue(optional=True).values()}:
        return (f"{name} is one of the course's images: `python -m helpers.images ensure` makes "
                "it (00-setup runs it).")
    if made := made_in(name):
        notebook, heading = made
        return (f"{name} is not on this engine. The cell under '{heading}' in {notebook} "
                "builds it: run that cell first.")
    if course := COURSE_IMAGE.match(name):
        return (f"{name} is not on this engine. Its name marks it as built in notebook {course[1]}, "
                f"but no cell there builds that name: check it (`docker images 'course*'` lists the course's images you have), or "
                f"build it yourself (`docker build -t {name} ...`).")
    return (f"{name} is not on this engine: check its name and tag (`docker images` lists the "
            "images you have); this engine does not pull it for you here.")


# ------------------------------------------------------------------ fences

PROCESS_ULIMITS = {"nofile": (1024, 1024), "nproc": (1024, 1024)}


LOG_LINES = 2000      # lines of build output kept
LINE_CHARS = 500      # characters kept of one line


@dataclass
class Fence:
    """The limits a build runs under; `missing` names those that could not apply, and why."""
    seconds: float | None = None       # wall clock: then the build is stopped
    ulimits: dict = field(default_factory=dict)    # {"nofile": (soft, hard)}: --ulimit
    cgroup_parent: str = ""            # --cgroup-parent: the course's cgroup caps processes, memory
    memory_bytes: int = 0              # the legacy builder's memory cap per step
    missing: list = field(default_factory=list)

    def applied(self) -> list[str]:
        said = []
        if self.seconds:
            said.append(f"stopped after {self.seconds:.0f} s")
        if self.ulimits:
            said.append("ulimit " + ", ".join(f"{k}={v[0]}" for k, v in self.ulimits.items()) +
                        (" (nproc binds non-root users only)" if "nproc" in self.ulimits else ""))
        if self.cgroup_parent:
            from helpers.course.own_engine import BUILD_LIMITS
            said.append(f"cgroup {self.cgroup_parent} (at most {BUILD_LIMITS['pids.max']} "
                        f"processes and {human_bytes(int(BUILD_LIMITS['memory.limit_in_bytes']))})")
        if self.memory_bytes:
            said.append(f"{human_bytes(self.memory_bytes)} of memory per step")
        return said

    def describe(self) -> str:
        text = "Limits: " + ("; ".join(self.applied()) or "none")
        if self.missing:
            text += ". Missing: " + "; ".join(self.missing)
        return text + "."


def learner_fence(client: docker.DockerClient, buildkit: bool) -> Fence:
    """The fence for what a learner builds through a panel, on this engine and builder."""
    from helpers.course.own_engine import BUILD_LIMITS, build_cgroup_parent
    seconds = fence_seconds()
    if not buildkit:
        return Fence(seconds, memory_bytes=int(BUILD_LIMITS["memory.limit_in_bytes"]),
                     missing=["no process cap and no ulimits: the engine's legacy build API, as "
                              "the SDK calls it, takes neither"])
    if _engine_major(client) < 23:
        # buildx hands both to the engine's own Dockerfile frontend, and Engine 20.10's
        # (BuildKit 0.8) ignores them without a word.
        return Fence(seconds, missing=["no ulimits and no cap on processes or memory: this "
                                       "engine's BuildKit (Engine 20.10) ignores --ulimit and "
                                       "--cgroup-parent"])
    fence = Fence(seconds, dict(PROCESS_ULIMITS), build_cgroup_parent())
    if not fence.cgroup_parent:
        fence.missing.append("no cap on processes or memory: RUN steps get the course's build "
                             "cgroup only on the course's own engine")
    return fence


def _engine_major(client: docker.DockerClient) -> int:
    try:
        return int(str(client.version().get("Version", "0")).split(".")[0])
    except (ValueError, DockerException):
        return 0


# ------------------------------------------------------------------ steps and results

@dataclass
class Step:
    """One Dockerfile instruction as the builder ran it (or as the image config records it)."""
    number: int                 # BuildKit's [n/m] (legacy: Step n/m); 0 for a config-only step
    total: int
    instruction: str
    cached: bool = False
    image_id: str = ""          # legacy: the 12-digit ID of the image this step produced
    seconds: float = 0.0
    output: list = field(default_factory=list)
    stage: str = ""             # BuildKit's stage name in a multi-stage build: [build 2/4]
    error: str = ""
    config_only: bool = False   # BuildKit writes it into the image config; no step runs
    history: str = ""           # its entry in the image config's history (`created_by`)
    layer: object = None        # the explorer.Layer it made (None: no layer, or not paired)

    @property
    def keyword(self) -> str:
        return self.instruction.split(None, 1)[0].upper() if self.instruction else ""

    @property
    def name(self) -> str:
        """As the builder's log names it: `[build 2/4] RUN ...`, `Step 2/7 : RUN ...`."""
        if self.config_only:
            return self.instruction
        where = f"{self.stage} " if self.stage else ""
        return f"[{where}{self.number}/{self.total}] {self.instruction}"

    @property
    def kind(self) -> str:
        """'base' (FROM), 'cached', 'rebuilt', 'failed' or 'config' (image config only)."""
        if self.config_only:
            return "config"
        if self.keyword == "FROM":
            return "base"
        if self.error:
            return "failed"
        return "cached" if self.cached else "rebuilt"

    @property
    def added_by_course(self) -> bool:
        """The LABEL step the legacy builder appends for `labels=` (the course's clean-up label;
        BuildKit writes labels straight into the config, with no step)."""
        return self.keyword == "LABEL" and "dockercourse.notebook" in self.instruction

    @property
    def layer_text(self) -> str:
        if self.layer is not None:
            return f"layer {human_bytes(self.layer.size_bytes)}"
        return "no layer" if self.history else ""


@dataclass
class BuildResult:
    ok: bool
    image_id: str = ""          # "sha256:..." of the built image
    tag: str | None = None
    steps: list = field(default_factory=list)
    log: list = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    removed: list = field(default_factory=list)  # images a failed legacy build left, now removed
    builder: str = ""           # "BuildKit (docker buildx 0.13.1)" or "legacy builder"
    fence: Fence | None = None
    timed_out: bool = False
    missing_images: list = field(default_factory=list)  # FROM images not on this engine
    dockerfile: str = ""        # the Dockerfile's text
    target: str | None = None
    base_bytes: int = 0         # the layers below the final stage's steps (after pair_layers)
    paired: bool = False

    @property
    def short_id(self) -> str:
        return self.image_id.split(":")[-1][:12]

    @property
    def buildkit(self) -> bool:
        return self.builder.startswith("BuildKit")

    @property
    def explanation(self) -> str:
        if self.timed_out:
            return ("A step never finished (an endless loop, a server started in RUN, a command "
                    "waiting for input?). The course stops a build after "
                    f"{self.fence.seconds:.0f} s (DOCKERCOURSE_FENCE_SECONDS).")
        if self.missing_images and any(w in self.error for w in PULL_WORDS):
            return ("FROM names an image this engine does not have, and it could not be pulled. "
                    + " ".join(where_made(i) for i in self.missing_images))
        if not self.error:
            return ""
        failed = next((s for s in self.steps if s.error), None)
        return explain(self.error, "\n".join(failed.output[-20:]) if failed else "")

    @property
    def cached(self) -> int:
        return sum(s.kind == "cached" for s in self.steps)

    @property
    def rebuilt(self) -> int:
        return sum(s.kind == "rebuilt" for s in self.steps)

    @property
    def leftovers(self) -> str:
        """What a failed build left behind, in words."""
        if self.buildkit:
            return ("BuildKit made no image; the steps that finished stay in the build cache, so "
                    "the next build starts from them.")
        if self.removed:
            return (f"The legacy builder had kept an image for each finished step; the course "
                    f"removed those {len(self.removed)}.")
        return "No image was made, so nothing is left behind."

    def table(self) -> str:
        """The steps as text: name, cached / rebuilt / config, seconds, and the layer it made."""
        rows = []
        for s in self.steps:
            number = "-" if s.config_only else f"{s.stage + ' ' if s.stage else ''}" \
                                                f"{s.number}/{s.total}"
            rows.append(f"{number:>9}  {s.kind:8} {s.seconds:5.2f} s  {s.instruction[:60]:60}"
                        f"  {s.layer_text}".rstrip())
        return "\n".join(rows)

    def __str__(self) -> str:
        if self.ok:
            return (f"Built {self.short_id}{' as ' + self.tag if self.tag else ''} in "
                    f"{self.seconds:.1f} s with {self.builder}: {self.cached} steps from the "
                    f"cache, {self.rebuilt} rebuilt.")
        return f"Build failed: {self.error}\n{self.explanation}\n{self.leftovers}"


# ------------------------------------------------------------------ the Dockerfile's stages

@dataclass
class Stage:
    index: int
    base: str                   # what FROM names
    alias: str = ""             # FROM ... AS alias
    instructions: list = field(default_factory=list)   # (keyword, text) after FROM

    def name(self, stages: int) -> str:
        """The stage as BuildKit names it in step names ('' in a one-stage build)."""
        if self.alias:
            return self.alias.lower()
        return f"stage-{self.index}" if stages > 1 else ""


_HEREDOC = re.compile(r"<<-?([\"']?)(\w+)\1")


def stages(text: str) -> list[Stage]:
    """The Dockerfile's stages: comments and blank lines dropped, continued lines joined."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines:  # parser directives come first, as `# name=value`
        m = re.match(r"^#\s*(\w+)\s*=\s*(\S+)\s*$", line)
        if not m:
            break
        if m[1].lower() == "escape":
            escape = m[2]
    found: list[Stage] = []
    i = 0
    while i < len(lines):
        parts = []
        while i < len(lines):
            line = lines[i]
            i += 1
            if line.lstrip().startswith("#") or (not line.strip() and parts):
                continue
            if line.rstrip().endswith(escape):
                parts.append(line.rstrip()[:-1])
                continue
            parts.append(line)
            break
        instruction = " ".join(" ".join(parts).split())
        if not instruction:
            continue
        keyword, _, rest = instruction.partition(" ")
        keyword = keyword.upper()
        for _, word in _HEREDOC.findall(instruction):  # RUN <<EOF ... EOF
            while i < len(lines) and lines[i].strip() != word:
                i += 1
            i += 1
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            alias = words[2] if len(words) > 2 and words[1].upper() == "AS" else ""
            found.append(Stage(len(found), words[0] if words else "", alias))
        elif found:
            found[-1].instructions.append((keyword, instruction))
    return found


def final_stage(text: str, target: str | None = None) -> tuple[Stage | None, int]:
    """The stage whose image the build makes, and the number of stages."""
    all_stages = stages(text)
    if target:
        chosen = [s for s in all_stages if s.alias.lower() == target.lower()]
        return (chosen[0] if chosen else None), len(all_stages)
    return (all_stages[-1] if all_stages else None), len(all_stages)


def missing_images(client: docker.DockerClient, text: str) -> list[str]:
    """The images the Dockerfile's FROM lines name that this engine does not have."""
    all_stages = stages(text)
    aliases = {s.alias.lower() for s in all_stages if s.alias}
    missing = []
    for stage in all_stages:
        base = stage.base
        if not base or base == "scratch" or base.lower() in aliases or "$" in base:
            continue
        try:
            client.images.get(base)
        except ImageNotFound:
            missing.append(base)
        except (APIError, DockerException):
            pass
    return missing


# ------------------------------------------------------------------ building

def build(client: docker.DockerClient, path: str | Path, tag: str | None = None, *,
          labels: dict, nocache: bool = False, buildargs: dict | None = None,
          target: str | None = None, dockerfile: str | None = None,
          on_line: Callable[[str], None] | None = None,
          on_step: Callable[[Step], None] | None = None,
          progress: Progress | None | bool = None,
          builder: str = "auto", fence: Fence | None = None,
          layers: bool = False) -> BuildResult:
    """`docker build [-t tag] [-f dockerfile] path`, with `labels` (a lesson's: `lesson.labels`), step by step.

    builder: "auto" (BuildKit where the CLI has buildx, else the legacy builder), "buildkit" or
    "legacy". fence: the limits (default: `learner_fence`). layers: pair the steps with the
    image's history and layers afterwards (`pair_layers`). on_line(text) gets every log line as
    it arrives, on_step(step) every finished step. progress: a Progress to drive, None to show
    a new one, False for none.
    """

    path = Path(path)
    started = time.monotonic()
    result = BuildResult(ok=False, tag=tag, target=target)
    if not path.is_dir():
        result.error = f"The build context folder {path} does not exist."
        return result
    dockerfile_path = path / (dockerfile or "Dockerfile")
    try:
        result.dockerfile = dockerfile_path.read_text(errors="replace")
    except OSError:
        pass  # the builder says so in its own words
    info = None if builder == "legacy" else builder_info()
    if builder == "buildkit" and info is None:
        result.error = ("BuildKit is not available: the docker CLI or its buildx plugin is "
                        "missing (`docker buildx version` fails).")
        return result
    result.builder = info.label if info else LEGACY
    result.fence = fence if fence is not None else learner_fence(client, info is not None)
    bar = Progress(f"docker build {path.name}", 1.0) if progress is None else (progress or None)

    def say(text: str):
        # Output is kept in bounded amounts: a RUN that prints forever fills no memory.
        if len(result.log) > LOG_LINES:
            return
        text = text[:LINE_CHARS] if len(result.log) < LOG_LINES else \
            f"... the rest of the output is not kept (the lab keeps {LOG_LINES} lines)"
        result.log.append(text)
        if on_line:
            on_line(text)

    options = dict(tag=tag, labels=labels, nocache=nocache, buildargs=buildargs or {},
                   target=target, fence=result.fence, say=say, on_step=on_step, bar=bar)
    if info:
        _build_buildkit(client, path, dockerfile_path, info.builder, result, **options)
    else:
        _build_legacy(client, path, dockerfile, result, **options)
    result.ok = not result.error
    if result.ok and labels.get(LABEL):
        _record(client, result, labels[LABEL])
    if not result.ok and not result.timed_out and result.dockerfile:
        try:
            result.missing_images = missing_images(client, result.dockerfile)
        except (DockerException, OSError):
            pass
    if result.ok and layers:
        try:
            pair_layers(client, result)
        except (DockerException, OSError):
            pass  # the image went meanwhile (clean-up): the steps stay without layers
    result.seconds = time.monotonic() - started
    if bar:
        bar.close(caption=(f"{result.short_id}: {result.cached} cached, {result.rebuilt} rebuilt"
                           if result.ok else "failed"), ok=result.ok)
    return result


def _record(client: docker.DockerClient, result: BuildResult, nn: str) -> None:
    """Write the image into the creation record as lesson `nn`'s: clean-up removes only what
    the record holds (BuildKit builds through the CLI, which no recording client sees)."""
    tags = []
    if result.tag:  # as the engine lists it: `name` means `name:latest`
        tags = [result.tag if ":" in result.tag.rsplit("/", 1)[-1] else f"{result.tag}:latest"]
    record.add(client, "images", result.image_id, nn, tags)


def _step_of(vertex) -> Step:
    m = vertex.step
    return Step(int(m["number"]), int(m["total"]), m["instruction"], cached=vertex.cached,
                seconds=vertex.seconds, output=list(vertex.output), stage=m["stage"] or "",
                error=vertex.error)


def _build_buildkit(client, path: Path, dockerfile_path: Path, builder_name: str,
                    result: BuildResult, *, tag, labels, nocache, buildargs, target, fence, say,
                    on_step, bar) -> None:
    """`docker buildx build --load --progress=rawjson ...` with the fence's limits."""
    with tempfile.TemporaryDirectory(prefix="dockercourse-build-") as tmp:
        metadata = Path(tmp) / "metadata.json"
        # --provenance=false: no attestation manifest beside the image (the containerd store
        # would keep one); the image is the same everywhere.
        args = ["--load", "--provenance=false", "--metadata-file", metadata,
                "--file", dockerfile_path]
        if builder_name:
            args += ["--builder", builder_name]
        if tag:
            args += ["--tag", tag]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        for key, value in buildargs.items():
            args += ["--build-arg", f"{key}={value}"]
        if target:
            args += ["--target", target]
        if nocache:
            args.append("--no-cache")
        if fence.cgroup_parent:
            args += ["--cgroup-parent", fence.cgroup_parent]
        for name, (soft, hard) in fence.ulimits.items():
            args += ["--ulimit", f"{name}={soft}:{hard}"]
        run = Buildx([*args, path], fence.seconds)
        trace = Trace()
        try:
            for event in run.events():
                lines, finished = trace.feed(event)
                for line in lines:
                    say(line)
                for vertex in finished:
                    if vertex.step and on_step:
                        on_step(_step_of(vertex))
                steps = trace.steps()
                if bar and finished and steps:
                    # each stage's steps are numbered 1..m: m summed over the stages seen
                    total = sum(m for _, m in {(v.step["stage"], int(v.step["total"]))
                                               for v in steps})
                    bar.update(sum(v.done for v in steps), max(total, 1), steps[-1].name[:60])
        except OSError as exc:
            result.error = f"The docker CLI could not run buildx ({exc})."
        finally:
            run.stop()
        result.steps = [_step_of(v) for v in trace.steps()]
        if result.error:
            return
        if run.timed_out:
            result.timed_out = True
            result.error = (f"The build ran longer than {fence.seconds:.0f} s and was stopped "
                            "(the build and its step's processes ended).")
            say(result.error)
            return
        if run.returncode != 0:
            result.error = trace.error() or f"docker buildx build ended with code {run.returncode}."
            return
        try:
            said = json.loads(metadata.read_text())
        except (OSError, ValueError):
            said = {}
    result.image_id = _image_id(client, said, tag)
    if not result.image_id:
        result.error = "The build ended without an image on this engine."


def _image_id(client: docker.DockerClient, said: dict, tag: str | None) -> str:
    """The built image's ID as this engine names it: the config digest on the classic store,
    the manifest digest on the containerd store (buildx's metadata names both)."""
    for ref in (said.get("containerimage.digest"), said.get("containerimage.config.digest"),
                tag):
        if not ref:
            continue
        try:
            return client.images.get(ref).id
        except (ImageNotFound, APIError):
            continue
    return ""


def _all_image_ids(client: docker.DockerClient) -> set:
    # The low-level call: one request, and no inspect of images another program may be removing.
    return set(client.api.images(all=True, quiet=True))


def _full_ids(client: docker.DockerClient, short_ids: list, before: set) -> list:
    """The images named in the stream that did not exist before the build, newest first."""
    now = [i for i in _all_image_ids(client) if i not in before]
    return [full for short in reversed(short_ids) for full in now
            if full.split(":")[-1].startswith(short)]


def _remove_images(client: docker.DockerClient, ids: list) -> list:
    """Remove images newest first (their untagged parents go with them); report what went."""
    removed = []
    for image_id in ids:
        try:
            client.images.remove(image_id, noprune=False)
            removed.append(image_id.split(":")[-1][:12])
        except (NotFound, ImageNotFound):
            removed.append(image_id.split(":")[-1][:12])  # pruned with its child already
        except APIError:
            pass  # still a parent of an image someone else built: not ours to remove
    return removed


def ancestors(client: docker.DockerClient, image_id: str) -> set:
    """The IDs of an image and every image below it (its layers' images on this engine)."""
    return {h["Id"] for h in client.api.history(image_id) if h.get("Id", "").startswith("sha256:")}


def _gone(client: docker.DockerClient, container: str, seconds: float = 10.0) -> None:
    """Wait for the engine to remove a stopped build's step container (forcerm); remove it if
    it stays."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            client.api.inspect_container(container)
        except NotFound:
            return
        time.sleep(0.2)
    try:
        client.api.remove_container(container, force=True)
    except NotFound:
        pass


class LegacyTrace:
    """The legacy builder's stream, as `client.api.build(decode=True)` yields it: "Step 2/7 :
    RUN ...", " ---> Using cache", " ---> 1a2b3c4d5e6f" (the step's image), `aux` with the
    image ID, or `error`. `feed(event)` returns (lines to show, steps that finished)."""

    def __init__(self):
        self.steps: list[Step] = []
        self.image_id = ""
        self.error = ""
        self.step_ids: list[str] = []   # the 12-digit IDs of the images the steps kept
        self.running = ""               # the container the current RUN step runs in
        self._pending = ""
        self._started = time.monotonic()

    def _finish(self) -> list:
        if not self.steps:
            return []
        step = self.steps[-1]
        step.seconds = time.monotonic() - self._started
        return [step]

    def feed(self, event: dict) -> tuple[list, list]:
        if "error" in event:
            self.error = ANSI.sub("", event["error"]).strip()
            if self.steps:
                self.steps[-1].error = self.error
            return [self.error], []
        if "aux" in event and "ID" in event["aux"]:
            self.image_id = event["aux"]["ID"]
            return [], []
        lines, finished = [], []
        # The engine sends "Step N/M : ..." and its newline as two events; join them.
        self._pending += ANSI.sub("", event.get("stream", ""))
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            if not line.strip():
                continue
            lines.append(line)
            step = self.steps[-1] if self.steps else None
            if m := STEP.match(line):
                finished += self._finish()
                self.steps.append(Step(int(m[1]), int(m[2]), m[3]))
                self._started = time.monotonic()
            elif step is None:
                continue
            elif line.strip() == "---> Using cache":
                step.cached = True
            elif line.startswith(" ---> Running in "):
                self.running = line.split()[-1]
            elif m := LAYER_ID.match(line):
                step.image_id = m[1]
                self.step_ids.append(m[1])
            elif not line.startswith((" ---> Running in", "Removing intermediate",
                                      " ---> Removed intermediate", "Successfully built",
                                      "Successfully tagged")):
                step.output.append(line)
        return lines, finished

    def end(self) -> list:
        """The last step, finished when the stream ends."""
        return [] if self.error else self._finish()


def _build_legacy(client, path: Path, dockerfile: str | None, result: BuildResult, *, tag,
                  labels, nocache, buildargs, target, fence, say, on_step, bar) -> None:
    """The engine's legacy builder (`client.api.build`), for engines without BuildKit's CLI."""
    before = _all_image_ids(client)
    trace = LegacyTrace()
    deadline = None if not fence.seconds else time.monotonic() + fence.seconds
    limits = {"memory": fence.memory_bytes} if fence.memory_bytes else None
    stream = None
    try:
        # forcerm: the container of a failed step goes too. timeout: a step silent that long
        # ends the request, and the engine cancels a build whose client went away.
        stream = client.api.build(path=str(path), tag=tag, labels=labels, rm=True,
                                  forcerm=True, decode=True, nocache=nocache,
                                  buildargs=buildargs, target=target, dockerfile=dockerfile,
                                  container_limits=limits, timeout=fence.seconds or None)
        for event in stream:
            if deadline and time.monotonic() > deadline:
                raise ReadTimeout()
            lines, finished = trace.feed(event)
            for line in lines:
                say(line)
            for step in finished:
                if on_step:
                    on_step(step)
            if bar and trace.steps:
                step = trace.steps[-1]
                bar.update(step.number - 1, step.total, f"step {step.number}/{step.total}")
            if trace.error:
                break
        for step in trace.end():
            if on_step:
                on_step(step)
        result.error = trace.error
        if not result.error and not trace.image_id:
            result.error = "The engine ended the build without an image."
    except (ReadTimeout, ReadTimeoutError, RequestsConnectionError) as exc:
        if deadline and time.monotonic() >= deadline - 1:
            result.timed_out = True
            result.error = (f"The build ran longer than {fence.seconds:.0f} s and was stopped "
                            "(the engine cancels it and removes its step's container).")
        else:
            result.error = f"The engine stopped answering during the build ({exc})."
        say(result.error)
    except APIError as exc:
        result.error = exc.explanation or str(exc)
        say(result.error)
    except (DockerException, OSError) as exc:  # the engine stopped, the context unreadable...
        result.error = f"The engine could not be reached during the build ({exc})."
        say(result.error)
    finally:
        if stream is not None:
            stream.close()  # closes the connection: the engine cancels an unfinished build
    result.steps, result.image_id = trace.steps, trace.image_id
    try:
        if result.error and trace.running:
            _gone(client, trace.running)
        new_ids = _full_ids(client, trace.step_ids, before)
        if result.error:
            # The legacy builder keeps the image of every finished step: take them away.
            result.removed = _remove_images(client, new_ids)
        else:
            # Images of other stages (multi-stage builds) belong to no labelled image: remove
            # them so that clean-up leaves nothing behind.
            keep = ancestors(client, result.image_id)
            _remove_images(client, [i for i in new_ids if i not in keep])
    except (DockerException, OSError):
        pass  # the engine is gone: nothing more can be removed now


# ------------------------------------------------------------------ steps ↔ history ↔ layers

def _final_steps(result: BuildResult) -> tuple[list, list, str] | None:
    """(steps of other stages with the final stage's FROM, the final stage's steps after FROM,
    metadata steps included, in Dockerfile order, and the image FROM names ('' for another
    stage)); None where they cannot be told apart."""
    if not result.buildkit:
        froms = [i for i, s in enumerate(result.steps) if s.keyword == "FROM"]
        if not froms:
            return None
        words = [w for w in result.steps[froms[-1]].instruction.split()[1:]
                 if not w.startswith("--")]
        return result.steps[:froms[-1] + 1], result.steps[froms[-1] + 1:], \
            words[0] if words else ""
    stage, count = final_stage(result.dockerfile, result.target)
    if stage is None:
        return None
    made = [k for k, _ in stage.instructions if k in BUILDKIT_STEPS]
    by_stage: dict = {}
    for step in result.steps:
        by_stage.setdefault(step.stage, []).append(step)
    fits = lambda name: [s.keyword for s in sorted(by_stage.get(name, []),
                                                    key=lambda s: s.number)
                         if s.number > 1] == made
    # BuildKit names stages as the Dockerfile does, and counts an image that COPY --from
    # names as a stage of its own: look for the stage whose steps are this one's.
    name = stage.name(count)
    if not fits(name):
        name = next((n for n in reversed(list(by_stage)) if fits(n)), None)
        if name is None:
            return None
    mine = sorted(by_stage.get(name, []), key=lambda s: s.number)
    others = [s for s in result.steps if s.stage != name]
    first = [s for s in mine if s.number == 1] or [
        Step(1, len(made) + 1, f"FROM {stage.base}", cached=True, stage=name)]
    final, queue = [], [s for s in mine if s.number > 1]
    for keyword, text in stage.instructions:
        if keyword in BUILDKIT_STEPS:
            final.append(queue.pop(0))
        else:
            final.append(Step(0, len(made) + 1, text, stage=name, config_only=True))
    aliases = {s.alias.lower() for s in stages(result.dockerfile) if s.alias}
    base = "" if stage.base.lower() in aliases or "$" in stage.base else stage.base
    return others + first, final, base


# The instructions that may add a layer; the others only write the image config.
LAYER_STEPS = {"RUN", "COPY", "ADD", "WORKDIR"}


def _layers_by_count(client: docker.DockerClient, base: str, diff_ids: list, history: list,
                     first: int, final: list) -> dict | None:
    """{history entry: Layer} when the count alone settles it: the image has as many layers
    above its base image's as the stage has RUN, COPY, ADD and WORKDIR steps, so each of them
    made one. None when it does not (a legacy WORKDIR whose folder existed makes none): then
    only the image config can say."""
    if not base:
        return None
    try:
        below = 0 if base == "scratch" else \
            len(client.images.get(base).attrs["RootFS"].get("Layers") or [])
    except (ImageNotFound, APIError):
        return None
    makers = [first + k for k, s in enumerate(final) if s.keyword in LAYER_STEPS]
    if len(diff_ids) - below != len(makers) or below > len(diff_ids):
        return None
    return {i: Layer(below + n, diff_id, history[i].get("CreatedBy", ""),
                     int(history[i].get("Size") or 0))
            for n, (i, diff_id) in enumerate(zip(makers, diff_ids[below:]))}


def _layers_by_config(client: docker.DockerClient, image_id: str, history: list) -> dict:
    """{history entry: Layer}, from the image config's `empty_layer` marks (helpers.labs.explorer
    reads the config from `docker save`). Where the config could not be read, the layers'
    `created_by` are matched to the entries from the top."""
    stack = image_layers(client, image_id)
    try:
        config = image_config(client, image_id).get("history") or []
    except (APIError, OSError, tarfile.TarError):
        config = []
    made = [i for i, h in enumerate(config) if not h.get("empty_layer")]
    if len(config) == len(history) and len(made) == len(stack):
        return dict(zip(made, stack))
    layer_of, j = {}, len(stack) - 1
    for i in range(len(history) - 1, -1, -1):
        if j >= 0 and history[i].get("CreatedBy") == stack[j].created_by:
            layer_of[i], j = stack[j], j - 1
    return layer_of


def pair_layers(client: docker.DockerClient, result: BuildResult) -> BuildResult:
    """Pair each step of the image's own stage with its history entry and the layer it made.

    The image config's history has one entry per instruction after FROM, on top of the base
    image's entries; an entry makes a layer unless it is `empty_layer`. ENV, LABEL, EXPOSE, CMD
    and the other metadata steps never do, so when the image has as many new layers as the
    stage has RUN, COPY, ADD and WORKDIR steps, each of those made one; otherwise the config
    says which (read by helpers.labs.explorer: `docker save`, slow for a large base image). Metadata
    steps BuildKit did not show join `result.steps` here; steps of other stages keep
    `history` ''.
    """
    if not result.ok or result.paired:
        return result
    result.paired = True
    history = list(reversed(client.api.history(result.image_id)))  # bottom first
    result.base_bytes = sum(int(e.get("Size") or 0) for e in history)
    split = _final_steps(result)
    if split is None or len(split[1]) > len(history):
        return result
    before, final, base = split
    first = len(history) - len(final)
    entries = history[first:]
    if [s.keyword for s in final] != [step_line(e.get("CreatedBy", "")).split(" ")[0]
                                       for e in entries]:
        return result
    diff_ids = client.images.get(result.image_id).attrs["RootFS"].get("Layers") or []
    layer_of = _layers_by_count(client, base, diff_ids, history, first, final) or \
        _layers_by_config(client, result.image_id, history)
    for k, step in enumerate(final):
        step.history = entries[k].get("CreatedBy", "")
        step.layer = layer_of.get(first + k)
    result.base_bytes = sum(int(e.get("Size") or 0) for e in history[:first])
    result.steps = before + final
    return result


def step_sizes(client: docker.DockerClient, result: BuildResult) -> tuple[int, dict]:
    """The base image's bytes, and the bytes each step's layer adds, by its index in
    `result.steps` (after pairing the steps with the image's layers)."""
    pair_layers(client, result)
    return result.base_bytes, {i: s.layer.size_bytes for i, s in enumerate(result.steps)
                               if s.layer is not None}


KIND_COLOURS = {"base": "#8c959f", "cached": "#0969da", "rebuilt": "#bf8700",
                "config": "#d0d7de", "failed": "#cf222e"}


def layer_chart(client: docker.DockerClient, result: BuildResult):
    """A matplotlib figure: seconds and layer size per step, coloured by kind."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    base_bytes, sizes = step_sizes(client, result)
    shown = [(i, s) for i, s in enumerate(result.steps) if not s.added_by_course]
    names = [(f"{s.number}. " if s.number else "   ") + s.instruction[:38] for _, s in shown]
    colours = [KIND_COLOURS[s.kind] for _, s in shown]
    fig = Figure(figsize=(10, 0.45 * len(shown) + 1.4))
    ax_time, ax_size = fig.subplots(1, 2, sharey=True)
    y = range(len(shown))
    seconds = [s.seconds for _, s in shown]
    ax_time.barh(y, seconds, color=colours)
    for row, (_, s) in enumerate(shown):
        text = {"cached": " from the cache", "base": "", "config": " config only"}.get(
            s.kind, f" {s.seconds:.2f} s")
        ax_time.text(seconds[row], row, text, va="center", fontsize=8)
    ax_time.set_xlim(0, max(seconds + [0.1]) * 1.3)
    ax_time.set_yticks(list(y), names, fontsize=8)
    ax_time.invert_yaxis()
    ax_time.set_xlabel("seconds the step took")
    kib = [sizes.get(i, 0) / 1024 for i, _ in shown]
    ax_size.barh(y, kib, color=colours)
    ax_size.set_xlabel("size the layer adds (KiB)")
    for row, (i, s) in enumerate(shown):
        if s.kind == "base":
            text = f"base image: {human_bytes(base_bytes)}, shared"
        elif i in sizes:
            text = human_bytes(sizes[i])
        else:
            text = "no layer" if s.history else ""
        ax_size.text(kib[row], row, " " + text, va="center", fontsize=8)
    ax_size.set_xlim(0, max(kib + [1]) * 1.6)
    handles = [Patch(color=c, label=k) for k, c in KIND_COLOURS.items()
               if any(s.kind == k for _, s in shown)]
    ax_time.legend(handles=handles, loc="lower right", fontsize=8)
    fig.suptitle(f"Image {result.short_id} ({result.builder}): {result.cached} steps cached, "
                 f"{result.rebuilt} rebuilt, {result.seconds:.1f} s in all", fontsize=10)
    fig.tight_layout()
    return fig


def image_size_bytes(client: docker.DockerClient, image: str) -> int:
    """What `docker images` shows as SIZE: the image's layers, the base image's included."""
    return int(client.api.inspect_image(image)["Size"])
