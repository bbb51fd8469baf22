"""The safety tests use ``fake_server`` and ``browser`` from tests/conftest.py and add a fake
OpenAI-compatible peer that records what it is sent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from openai_peer import Peer
from servers import serve


@pytest.fixture
def peer() -> Iterator[tuple[str, Peer]]:
    p = Peer()
    with serve(p.app) as url:
        yield f"{url}/v1", p
