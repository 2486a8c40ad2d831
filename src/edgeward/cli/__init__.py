"""The command line: parse, call, print. Errors become exit codes in main.py only."""
