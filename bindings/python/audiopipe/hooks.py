"""Forward the C library's reportable errors to Python (ap_set_error_hook).

The library calls the hook for errors that are not plain validation
failures of caller input (I/O failures, unavailable backends, encoder
failures, internal errors), so a host can send them to Sentry or a log.
The hook may run on any library thread, concurrently with itself; ctypes
takes the GIL for each call.
"""

from __future__ import annotations

import threading
from typing import Callable, List, Optional

from audiopipe import _native
from audiopipe._native import lib
from audiopipe.errors import AudiopipeError, from_code

ErrorHook = Callable[[AudiopipeError], None]

# A CFUNCTYPE object must outlive every C call of it. The library copies
# the hook pointer under its own lock and calls it after releasing that
# lock, so a thread may still be inside a hook that was just replaced.
# Every hook ever installed therefore stays referenced here: one small
# object per set_error_hook call, which hosts make once at start-up.
_lock = threading.Lock()
_installed: List[object] = []


def set_error_hook(hook: Optional[ErrorHook]) -> None:
    """Install ``hook`` to receive each reportable C error as an
    AudiopipeError instance, or remove the hook with None.

    The hook must not call back into libaudiopipe, and an exception it
    raises is swallowed (it cannot cross the C frames).
    """
    if hook is None:
        with _lock:
            lib.ap_set_error_hook(_native.ERROR_HOOK_FUNCTION(), None)
        return

    def relay(_user_data: object, error_pointer: object) -> None:
        error = error_pointer.contents  # type: ignore[attr-defined]
        exception = from_code(
            int(error.code),
            int(error.domain),
            error.message.decode("utf-8", "replace"),
        )
        try:
            hook(exception)
        except Exception:  # noqa: BLE001 - must not unwind into C
            pass

    function = _native.ERROR_HOOK_FUNCTION(relay)
    with _lock:
        _installed.append(function)
        lib.ap_set_error_hook(function, None)
