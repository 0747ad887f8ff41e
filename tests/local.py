"""The test servers' addresses the crawler is allowed to reach.

The crawler refuses loopback and private addresses by default (docs/security.md); every test
server here listens on 127.0.0.1, so the tests that crawl one allow that address alone.
Other loopback addresses (`localhost`, 127.0.0.2, ::1) stay refused.
"""

from __future__ import annotations

LOCAL_SITE: tuple[str, ...] = ("127.0.0.1",)
