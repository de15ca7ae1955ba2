"""Tests run against the real Docker Engine, offline: nothing is ever pulled."""
import os

os.environ["DOCKERCOURSE_OFFLINE"] = "1"

import pytest

from helpers.engine import EngineUnavailable, connect
from helpers.labels import clean_up_all


@pytest.fixture(scope="session")
def client():
    try:
        c = connect()
    except EngineUnavailable as exc:
        pytest.exit(f"The tests need a running Docker Engine (./course test starts one).\n{exc}",
                    returncode=3)
    yield c
    clean_up_all(c)


@pytest.fixture(scope="session")
def kit(client):
    """Every course image present (built offline if need be), as {short name: ref}."""
    from helpers.images import catalogue, ensure_images
    ensure_images(client, allow_pull=False)
    return {name: img.ref for name, img in catalogue().items()}
