"""A registry's HTTP API, read the way `docker pull` reads it (lesson 01's registry on loopback).

    tags(base, "course01/mystery")                 # GET /v2/<repo>/tags/list
    published(base, "course01/mystery", "1.0")     # what the tag names: digest, config, diff IDs

`base` is the registry's address, `http://127.0.0.1:PORT`. Only plain HTTP on loopback: the
engine counts 127.0.0.0/8 as an insecure registry, so the lesson needs no TLS.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

# What a client accepts for a manifest, as `docker pull` asks: one image or an index of several.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEXES = MANIFEST_TYPES[:2]
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback: no proxy


class RegistryError(Exception):
    """The registry did not answer, or answered something a registry would not."""


@dataclass
class Published:
    digest: str          # the manifest's (or index's) sha256: what `docker push` prints
    config: str          # the configuration's sha256 (the image ID on a classic engine)
    diff_ids: list       # the layers' diff IDs, bottom first, from the configuration


def _get(url: str, accept: tuple = ()) -> tuple:
    request = urllib.request.Request(url, headers={"Accept": ", ".join(accept)} if accept else {})
    try:
        with _DIRECT.open(request, timeout=5) as answer:
            return answer.read(), answer.headers
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None, exc.headers
        raise RegistryError(f"{url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryError(f"nothing answered at {url} ({getattr(exc, 'reason', exc)})") from None


def tags(base: str, repo: str) -> list:
    """The tags the registry holds for `repo` ([] when it holds none)."""
    body, _ = _get(f"{base}/v2/{repo}/tags/list")
    return sorted((json.loads(body).get("tags") or [])) if body else []


def _manifest(base: str, repo: str, reference: str) -> tuple:
    body, headers = _get(f"{base}/v2/{repo}/manifests/{reference}", MANIFEST_TYPES)
    if body is None:
        raise RegistryError(f"{repo}:{reference} is not in the registry")
    return json.loads(body), headers.get("Docker-Content-Digest", "")


def published(base: str, repo: str, tag: str) -> Published:
    """What `repo:tag` names in the registry. An index (a multi-platform push, or the containerd
    image store's push with its attestations) is followed to its linux/amd64 or only image."""
    manifest, digest = _manifest(base, repo, tag)
    if manifest.get("mediaType") in INDEXES or "manifests" in manifest:
        images = [m for m in manifest.get("manifests", [])
                  if (m.get("platform") or {}).get("os") not in (None, "unknown")]
        chosen = next((m for m in images if m["platform"].get("architecture") == "amd64"),
                      images[0] if images else None)
        if chosen is None:
            raise RegistryError(f"{repo}:{tag} is an index with no image in it")
        manifest, _ = _manifest(base, repo, chosen["digest"])
    config = manifest["config"]["digest"]
    body, _ = _get(f"{base}/v2/{repo}/blobs/{config}")
    if body is None:
        raise RegistryError(f"the registry lacks {repo}'s configuration {config[:19]}")
    return Published(digest, config, json.loads(body).get("rootfs", {}).get("diff_ids", []))
