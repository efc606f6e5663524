"""The ``ctdna`` command line: argument parsing and exit codes only."""
