"""Run the loyalty command with `python -m tools`."""
from tools.entry import main

main()
