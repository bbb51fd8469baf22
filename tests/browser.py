"""Shared by the console tests: Debian's Chromium (never `playwright install`) and how it is launched.

As root, Chromium needs --no-sandbox; without the background-networking flags it keeps trying to reach
Google's hosts, which this machine's closed network refuses. ``Watch`` is what every console test holds a
page to: nothing leaves localhost, no JavaScript error (uncaught, or console.error), no unexpected dialog."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "server" / "artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

# Chromium reports each failed HTTP response in the page console, e.g. "Failed to load resource: the server
# responded with a status of 409 (Conflict)"; a test that provokes one on purpose names the status.
HTTP_FAILURE = re.compile(r"Failed to load resource: the server responded with a status of (\d{3})")


@dataclass
class Watch:
    """What a page did besides what the test asked: requests to other hosts, JavaScript errors (uncaught
    ones and console.error messages alike), dialogs. ``attach`` it to a page before it loads."""

    foreign_requests: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    expected_failures: set[tuple[int, str]] = field(default_factory=set)  # (status, path) caused on purpose

    def expect_failure(self, status: int, path: str) -> None:
        """An HTTP ``status`` from ``path`` is what the test provokes: Chromium's console line for it is no error."""
        self.expected_failures.add((status, path))

    def attach(self, page: Any, accept_confirm: bool = False) -> None:
        def on_request(request: Any) -> None:
            host = urlsplit(request.url).hostname
            if host and host not in LOCAL_HOSTS:
                self.foreign_requests.append(request.url)

        def on_console(msg: Any) -> None:
            if msg.type == "error":
                self.console_errors.append(f"{msg.text} @ {msg.location.get('url', '')}")

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            if accept_confirm and dialog.type == "confirm":
                dialog.accept()
            else:
                dialog.dismiss()

        page.on("request", on_request)
        page.on("console", on_console)
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        page.on("dialog", on_dialog)

    def js_errors(self) -> list[str]:
        unexplained = []
        for text in self.console_errors:
            m = HTTP_FAILURE.match(text)
            url = text.rpartition(" @ ")[2]
            if not (m and any(int(m.group(1)) == st and urlsplit(url).path == path for st, path in self.expected_failures)):
                unexplained.append(text)
        return self.page_errors + unexplained

    def assert_clean(self, expected_dialogs: int = 0) -> None:
        assert not self.foreign_requests, f"requests left localhost: {self.foreign_requests}"
        assert not self.js_errors(), f"JavaScript errors in the page: {self.js_errors()}"
        assert len(self.dialogs) == expected_dialogs, f"unexpected dialogs: {self.dialogs}"


def screenshot(page: Any, name: str, full_page: bool = False) -> None:
    """Save what the page shows to tests/server/artifacts/NAME.png (gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)
