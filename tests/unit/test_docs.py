"""The repository documents itself: no pointer to spec files outside it, and the README's examples hold."""
from __future__ import annotations

import os
import re
from pathlib import Path

import orjson
import pytest

from projections.partition import MemoryStore, PartitionFold
from projections.documents import customer_view
from schemas.events import EVENT_TYPES
from schemas.policy import load_policy
from schemas.validate import validate_record

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# Generated or installed, not part of the repository (as in .gitignore).
_SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", "build", "node_modules"}
# Built from pieces so that this file does not match itself.
_OUTSIDE = re.compile("|".join([
    re.escape("CONTRACT" + ".md"), re.escape("BROKER" + ".md"), r"(?i:contract\s+sections?\s+\d)",
    re.escape(".." + "/shared"),
]))


def _repository_files():
    """Yield every text file of the repository (skipping generated and installed ones)."""
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = Path(folder) / name
            try:
                yield path, path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # binary


def test_no_file_points_at_spec_files_outside_the_repository():
    found = [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)}"
             for path, text in _repository_files() for match in _OUTSIDE.finditer(text)]
    assert not found, "the repository must stand alone:\n" + "\n".join(found)


def test_the_outside_pattern_catches_what_it_should():
    for text in ("see CONTRACT" + ".md", "(CONTRACT" + " section 3)", "contract" + " sections 1-2", "../" + "shared/x",
                 "BROKER" + ".md"):
        assert _OUTSIDE.search(text), text
    assert not _OUTSIDE.search("docs/embedded-broker.md and the contract's JSON")


def test_every_link_to_a_doc_file_resolves():
    for path in [README, *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path.name} links to a missing {target}"


def _anchor(heading: str) -> str:
    """Return the anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """Return the anchors of a Markdown file's headings (outside code blocks)."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_anchor(heading) for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def test_the_anchor_of_a_heading_is_the_one_github_makes():
    assert _anchor("Query answers (`loyalty query ... --json`, and the HTTP API)") == \
        "query-answers-loyalty-query----json-and-the-http-api"
    assert _anchor("Explain: `loyalty explain` and `GET /customers/{id}/explain`") == \
        "explain-loyalty-explain-and-get-customersidexplain"


def test_every_link_to_a_heading_resolves():
    for path in [README, *DOCS.glob("*.md")]:
        for target, anchor in re.findall(r"\]\(([^)#:]*)#([^)]+)\)", path.read_text()):
            linked = (path.parent / target).resolve() if target else path
            assert linked.is_file() and anchor in _anchors(linked), f"{path.name} links to a missing {target}#{anchor}"


def test_the_readme_is_at_most_300_lines():
    assert len(README.read_text().splitlines()) <= 300


def test_the_readme_guarantees_name_a_mechanism_and_existing_tests_for_each_guarantee_of_the_full_table():
    readme = README.read_text().split("\n## Guarantees\n", 1)[1].split("\n## ", 1)[0]
    rows = [row.split(" | ") for row in re.findall(r"^\| (.+) \|$", readme, flags=re.MULTILINE)][1:]
    assert rows and all(len(row) == 3 for row in rows)
    for guarantee, mechanism, proved_by in rows:
        tests = re.findall(r"`(tests/[\w/]+\.py)(?:::\w+)?`", proved_by)
        assert len(mechanism.split()) >= 5 and tests, guarantee
        assert all((ROOT / test).is_file() for test in tests), (guarantee, tests)
    full = (DOCS / "guarantees.md").read_text()
    in_full = re.findall(r"^\| \*\*(.+?)\*\*", full, flags=re.MULTILINE)
    assert len(in_full) == len(rows)
    for (guarantee, _, proved_by), (full_guarantee, full_row) in zip(
            rows, zip(in_full, re.findall(r"^\| \*\*.+$", full, flags=re.MULTILINE))):
        assert guarantee.startswith(full_guarantee), (guarantee, full_guarantee)
        # The short table cites no test the full table does not.
        for test in re.findall(r"`(tests/[\w/]+\.py)", proved_by):
            assert test in full_row, (guarantee, test)


def test_each_hop_of_the_life_of_one_event_names_a_function_that_exists():
    import importlib
    section = README.read_text().split("\n## The life of one event\n", 1)[1].split("\n## ", 1)[0]
    hops = re.findall(r"`([\w./]+):([\w.]+)`", section)
    assert len(hops) >= 10
    for module, name in hops:
        module = module.removesuffix(".py").replace("/", ".")
        found = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part, None)
            assert found is not None, f"{module}:{name}"
        assert callable(found), f"{module}:{name}"


def test_the_readme_names_every_section_of_the_policy_file():
    from schemas.policy import Policy
    config = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    sections = {name for name, field in Policy.model_fields.items() if hasattr(field.annotation, "model_fields")}
    named = set(re.findall(r"`\[(\w+)(?:\.\*)?\]`", config))
    assert sections and sections <= named, sections - named


def test_every_event_type_is_documented_with_its_payload():
    events = (DOCS / "events.md").read_text()
    for event_type, model in EVENT_TYPES.items():
        row = next((line for line in events.splitlines() if line.startswith(f"| `{event_type}` |")), None)
        assert row is not None, f"{event_type} is not in docs/events.md"
        payload = model.model_fields["payload"].annotation
        for name, field in payload.model_fields.items():
            assert f"`{field.alias or name}`" in row, f"{event_type}: payload field {field.alias or name}"


def test_every_exported_metric_is_documented():
    from streams.metrics import LoyaltyMetrics
    outputs = (DOCS / "outputs.md").read_text()
    names = {family.name for family in LoyaltyMetrics().registry.collect()}
    # The rows of the one table under "## Metrics": a row after a paragraph would render as text.
    section = outputs[outputs.index("## Metrics"):]
    table = section[section.index("\n|"):].split("\n\n", 1)[0]
    missing = [n for n in names if f"| `{n}` |" not in table and f"| `{n}_total` |" not in table]
    assert not missing, f"metrics missing from the table of docs/outputs.md: {missing}"


def _readme_example() -> list[bytes]:
    """Return the lines of the README's JSON-lines example."""
    block = re.search(r"```json\n(.*?)```", README.read_text(), re.S)
    assert block, "the README shows an example input file"
    return [line.encode() for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.parametrize("doc", [README, DOCS / "events.md"])
def test_the_example_input_is_valid(doc):
    policy = load_policy(None)
    for line in re.search(r"```json\n(.*?)```", doc.read_text(), re.S).group(1).splitlines():
        raw = line.encode()
        key = orjson.loads(raw)["customer_id"]
        assert not hasattr(validate_record(raw, key.encode() if key else None, policy), "reason"), line


def test_the_readme_example_customer_ends_as_the_readme_says_on_the_event_clock():
    """The README: 1288 points, premium, potential (so a reader on the event clock sees exactly that)."""
    policy = load_policy(None)
    fold = PartitionFold(MemoryStore(), policy)
    for raw in _readme_example():
        key = orjson.loads(raw)["customer_id"]
        fold.apply(validate_record(raw, key.encode() if key else None, policy))
    view = customer_view(fold.store["c1"])
    assert (view["points_balance"], view["tier"], view["status"], view["spend_12m"]) == (
        1288, "premium", "potential", "1288.00")
    text = " ".join(README.read_text().split())
    assert "shows 1288 points" in text and "tier premium (spend 12m 1288.00), status potential" in text


def test_the_walk_through_sends_a_synthetic_history_that_ends_now_to_the_wall_clock_worker():
    text = README.read_text()
    walk = text[text.index("# a local, production-shaped setup"):text.index("loyalty demo")]
    assert "loyalty worker --clock event" not in walk and "--clock wall" in walk
    assert re.search(r"loyalty produce --synthetic \d+ .*--end now", walk)
