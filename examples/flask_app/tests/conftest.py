"""pytest set-up for the example app: import the app and the bindings from
the source tree, and build an app on temporary stores.

AUDIOPIPE_LIBRARY must point at a built libaudiopipe.so.
"""

import os
import sys

import pytest

APP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIR = os.path.dirname(os.path.dirname(APP_DIR))
CASES_DIR = os.path.join(SOURCE_DIR, "tests", "data", "cases")

sys.path.insert(0, APP_DIR)
sys.path.insert(0, os.path.join(SOURCE_DIR, "bindings", "python"))

SECRET = "t" * 48


def store_settings(directory, base_url="http://localhost"):
    """Return configuration keys for stores under `directory`."""
    return {
        "metadata.uri": f"sqlite://{directory}/meta.db",
        "objects.uri": f"file://{directory}/objects",
        "signing.secret": SECRET,
        "public.base_url": base_url,
    }


@pytest.fixture
def case():
    """Return the path of a shared hard input by file name."""
    return lambda name: os.path.join(CASES_DIR, name)


@pytest.fixture
def client(tmp_path):
    """An audiopipe.Client on temporary stores, shared by app and worker."""
    import audiopipe

    with audiopipe.Client(store_settings(tmp_path), use_environment=False) as opened:
        yield opened


@pytest.fixture
def app(client):
    from app import create_app

    flask_app = create_app(client=client)
    flask_app.testing = True
    return flask_app
