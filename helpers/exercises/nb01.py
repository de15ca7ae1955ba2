"""01-images: tag an image; find the layer that added a file; quiz on layers, tags and templates."""
from __future__ import annotations

import io

from docker.errors import APIError, ImageNotFound

from . import Line, exercise, question
from ..explorer import layers, which_layer
from ..images import ref
from ..labels import labels

MYSTERY = "course01/mystery"
SECRET_FILE = "/opt/app/conf/settings.ini"

# The exercise image: a few steps, one of which writes SECRET_FILE. The LABEL right after FROM
# puts the course label on every step's image too, so a tag on any of them is cleaned up.
MYSTERY_DOCKERFILE = f"""\
FROM {ref('busybox')}
LABEL dockercourse.notebook=01
RUN mkdir -p /opt/app/conf && echo 'name=demo' > /opt/app/conf/app.ini
RUN echo 'log_level=info' > /opt/app/conf/logging.ini
RUN echo 'colour=blue' > {SECRET_FILE} && echo 'v1' > /opt/app/VERSION
RUN echo 'v2' > /opt/app/VERSION && rm /opt/app/conf/logging.ini
CMD ["cat", "{SECRET_FILE}"]
"""


def prepare_mystery(client) -> str:
    """Build the exercise image (docker build -t course01/mystery); returns its ID."""
    image, _ = client.images.build(fileobj=io.BytesIO(MYSTERY_DOCKERFILE.encode()),
                                   tag=MYSTERY, labels=labels(1), rm=True)
    return image.id


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

def _solve_tag(client):
    prepare_mystery(client)
    client.images.get(MYSTERY).tag(MYSTERY, "1.0")


@exercise(
    id="01.tag", title="Give an image a second name",
    task=f"Tag the image <code>{MYSTERY}</code> as <code>{MYSTERY}:1.0</code>. "
         "Then look at <code>docker images</code>: how many images are there now?",
    hint="A tag is a name that points to an image ID. `docker tag SOURCE TARGET` adds one; "
         "in Python, `client.images.get(SOURCE).tag(REPOSITORY, TAG)`.",
    answer=f"docker tag {MYSTERY} {MYSTERY}:1.0\n"
           f"# or: client.images.get('{MYSTERY}').tag('{MYSTERY}', '1.0')\n"
           "# docker images shows two lines with the same IMAGE ID: one image, two names.",
    solve=_solve_tag, reset=lambda client: _untag(client, f"{MYSTERY}:1.0"))
def check_tag(client) -> list:
    image, first = _mystery_line(client)
    if image is None:
        return [first]
    lines = [first]
    tagged = _get(client, f"{MYSTERY}:1.0")
    if tagged is None:
        lines.append(Line(False, f"no image is tagged {MYSTERY}:1.0",
                          f"docker tag {MYSTERY} {MYSTERY}:1.0"))
    elif tagged.id != image.id:
        lines.append(Line(False, f"{MYSTERY}:1.0 points to {tagged.short_id}, not to "
                                 f"{MYSTERY} ({image.short_id})",
                          f"docker tag {MYSTERY} {MYSTERY}:1.0 moves the tag to the right image"))
    else:
        lines.append(Line(True, f"{MYSTERY}:1.0 and {MYSTERY}:latest are one image "
                                f"({image.short_id}): two names, no copy"))
    return lines


# ---------------------------------------------------------------- exercise 2: which layer

CULPRIT = f"{MYSTERY}:culprit"


def _solve_layer(client):
    prepare_mystery(client)
    layer = which_layer(client, MYSTERY, SECRET_FILE)
    client.images.get(layer.step_image_id).tag(MYSTERY, "culprit")


@exercise(
    id="01.layer", title="Which layer added the file?",
    task=f"One layer of <code>{MYSTERY}</code> put <code>{SECRET_FILE}</code> into the image. "
         "Find it, and tag the image of the build step that made that layer as "
         f"<code>{CULPRIT}</code>.",
    hint="`docker history course01/mystery` lists each build step with the IMAGE ID the build "
         "kept for it and the command it ran. The explorer's 'Find a file' tab reads the layers "
         "themselves (what `docker save` writes) and names the layer and its step image.",
    answer=f"docker history {MYSTERY}     # the RUN that writes {SECRET_FILE}: note its IMAGE\n"
           f"docker tag <that IMAGE ID> {CULPRIT}\n"
           f"# or: layer = which_layer(client, '{MYSTERY}', '{SECRET_FILE}')\n"
           f"#     client.images.get(layer.step_image_id).tag('{MYSTERY}', 'culprit')",
    solve=_solve_layer, reset=lambda client: _untag(client, CULPRIT))
def check_layer(client) -> list:
    image, first = _mystery_line(client)
    if image is None:
        return [first]
    lines = [first]
    culprit = _get(client, CULPRIT)
    if culprit is None:
        return lines + [Line(False, f"no image is tagged {CULPRIT}",
                             f"find the step in `docker history {MYSTERY}`, then "
                             f"docker tag <its IMAGE ID> {CULPRIT}")]
    stack = [l.diff_id for l in layers(client, MYSTERY)]
    mine = [l.diff_id for l in layers(client, CULPRIT)]
    if mine != stack[:len(mine)]:
        return lines + [Line(False, f"{CULPRIT} is not one of {MYSTERY}'s build steps",
                             f"tag an IMAGE ID listed by docker history {MYSTERY}")]
    lines.append(Line(True, f"{CULPRIT} is a step of {MYSTERY} ({len(mine)} of its "
                            f"{len(stack)} layers)"))
    target = which_layer(client, MYSTERY, SECRET_FILE)
    if mine[-1] != target.diff_id:
        where = "above" if len(mine) - 1 > target.index else "below"
        lines.append(Line(False, f"the top layer of {CULPRIT} did not add {SECRET_FILE}",
                          f"the layer you want is {where} this one: docker tag another step"))
    else:
        lines.append(Line(True, f"its top layer ({target.short_id}) is the one that added "
                                f"{SECRET_FILE}: {target.step[:60]}"))
    return lines


# ---------------------------------------------------------------- quiz

question("01.shared", "Two images built FROM busybox:1.35 are listed by `docker images` at about "
         "2 MB each. How much disk do their busybox layers take?",
         ["About 4 MB: each image has its own copy", "About 2 MB: shared layers are stored once",
          "Nothing: layers live in the registry"], 1,
         "Layers are identified by their content. Both images point to the same busybox layers, "
         "so the engine stores them once; `docker images` counts them in each image's SIZE, "
         "`docker system df` shows what is really used.")
question("01.tag", "You run `docker tag course01/mystery course01/mystery:1.0`. What happened on "
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
