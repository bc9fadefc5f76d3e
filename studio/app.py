"""Studio entry point (placeholder until the Gradio app lands): runs the zero-shot CLI on the built-in data."""
from __future__ import annotations


def main(argv: list[str]) -> int:
    from backend.cli import main as cli_main

    return cli_main(["eval", "builtin"] + list(argv))
