"""Command-line applications: argument parsing first, heavy imports after."""
