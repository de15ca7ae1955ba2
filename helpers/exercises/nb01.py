"""01-images: tag an image; find the layer that added a file; publish it in a registry and name
its digest; quiz on layers, tags, digests, registries and templates."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from docker.errors import APIError, ImageNotFound, NotFound

from . import ENTERED, Line, entered, exercise, question
from helpers.course import registry
from helpers.course.layers import layer_files, which_layer
from helpers.course.images import ref
from helpers.course.labels import labels

MYSTERY = "course01.invalid/mystery"
CONF = "/opt/app/conf"
SECRET_FILE = f"{CONF}/settings.ini"

# The exercise image. Four identical RUN steps each move the first file left in staging/ into
# conf/, so `docker history` cannot tell which step brought settings.ini; the last step then
# changes another file in conf/ (app.ini), the plausible wrong answer. The learner never sees
# this Dockerfile: the layers themselves must answer.
STAGED = {"c2-cache.ini": "size_mb=64\n", "h5-logging.ini": "level=info\n",
          "m8-settings.ini": "colour=blue\n", "t3-app.ini": "name=demo\n"}
MOVE_ONE = 'RUN cd /opt/app && f=$(ls staging | head -n 1) && mv "staging/$f" "conf/${f#*-}"'
MYSTERY_DOCKERFILE = f"""\
FROM {ref('busybox')}
COPY staging/ /opt/app/staging/
RUN mkdir -p {CONF}
{MOVE_ONE}
{MOVE_ONE}
{MOVE_ONE}
{MOVE_ONE}
RUN cd {CONF} && f=$(ls | head -n 1) && echo "debug=false" >> "$f"
CMD ["cat", "{SECRET_FILE}"]
"""


def _buildx_available() -> bool:
    """`docker buildx version` answers: the CLI has the buildx plugin, so BuildKit can build."""
    from python_on_whales import DockerClient
    from python_on_whales.exceptions import DockerException
    try:
        DockerClient().buildx.version()
        return True
    except (DockerException, OSError):
        return False


def prepare_mystery(client) -> str:
    """Build the exercise image (`docker buildx build --load -t course01.invalid/mystery`); returns its ID.

    BuildKit builds it, as `docker build` does today; without the buildx plugin the engine's
    legacy builder does. BuildKit runs through the `docker` CLI, which finds the engine by
    DOCKER_HOST: `helpers.course.engine.connect()` sets it for the course's own engine."""
    with tempfile.TemporaryDirectory(prefix="course01-") as context:
        (Path(context) / "Dockerfile").write_text(MYSTERY_DOCKERFILE)
        (Path(context) / "staging").mkdir()
        for name, text in STAGED.items():
            (Path(context) / "staging" / name).write_text(text)
        if _buildx_available():
            from python_on_whales import DockerClient
            DockerClient().buildx.build(context, tags=[MYSTERY], labels=labels(1), load=True,
                                        progress=False)
        else:
            client.images.build(path=context, tag=MYSTERY, labels=labels(1), rm=True)
    return client.images.get(MYSTERY).id


def _get(client, name):
    try:
        return client.images.get(name)
    except ImageNotFound:
        return None


def _untag(client, name) -> None:
    """`docker rmi NAME`: drops the tag; the image goes too only if no other tag holds it."""
    try:
        client.images.remove(name, noprune=False)
    except (ImageNotFound, APIError):
        pass


def _mystery_line(client) -> tuple:
    image = _get(client, MYSTERY)
    if image is None:
        return None, Line(False, f"{MYSTERY} is not on the engine",
                          "run the cell in section 3 that calls prepare_mystery(client)")
    return image, Line(True, f"{MYSTERY} is there ({image.short_id})")


# ---------------------------------------------------------------- exercise 1: a tag

TAG_CLI = f"docker tag {MYSTERY} {MYSTERY}:1.0"
TAG_SDK = f"client.images.get({MYSTERY!r}).tag({MYSTERY!r}, '1.0')"
# Plausible wrong attempts the Check rejects (tests run each one).
TAG_WRONG = {
    "the wrong image": f"docker tag {ref('busybox')} {MYSTERY}:1.0",
    "the wrong name": f"docker tag {MYSTERY} {MYSTERY}:v1.0",
}


def _solve_tag(client):
    from helpers.course.cli import run
    prepare_mystery(client)
    run(TAG_CLI, echo=False)


@exercise(
    id="01.tag", title="Give an image a second name",
    task=f"Give the image <code>{MYSTERY}</code> the second name <code>{MYSTERY}:1.0</code>, "
         "without building anything. Then look at <code>docker images</code>: how many images "
         f"are there now? Careful: a <code>{MYSTERY}:1.0</code> that points to another image "
         "(say busybox's) does not pass, and neither does another tag (<code>v1.0</code>).",
    hint="A tag is a name that points to an image ID; the docker subcommand that adds one is "
         "named after it. It takes the image you have first, then the new name.",
    answer="# in a terminal, or in a %%docker cell:\n" + TAG_CLI +
           "\n# docker images shows two lines with the same IMAGE ID: one image, two names.\n"
           "\n# or in Python:\n" + TAG_SDK,
    solve=_solve_tag, reset=lambda client: _untag(client, f"{MYSTERY}:1.0"),
    names={"images": [f"{MYSTERY}:latest", f"{MYSTERY}:1.0"]})
def check_tag(client) -> list:
    image, first = _mystery_line(client)
    if image is None:
        return [first]
    lines = [first]
    tagged = _get(client, f"{MYSTERY}:1.0")
    if tagged is None:
        lines.append(Line(False, f"no image is tagged {MYSTERY}:1.0",
                          "docker tag adds a name to an image you have: that image first, "
                          "then the new name"))
    elif tagged.id != image.id:
        lines.append(Line(False, f"{MYSTERY}:1.0 points to {tagged.short_id}, not to "
                                 f"{MYSTERY} ({image.short_id})",
                          f"tag {MYSTERY} itself: docker tag moves the name to the image you "
                          "give it"))
    else:
        lines.append(Line(True, f"{MYSTERY}:1.0 and {MYSTERY}:latest are one image "
                                f"({image.short_id}): two names, no copy"))
    return lines


# ---------------------------------------------------------------- exercise 2: which layer

# The answer in a terminal: take the image apart (docker save), find the first layer tar that
# holds the file, print that layer's diff ID. Python reads manifest.json (the CLI has no jq).
LAYER_CLI = f"""\
d=$(mktemp -d) && docker save {MYSTERY} | tar -x -C "$d"
n=0
for tar in $(python3 -c "import json; print(*json.load(open('$d/manifest.json'))[0]['Layers'])"); do
  if tar -tf "$d/$tar" | grep -x '{SECRET_FILE[1:]}' >/dev/null; then
    docker image inspect -f "{{{{index .RootFS.Layers $n}}}}" {MYSTERY}; break
  fi
  n=$((n+1))
done
rm -rf "$d"
"""
LAYER_SDK = f"which_layer(client, {MYSTERY!r}, {SECRET_FILE!r}).diff_id"


def _solve_layer(client):
    from helpers.course.cli import run
    prepare_mystery(client)
    ENTERED["01.layer"] = run(LAYER_CLI, echo=False).strip().splitlines()[-1]


def _hex(text: str) -> str:
    """'sha256:ABC…' → 'abc…': the hex digits of an ID as a learner may paste it."""
    text = text.strip().lower()
    return text[len("sha256:"):] if text.startswith("sha256:") else text


def _typed_sha256(id: str, what: str, where: str) -> tuple:
    """The hex digits typed into exercise `id`'s field, and a failing Line when they cannot be
    `what` (a diff ID, a digest): empty, or not 12 to 64 hex digits."""
    typed = _hex(entered(id))
    if not typed:
        return typed, Line(False, "the field is empty",
                           f"type the first 12 hex digits (or all) of the {what}; {where}")
    if not re.fullmatch(r"[0-9a-f]{12,64}", typed):
        return typed, Line(False, f"{entered(id)!r} is not a {what}",
                           f"a {what} is sha256: and 64 hex digits (0-9, a-f): type at least "
                           "the first 12")
    return typed, None


def _blob_hex(blob: str) -> str:
    """'blobs/sha256/abc…' or 'abc…/layer.tar' → 'abc…'."""
    parts = [p for p in blob.split("/") if re.fullmatch(r"[0-9a-f]{64}", p)]
    return parts[0] if parts else ""


@exercise(
    id="01.layer", title="Which layer added the file?",
    task=f"One layer of <code>{MYSTERY}</code> put <code>{SECRET_FILE}</code> into the image. "
         "Type that layer's <b>diff ID</b> (its first 12 hex digits; <code>sha256:</code> may "
         "stay) into the field and press <b>Check</b>. Careful: the layer that last changed "
         f"another file in <code>{CONF}/</code> is not the one, and neither is the image's "
         "ID.",
    hint="docker history shows the steps, but several look alike: ask the layers themselves. "
         "Each layer is a tar of the files its step changed; the explorer's 'Find a file' tab "
         "opens them (what `docker save` writes). Diff IDs are listed bottom first by "
         "`docker image inspect` under RootFS.Layers.",
    answer="# in a terminal, or in a %%docker cell: which layer's tar holds the file, and its "
           "diff ID\n" + LAYER_CLI + "\n\n# or in Python (the explorer's 'Find a file' tab does "
           "the same):\n" + LAYER_SDK + "\n# then type the diff ID (or its first 12 hex "
           "digits) into the field",
    solve=_solve_layer, reset=lambda client: ENTERED.pop("01.layer", None),
    entry="diff ID of the layer, e.g. 3f2a9c1b7d4e")
def check_layer(client) -> list:
    image, first = _mystery_line(client)
    if image is None:
        return [first]
    lines = [first]
    where = "the explorer's 'Find a file' tab names the layer and its diff ID"
    typed, wrong = _typed_sha256("01.layer", "diff ID", where)
    if wrong:
        return lines + [wrong]
    if _hex(image.id).startswith(typed):
        return lines + [Line(False, "that is the image's ID, not one of its layers' diff IDs",
                             f"docker image inspect -f '{{{{json .RootFS.Layers}}}}' {MYSTERY} "
                             "lists the diff IDs, bottom first")]
    per_layer = layer_files(client, MYSTERY)
    mine = next((f for f in per_layer if _hex(f.layer.diff_id).startswith(typed)), None)
    if mine is None:
        blob = next((f.layer for f in per_layer if _blob_hex(f.blob).startswith(typed)), None)
        if blob is not None:
            return lines + [Line(False, f"that names layer {blob.index}'s file inside docker save "
                                        f"({per_layer[blob.index].blob}), not its diff ID",
                                 "the diff ID is the sha256 of the layer's uncompressed tar: "
                                 f"entry {blob.index} of RootFS.Layers in docker image inspect")]
        return lines + [Line(False, f"no layer of {MYSTERY} has a diff ID starting {typed[:12]}",
                             where)]
    target = which_layer(client, MYSTERY, SECRET_FILE)
    layer = mine.layer
    if layer.diff_id == target.diff_id:
        return lines + [Line(True, f"layer {layer.index} ({layer.short_id}) added {SECRET_FILE}: "
                                   f"{layer.step[:60]}")]
    touched = [f"added {p}" for p in mine.added if p.startswith(CONF + "/")] + \
        [f"changed {p}" for p in mine.changed if p.startswith(CONF + "/")]
    said = f"layer {layer.index} ({layer.short_id}) " + (
        f"{', '.join(touched)}, not {SECRET_FILE}" if touched else
        f"did not put {SECRET_FILE} there")
    direction = "below" if target.index < layer.index else "above"
    return lines + [Line(False, said, f"the layer you want is {direction} this one; {where}")]


# ---------------------------------------------------------------- exercise 3: a registry

REGISTRY_CONTAINER, REGISTRY_VOLUME = "course01-registry", "course01-registry-data"
PUSH_REPO, PUSH_TAG = "course01/mystery", "1.0"
# The name pushed, whatever port the lesson's registry got (45000 or the next free one).
PUSHED_NAME = re.compile(r"(127\.0\.0\.1|localhost):\d+/course01/mystery(:[\w.-]+)?")
PUSH_CLI = f"""\
docker tag {MYSTERY} "$REGISTRY/{PUSH_REPO}:{PUSH_TAG}"
docker push "$REGISTRY/{PUSH_REPO}:{PUSH_TAG}"     # its last line: {PUSH_TAG}: digest: sha256:... size: ...
docker images --digests "$REGISTRY/{PUSH_REPO}"
"""
PUSH_SDK = f"""\
client.images.get({MYSTERY!r}).tag(f"{{REGISTRY}}/{PUSH_REPO}", {PUSH_TAG!r})
for line in client.images.push(f"{{REGISTRY}}/{PUSH_REPO}", tag={PUSH_TAG!r}, stream=True, decode=True):
    print(line.get("aux", ""))                    # {{'Tag': '{PUSH_TAG}', 'Digest': 'sha256:...', ...}}"""
# Plausible wrong attempts the Check rejects (tests run each one, in a %%docker-like shell).
PUSH_WRONG = {
    "tagged, never pushed": f'docker tag {MYSTERY} "$REGISTRY/{PUSH_REPO}:{PUSH_TAG}"',
    "pushed without a tag": f'docker tag {MYSTERY} "$REGISTRY/{PUSH_REPO}"\n'
                            f'docker push "$REGISTRY/{PUSH_REPO}"',
    "another image under the name": f'docker tag {ref("busybox")} "$REGISTRY/{PUSH_REPO}:{PUSH_TAG}"\n'
                                    f'docker push "$REGISTRY/{PUSH_REPO}:{PUSH_TAG}"',
}


def registry_address(client) -> str | None:
    """`127.0.0.1:PORT` of the lesson's registry container, if it runs."""
    try:
        container = client.containers.get(REGISTRY_CONTAINER)
    except (NotFound, APIError):
        return None
    bound = (container.ports or {}).get("5000/tcp") or []
    if container.status != "running" or not bound:
        return None
    return f"127.0.0.1:{bound[0]['HostPort']}"


def start_registry(client) -> str:
    """The lesson's registry as section 1 runs it (`docker run -d -p 127.0.0.1:PORT:5000 -v
    course01-registry-data:/var/lib/registry registry:2`), if it is not running; its address,
    also put in $REGISTRY for the shell."""
    import os
    from helpers.course.images import ensure_images
    from helpers.course.ports import fetch, free_port
    address = registry_address(client)
    if address is None:
        ensure_images(client, names=["registry"])
        _remove_registry(client)
        client.volumes.create(REGISTRY_VOLUME, labels=labels(1))
        address = f"127.0.0.1:{free_port(45000)}"
        client.containers.run(ref("registry"), name=REGISTRY_CONTAINER, detach=True,
                              labels=labels(1), ports={"5000/tcp": tuple(address.split(":"))},
                              volumes={REGISTRY_VOLUME: {"bind": "/var/lib/registry"}})
        fetch(f"http://{address}/v2/", wait_seconds=10)
    os.environ["REGISTRY"] = address
    return address


def _remove_registry(client) -> None:
    for remove in (lambda: client.containers.get(REGISTRY_CONTAINER).remove(force=True, v=True),
                   lambda: client.volumes.get(REGISTRY_VOLUME).remove(force=True)):
        try:
            remove()
        except (NotFound, APIError):
            pass


def _reset_push(client) -> None:
    """Every local name of the pushed repository, then the registry and what it stored."""
    ENTERED.pop("01.push", None)
    for image in client.images.list():
        for tag in image.tags:
            if PUSHED_NAME.fullmatch(tag):
                _untag(client, tag)
    _remove_registry(client)


def _solve_push(client) -> None:
    from helpers.course.cli import run
    prepare_mystery(client)
    address = start_registry(client)
    run(PUSH_CLI, echo=False)
    ENTERED["01.push"] = registry.published(f"http://{address}", PUSH_REPO, PUSH_TAG).digest


def _not_pushed(client, address: str, held: list) -> Line:
    local = [t for img in client.images.list() for t in img.tags
             if t == f"{address}/{PUSH_REPO}:{PUSH_TAG}"]
    if PUSH_TAG not in held and "latest" in held:
        return Line(False, f"the registry holds {PUSH_REPO}:latest, not {PUSH_REPO}:{PUSH_TAG}",
                    "a name pushed without a tag goes as :latest; the tag is the part after "
                    "the last colon of the name you push")
    if local:
        return Line(False, f"{local[0]} is a name on your engine only: the registry holds "
                           f"{'no ' + PUSH_REPO if not held else 'only the tags ' + ', '.join(held)}",
                    "tagging names an image on your engine; a second command uploads it")
    return Line(False, f"the registry at {address} holds no {PUSH_REPO}:{PUSH_TAG}"
                       + (f" (its tags: {', '.join(held)})" if held else ""),
                "an image goes to the registry its name begins with: give the image a name "
                "that starts with the registry's address, then upload that name")


@exercise(
    id="01.push", title="Publish an image, and name it by its digest",
    task=f"Publish <code>{MYSTERY}</code> in the lesson's registry (the one section 1 started, "
         f"at <code>$REGISTRY</code>) as the repository <code>{PUSH_REPO}</code> with the tag "
         f"<code>{PUSH_TAG}</code>. Then type into the field the digest the registry knows it "
         "by. Careful: pushed without a tag, it lands as <code>latest</code>, which does not "
         "pass; nor does another image under that name, nor the image's ID.",
    hint="A push takes no registry address of its own: the image's name says where it goes, "
         "so the name must start with the registry's address, as the cells in section 1 did "
         "for course01.invalid/hello. A push ends by printing the manifest's digest; the "
         "engine's image list can show digests too.",
    answer="# in a terminal, or in a %%docker cell ($REGISTRY: the registry cell of section "
           "1 sets it):\n" + PUSH_CLI + "# then type the digest (sha256:..., or its first 12 "
           "hex digits) into the field\n\n# or in Python:\n" + PUSH_SDK,
    solve=_solve_push, reset=_reset_push, entry="digest, e.g. sha256:3f2a9c1b7d4e",
    names={"containers": [REGISTRY_CONTAINER], "volumes": [REGISTRY_VOLUME],
           "images": [PUSHED_NAME]})
def check_push(client) -> list:
    image, first = _mystery_line(client)
    if image is None:
        return [first]
    lines = [first]
    address = registry_address(client)
    if address is None:
        return lines + [Line(False, f"the lesson's registry (container {REGISTRY_CONTAINER}) "
                                    "is not running",
                             "run the two cells under 'Registries: push and pull' in section "
                             "1: they start it on 127.0.0.1 and set $REGISTRY")]
    base = f"http://{address}"
    try:
        held = registry.tags(base, PUSH_REPO)
        if PUSH_TAG not in held:
            return lines + [_not_pushed(client, address, held)]
        pushed = registry.published(base, PUSH_REPO, PUSH_TAG)
    except registry.RegistryError as exc:
        return lines + [Line(False, f"the registry did not answer as a registry does: {exc}",
                             "run the registry cells of section 1 again: they start it afresh")]
    layers = image.attrs["RootFS"]["Layers"]
    if pushed.diff_ids != layers:
        return lines + [Line(False, f"{PUSH_REPO}:{PUSH_TAG} in the registry is another image: "
                                    f"its {len(pushed.diff_ids)} layer(s) are not the "
                                    f"{len(layers)} of {MYSTERY}",
                             f"give {MYSTERY} itself the registry's name, and push that name "
                             "again: the tag then moves to it")]
    lines.append(Line(True, f"{address}/{PUSH_REPO}:{PUSH_TAG} is {MYSTERY}: the same "
                            f"{len(layers)} layers, uploaded"))
    where = "the last line of the push says it; so does docker images --digests"
    typed, wrong = _typed_sha256("01.push", "digest", where)
    if wrong:
        return lines + [wrong]
    if _hex(pushed.digest).startswith(typed):
        return lines + [Line(True, f"{pushed.digest[:19]}... names {PUSH_REPO}:{PUSH_TAG} for "
                                   "good: a pull by that digest gets exactly this image, "
                                   "wherever the tag moves")]
    if _hex(pushed.config).startswith(typed) or _hex(image.id).startswith(typed):
        return lines + [Line(False, "that is the image's ID (the sha256 of its configuration "
                                    "on a classic engine), not the digest of what was pushed",
                             "a registry names an image by its manifest's sha256, the digest: "
                             + where)]
    return lines + [Line(False, f"{typed[:12]} is not the digest of {PUSH_REPO}:{PUSH_TAG}",
                         where)]


# ---------------------------------------------------------------- quiz

question("01.shared", "Two images built FROM busybox:1.35 are listed by `docker images` at about "
         "2 MB each. How much disk do their busybox layers take?",
         ["About 4 MB: each image has its own copy", "About 2 MB: shared layers are stored once",
          "Nothing: layers live in the registry"], 1,
         "Layers are identified by their content. Both images point to the same busybox layers, "
         "so the engine stores them once; `docker images` counts them in each image's SIZE, "
         "`docker system df` shows what is really used.")
question("01.tag", "You run `docker tag course01.invalid/mystery course01.invalid/mystery:1.0`. What happened on "
         "disk?",
         ["The image was copied under a new name", "A new name now points to the same image ID",
          "A new layer was added"], 1,
         "A tag is only a name for an image ID: no file is copied, and `docker images` shows two "
         "lines with the same IMAGE ID. Removing one tag (`docker rmi name:tag`) leaves the image "
         "as long as another tag points to it.")
question("01.rm", "A Dockerfile step runs `rm big-file` that an earlier step created. Does the "
         "image get smaller?",
         ["Yes, the file is gone", "No: the earlier layer still holds it; the new layer only "
          "hides it (a whiteout)", "Only after docker image prune"], 1,
         "Layers are read-only and only ever added. The later layer records the deletion as a "
         "whiteout file, so the container does not see it, but the bytes stay in the lower "
         "layer. Delete a file in the same RUN that made it, or use a multi-stage build (03).")
question("01.template", "Is an image running when it is on your engine?",
         ["Yes, as a background service", "No: an image is a template (files and settings); "
          "a container is a running instance made from it", "Only if it has a CMD"], 1,
         "An image is a read-only snapshot plus default settings. `docker run` makes a container "
         "from it: a writable layer on top and the processes. One image can make many "
         "containers (lesson 02).")
question("01.digest", "A deployment runs `127.0.0.1:45000/course01/hello@sha256:3f2a…`. Then "
         "someone pushes a fixed image under `127.0.0.1:45000/course01/hello:1`, the tag the "
         "deployment was first made from. What does the deployment run when it restarts?",
         ["The fixed image: it was pushed under the same name",
          "The same image as before: a digest names one manifest, and so one image, for good",
          "Nothing: the digest stopped being valid when the tag moved"], 1,
         "A digest is the sha256 of the manifest's bytes, so it can only ever name that manifest, "
         "which names the configuration and every layer by their own sha256. Pushing moves the "
         "tag `1`; the old manifest stays in the registry under its digest. Pin by digest where "
         "you must get exactly one image; use a tag to follow updates.")
question("01.latest", "A team pushed `myapp:latest` a month ago and `myapp:2` today. What does "
         "`docker pull myapp` fetch?",
         ["myapp:2, the newest image", "Whatever was last pushed as myapp:latest: the one from a "
          "month ago", "An error: the name has no tag"], 1,
         "A name without a tag means `:latest`, and `latest` is only a default tag name: the "
         "registry moves it only when someone pushes to it. Push explicit version tags, and "
         "`latest` too if you want it to follow them.")
