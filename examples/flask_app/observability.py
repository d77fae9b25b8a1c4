"""Sentry set-up for the example app and worker.

Sentry starts only when SENTRY_DSN is set and sentry_sdk is importable
(Debian: python3-sentry-sdk). Events carry the release (APP_RELEASE, else
the bindings' version) and the environment (APP_ENVIRONMENT, default
"development"). The C library's reportable errors (I/O failures,
unavailable backends, encoder failures) reach Sentry through
audiopipe.set_error_hook.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Optional

import audiopipe

log = logging.getLogger("audiopipe_example")


def report_library_error(
    capture: Callable[[BaseException], Any]
) -> Callable[[audiopipe.AudiopipeError], None]:
    """Build an error hook that passes each C error to ``capture``."""

    def hook(error: audiopipe.AudiopipeError) -> None:
        capture(error)

    return hook


def init_sentry(sentry: Optional[Any] = None) -> bool:
    """Start Sentry from SENTRY_DSN and route C errors to it.

    ``sentry`` replaces the sentry_sdk module (tests pass a stand-in).
    Returns whether Sentry was started.
    """
    dsn = os.environ.get("SENTRY_DSN")
    if not dsn:
        return False
    if sentry is None:
        try:
            import sentry_sdk as sentry  # type: ignore[no-redef]
        except ImportError:
            log.warning("sentry_disabled reason=sentry_sdk_not_installed")
            return False

    integrations = []
    try:
        from sentry_sdk.integrations.flask import FlaskIntegration

        integrations.append(FlaskIntegration())
    except ImportError:
        pass

    sentry.init(
        dsn=dsn,
        release=os.environ.get("APP_RELEASE", f"audiopipe@{audiopipe.__version__}"),
        environment=os.environ.get("APP_ENVIRONMENT", "development"),
        integrations=integrations,
    )
    audiopipe.set_error_hook(report_library_error(sentry.capture_exception))
    return True
