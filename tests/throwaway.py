"""A kit entry under a throwaway name, for tests that need a course image to be missing.

Such a test never removes `busybox:1.35` itself, which on a learner's engine may be a genuine
pulled image: it points the catalogue's entry at a name of its own
(`course99.invalid/throwaway-<random>:<tag>`, which no registry can serve) and removes only
that name afterwards.
"""
import dataclasses
import uuid

from docker.errors import ImageNotFound

from helpers.course import images


def throwaway_kit(monkeypatch, name: str = "busybox", *also) -> str:
    """Point catalogue entry `name` at a fresh throwaway ref (in helpers.course.images and in
    each module of `also` that imported `catalogue` by name); returns the ref."""
    real = images.catalogue
    tag = real(optional=True)[name].ref.rsplit(":", 1)[-1]
    ref = f"course99.invalid/throwaway-{uuid.uuid4().hex[:12]}:{tag}"

    def catalogue(optional: bool = False):
        kit = real(optional)
        kit[name] = dataclasses.replace(kit[name], ref=ref)
        return kit

    for module in (images, *also):
        monkeypatch.setattr(module, "catalogue", catalogue)
    return ref


def remove_name(client, ref: str) -> None:
    """Remove the name `ref` only: an image that has other names keeps them (and stays)."""
    try:
        client.images.remove(ref)
    except ImageNotFound:
        pass
