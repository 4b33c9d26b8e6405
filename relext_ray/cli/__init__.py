"""The commands: argument parsing and printing only, one module per command."""
