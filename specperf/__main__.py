"""`python -m specperf …` runs the command-line tool (the same as the `specperf` script)."""
from specperf.cli.main import main

if __name__ == "__main__":
    main()
