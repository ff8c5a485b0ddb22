"""Command-line interface (Typer). One module per command group; ``main`` wires them up and
turns exceptions into one line, ``options`` resolves options into the config."""
