"""Test plugins shared by every tier."""
pytest_plugins = ["tests.fixtures.kafka"]
