"""Test plugins shared by every tier."""
pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.promtool"]
