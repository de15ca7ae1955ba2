"""Every `DOCKERCOURSE_*` setting, read one way, in one place (the README lists them).

| variable                    | meaning                                                    | default |
|-----------------------------|------------------------------------------------------------|---------|
| DOCKERCOURSE_OFFLINE        | never pull (1, yes, true, on) or pull where possible (0, no, false, off) | pull |
| DOCKERCOURSE_CACHE          | where the course keeps root file systems and its engine    | ~/.cache/dockercourse |
| DOCKERCOURSE_BUNDLE         | the workshop's image bundle                                | data/bundle/dockercourse-images.tar |
| DOCKERCOURSE_VM             | `image` runs QEMU in a container of the course's VM image  | host QEMU where present |
| DOCKERCOURSE_ACCEL          | `tcg` or `kvm`: the VM's accelerator, skipping the probe   | probe |
| DOCKERCOURSE_FENCE_SECONDS  | the wall-clock limit of what a learner runs through a panel | 120 |
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
NOTEBOOKS = ROOT / "notebooks"

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"", "0", "no", "false", "off"}


def flag(name: str, default: bool = False) -> bool:
    """A yes/no variable: 1/yes/true/on or 0/no/false/off (any case); anything else is an error."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: say 1 or 0 (yes/no, true/false, on/off).")


def offline() -> bool:
    """True when the course must never pull (`./course test` sets DOCKERCOURSE_OFFLINE=1)."""
    return flag("DOCKERCOURSE_OFFLINE")


def cache_dir() -> Path:
    return Path(os.environ.get("DOCKERCOURSE_CACHE") or Path.home() / ".cache" / "dockercourse")


def bundle_path() -> Path:
    return Path(os.environ.get("DOCKERCOURSE_BUNDLE") or
                DATA / "bundle" / "dockercourse-images.tar")


def vm_where() -> str:
    """'image' (QEMU in a container of the course's VM image), 'host', or '' (choose)."""
    return os.environ.get("DOCKERCOURSE_VM", "").strip().lower()


def accelerator() -> str:
    """'kvm', 'tcg' or '' (probe)."""
    return os.environ.get("DOCKERCOURSE_ACCEL", "").strip().lower()


def fence_seconds() -> float:
    """How long a learner's build or container may run through a panel before it is stopped."""
    raw = os.environ.get("DOCKERCOURSE_FENCE_SECONDS", "").strip()
    try:
        return float(raw) if raw else 120.0
    except ValueError:
        raise ValueError(f"DOCKERCOURSE_FENCE_SECONDS={raw!r}: give a number of seconds.") from None
