"""Run the loyalty command with `python -m tools`."""
from tools.cli import main

main()
