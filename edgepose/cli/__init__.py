"""Command-line entry points: thin argparse layers over the library."""
