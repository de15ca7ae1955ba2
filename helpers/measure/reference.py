"""What a learner's figures are set beside: the literature's figures, each with its source and
conditions (data/bench/published.json), and the course's reference run of
`python -m helpers.bench --reference` (data/bench/reference.json)."""
from __future__ import annotations

import json

from helpers.course.settings import DATA

PUBLISHED = DATA / "bench" / "published.json"
REFERENCE = DATA / "bench" / "reference.json"


def published() -> dict:
    """The published figures: {"figures": [{id, value, unit, what, conditions, source, ...}]}."""
    return json.loads(PUBLISHED.read_text())


def reference_run() -> dict:
    """The course's reference run, as the instructors' JSON ({} where there is none)."""
    return json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
