"""Building an image from a Dockerfile, step by step (taught in 03-dockerfile).

`build(client, folder)` mirrors `docker build folder` through the SDK's low-level
`client.api.build(...)`, which streams the engine's own words: "Step 2/7 : WORKDIR /app",
" ---> Using cache", " ---> Running in 3f2a...". From them each step is marked *cached* or
*rebuilt* and timed. A build that fails gets the engine's error plus a plain explanation, and the
images its finished steps left behind are removed, so nothing half-built remains.

The SDK always speaks the engine's classic build API, so this stream looks the same on Docker
Desktop, whose `docker build` CLI uses BuildKit and prints "#5 CACHED" instead.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from .explorer import layers as image_layers
from .labels import labels
from .ui import Progress, human_bytes

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
LAYER_ID = re.compile(r"^ ---> ([0-9a-f]{12})$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# What the engine's error means and what to do about it: (words in the error, explanation).
EXPLANATIONS = [
    ("unknown instruction",
     "A line starts with a word Docker does not know: a typo? Instructions are FROM, RUN, COPY, "
     "ADD, WORKDIR, ENV, ARG, EXPOSE, USER, LABEL, CMD, ENTRYPOINT, HEALTHCHECK, VOLUME, SHELL, "
     "STOPSIGNAL, ONBUILD."),
    ("no build stage in current context",
     "The first instruction must be FROM (only ARG may come before it)."),
    ("Cannot locate specified Dockerfile",
     "There is no Dockerfile in the build folder: create one there (named exactly Dockerfile)."),
    ("file not found in build context",
     "COPY names a file that is not in the build context, or that .dockerignore leaves out. "
     "COPY's source paths are relative to the build context (the folder you build), "
     "never to your shell's current folder."),
    ("returned a non-zero code: 127",
     "A RUN command was not found in the image (exit code 127): a typo, or a tool the base "
     "image does not have. Its output above says which."),
    ("returned a non-zero code",
     "A RUN command failed (non-zero exit code). Its output in the log above says why; "
     "the steps before it are fine and will come from the cache next time."),
    ("pull access denied",
     "The FROM image is not on this engine and could not be pulled: check its name and tag "
     "(`docker images` lists what you have)."),
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


def explain(error: str) -> str:
    """A plain explanation of a build error, with what to do."""
    for words, meaning in EXPLANATIONS:
        if words.lower() in error.lower():
            return meaning
    return "The build stopped with this error; the log above shows the step that failed."


@dataclass
class Step:
    """One Dockerfile instruction as the engine built it."""
    number: int
    total: int
    instruction: str
    cached: bool = False
    image_id: str = ""          # the 12-digit ID of the image this step produced
    seconds: float = 0.0
    output: list = field(default_factory=list)

    @property
    def keyword(self) -> str:
        return self.instruction.split(None, 1)[0].upper() if self.instruction else ""

    @property
    def kind(self) -> str:
        """'base' (FROM), 'cached' (reused from an earlier build) or 'rebuilt'."""
        if self.keyword == "FROM":
            return "base"
        return "cached" if self.cached else "rebuilt"

    @property
    def added_by_course(self) -> bool:
        """The LABEL step the engine appends for `labels=` (the course's clean-up label)."""
        return self.keyword == "LABEL" and "dockercourse.notebook" in self.instruction


@dataclass
class BuildResult:
    ok: bool
    image_id: str = ""          # "sha256:..." of the built image
    tag: str | None = None
    steps: list = field(default_factory=list)
    log: list = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    removed: list = field(default_factory=list)  # images a failed build left, now removed

    @property
    def short_id(self) -> str:
        return self.image_id.split(":")[-1][:12]

    @property
    def explanation(self) -> str:
        return explain(self.error) if self.error else ""

    @property
    def cached(self) -> int:
        return sum(s.kind == "cached" for s in self.steps)

    @property
    def rebuilt(self) -> int:
        return sum(s.kind == "rebuilt" for s in self.steps)

    def table(self) -> str:
        """The steps as text: number, cached or rebuilt, seconds, instruction."""
        rows = [f"{s.number:>2}/{s.total}  {s.kind:8} {s.seconds:5.2f} s  {s.instruction[:70]}"
                for s in self.steps]
        return "\n".join(rows)

    def __str__(self) -> str:
        if self.ok:
            return (f"Built {self.short_id}{' as ' + self.tag if self.tag else ''} in "
                    f"{self.seconds:.1f} s: {self.cached} steps from the cache, "
                    f"{self.rebuilt} rebuilt.")
        text = f"Build failed: {self.error}\n{self.explanation}"
        if self.removed:
            text += f"\nRemoved the {len(self.removed)} image(s) its finished steps had left."
        return text


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


def build(client: docker.DockerClient, path: str | Path, tag: str | None = None, nn: int = 3, *,
          nocache: bool = False, buildargs: dict | None = None, target: str | None = None,
          dockerfile: str | None = None,
          on_line: Callable[[str], None] | None = None,
          on_step: Callable[[Step], None] | None = None,
          progress: Progress | None | bool = None) -> BuildResult:
    """`docker build [-t tag] [-f dockerfile] path`, labelled for notebook `nn`, step by step.

    on_line(text) gets every log line as it arrives, on_step(step) every finished step.
    progress: a Progress to drive, None to show a new one, False for none.
    """
    path = Path(path)
    started = time.monotonic()
    result = BuildResult(ok=False, tag=tag)
    if not path.is_dir():
        result.error = f"The build context folder {path} does not exist."
        return result
    bar = Progress(f"docker build {path.name}", 1.0) if progress is None else (progress or None)
    before = _all_image_ids(client)
    step_ids: list = []
    step: Step | None = None
    step_started = started

    def finish_step():
        if step is not None:
            step.seconds = time.monotonic() - step_started
            if on_step:
                on_step(step)

    def say(text: str):
        result.log.append(text)
        if on_line:
            on_line(text)

    try:
        stream = client.api.build(path=str(path), tag=tag, labels=labels(nn), rm=True,
                                  forcerm=True, decode=True, nocache=nocache,
                                  buildargs=buildargs or {}, target=target,
                                  dockerfile=dockerfile)
        pending = ""
        for event in stream:
            if "error" in event:
                result.error = ANSI.sub("", event["error"]).strip()
                say(result.error)
                break
            if "aux" in event and "ID" in event["aux"]:
                result.image_id = event["aux"]["ID"]
                continue
            # The engine sends "Step N/M : ..." and its newline as two events; join them.
            pending += ANSI.sub("", event.get("stream", ""))
            while "\n" in pending:
                line, pending = pending.split("\n", 1)
                if not line.strip():
                    continue
                say(line)
                if m := STEP.match(line):
                    finish_step()
                    step = Step(int(m[1]), int(m[2]), m[3])
                    step_started = time.monotonic()
                    result.steps.append(step)
                    if bar:
                        bar.update(int(m[1]) - 1, int(m[2]), f"step {m[1]}/{m[2]}")
                elif step is None:
                    continue
                elif line.strip() == "---> Using cache":
                    step.cached = True
                elif m := LAYER_ID.match(line):
                    step.image_id = m[1]
                    step_ids.append(m[1])
                elif not line.startswith((" ---> Running in", "Removing intermediate",
                                          "Successfully built", "Successfully tagged")):
                    step.output.append(line)
        finish_step()
        if not result.error and not result.image_id:
            result.error = "The engine ended the build without an image."
    except APIError as exc:
        result.error = exc.explanation or str(exc)
        say(result.error)
    except (DockerException, OSError) as exc:  # the engine stopped, the context unreadable...
        result.error = f"The engine could not be reached during the build ({exc})."
        say(result.error)

    result.ok = not result.error
    try:
        new_ids = _full_ids(client, step_ids, before)
        if not result.ok:
            # The legacy builder keeps the image of every finished step: take them away.
            result.removed = _remove_images(client, new_ids)
        else:
            # Images of other stages (multi-stage builds) belong to no labelled image: remove
            # them so that clean-up leaves nothing behind.
            keep = ancestors(client, result.image_id)
            _remove_images(client, [i for i in new_ids if i not in keep])
    except (DockerException, OSError):
        pass  # the engine is gone: nothing more can be removed now
    result.seconds = time.monotonic() - started
    if bar:
        bar.close(caption=(f"{result.short_id}: {result.cached} cached, {result.rebuilt} rebuilt"
                           if result.ok else "failed"), ok=result.ok)
    return result


def step_sizes(client: docker.DockerClient, result: BuildResult) -> tuple[int, dict]:
    """The base image's bytes, and the bytes each build step's layer adds by step number
    (`docker history`, matched to the build's steps through the images the build kept)."""
    by_id = {s.image_id: s for s in result.steps if s.image_id}
    base, sizes = 0, {}
    for layer in image_layers(client, result.image_id):
        step = by_id.get(layer.step_image_id.split(":")[-1][:12])
        if step is None or step.keyword == "FROM":
            base += layer.size_bytes
        else:
            sizes[step.number] = sizes.get(step.number, 0) + layer.size_bytes
    return base, sizes


KIND_COLOURS = {"base": "#8c959f", "cached": "#0969da", "rebuilt": "#bf8700"}


def layer_chart(client: docker.DockerClient, result: BuildResult):
    """A matplotlib figure: seconds and layer size per step, coloured cached / rebuilt."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    base_bytes, sizes = step_sizes(client, result)
    steps = [s for s in result.steps if not s.added_by_course]
    names = [f"{s.number}. {s.instruction[:38]}" for s in steps]
    colours = [KIND_COLOURS[s.kind] for s in steps]
    fig = Figure(figsize=(10, 0.45 * len(steps) + 1.4))
    ax_time, ax_size = fig.subplots(1, 2, sharey=True)
    y = range(len(steps))
    seconds = [s.seconds for s in steps]
    ax_time.barh(y, seconds, color=colours)
    for i, s in enumerate(steps):
        text = {"cached": " from the cache", "base": ""}.get(s.kind, f" {s.seconds:.2f} s")
        ax_time.text(seconds[i], i, text, va="center", fontsize=8)
    ax_time.set_xlim(0, max(seconds + [0.1]) * 1.3)
    ax_time.set_yticks(list(y), names, fontsize=8)
    ax_time.invert_yaxis()
    ax_time.set_xlabel("seconds the step took")
    kib = [sizes.get(s.number, 0) / 1024 for s in steps]
    ax_size.barh(y, kib, color=colours)
    ax_size.set_xlabel("size the layer adds (KiB)")
    for i, s in enumerate(steps):
        text = (f"base image: {human_bytes(base_bytes)}, shared" if s.kind == "base"
                else human_bytes(sizes.get(s.number, 0)))
        ax_size.text(kib[i], i, " " + text, va="center", fontsize=8)
    ax_size.set_xlim(0, max(kib + [1]) * 1.6)
    handles = [Patch(color=c, label=k) for k, c in KIND_COLOURS.items()]
    ax_time.legend(handles=handles, loc="lower right", fontsize=8)
    fig.suptitle(f"Image {result.short_id}: {result.cached} steps cached, {result.rebuilt} "
                 f"rebuilt, {result.seconds:.1f} s in all", fontsize=10)
    fig.tight_layout()
    return fig


def image_size_bytes(client: docker.DockerClient, image: str) -> int:
    """What `docker images` shows as SIZE: the image's layers, the base image's included."""
    return int(client.api.inspect_image(image)["Size"])
