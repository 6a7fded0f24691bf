"""A worker serves exactly the routes of the README's HTTP table: none of Faust's own pages."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.app import create_app
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\{[^}]*\}")


def readme_routes() -> set[str]:
    """The paths of the README's HTTP API table, placeholders as {}."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## HTTP API", 1)[1].split("\n## ", 1)[0]
    paths = set()
    for method, path, more in re.findall(r"^\| `(GET|POST) (/[^`?\s]*)[^`]*`((?:, `/[^`]*`)*)", section,
                                         flags=re.MULTILINE):
        paths.add(path)
        # "`POST /a/{id}/x`, `/y`": siblings of the last segment
        paths.update(path.rsplit("/", 1)[0] + sibling for sibling in re.findall(r"`(/[^`]*)`", more))
    return {PLACEHOLDER.sub("{}", path) for path in paths}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> set[tuple[str, str]]:
    """(method, path) of every route a worker's web server has, built as `loyalty worker` builds it."""
    settings = Settings(broker="kafka://127.0.0.1:1", data_dir=tmp_path_factory.mktemp("data"), app_id="routes-test")
    app = create_app(settings)
    app.web.init_server()  # what the worker does as its web server starts: blueprints and pages
    return {(route.method, PLACEHOLDER.sub("{}", route.resource.canonical))
            for route in app.web.web_app.router.routes()}


def test_the_worker_serves_exactly_the_readme_routes(served):
    documented = readme_routes()
    assert {"/customers/{}", "/segments", "/stats", "/metrics", "/health"} <= documented
    assert {path for _, path in served} == documented


def test_only_reads_and_the_checkout_commands_are_served(served):
    assert {method for method, _ in served} == {"GET", "HEAD", "POST"}
    assert {path for method, path in served if method == "POST"} == {
        "/customers/{}/redemptions", "/customers/{}/claims", "/customers/{}/holds", "/customers/{}/holds/{}/capture",
        "/customers/{}/holds/{}/release"}


def test_no_faust_page_is_served(served):
    paths = {path for _, path in served}
    assert not any(path == "/" or path.startswith(("/table", "/router", "/graph", "/stats/", "/performance"))
                   for path in paths), paths
