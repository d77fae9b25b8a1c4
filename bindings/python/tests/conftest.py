"""pytest set-up for the bindings tests: import the package from the
source tree, and name the shared test inputs.

AUDIOPIPE_LIBRARY must point at a built libaudiopipe.so (ctest sets it
to the build folder's library).
"""

import os
import sys

import pytest

BINDINGS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIR = os.path.dirname(os.path.dirname(BINDINGS_DIR))
CASES_DIR = os.path.join(SOURCE_DIR, "tests", "data", "cases")

sys.path.insert(0, BINDINGS_DIR)


@pytest.fixture
def case():
    """Return the path of a shared hard input by file name."""

    def path(name: str) -> str:
        return os.path.join(CASES_DIR, name)

    return path
