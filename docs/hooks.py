"""MkDocs hooks: pages made from what the repository already holds, so they never drift.

* ``guide.md``: README.md, with its picture paths (``docs/img/...``) made relative to the site
  and its links to other files of the repository turned into plain text (they are not pages).
* ``cli.md``: ``handgrad --help`` and every command's ``--help``, from the argparse parser itself.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_MARKER = "<!-- README -->"
CLI_MARKER = "<!-- CLI HELP -->"


def readme_as_page(text: str) -> str:
    """README.md for the site: ``](docs/x)`` -> ``](x)``; ``[text](other/file)`` -> ``text
    (`other/file`)``; web links and anchors stay."""
    text = text.replace("](docs/", "](")

    def unlink(match: re.Match) -> str:
        label, target = match.group(1), match.group(2)
        if re.match(r"^(https?:|mailto:|#|img/)", target):
            return match.group(0)
        return f"{label} (`{target}`)"

    return re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", unlink, text)


def cli_help() -> str:
    """``handgrad --help`` and then each command's help, as code blocks under headings."""
    import argparse

    from handgrad.cli import build_parser

    parser = build_parser()
    parts = ["## handgrad", "```text", parser.format_help().rstrip(), "```"]
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        parts += [f"## handgrad {name}", "```text", sub.format_help().rstrip(), "```"]
    return "\n\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if README_MARKER in markdown:
        markdown = markdown.replace(README_MARKER, readme_as_page((ROOT / "README.md").read_text(encoding="utf-8")))
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_help())
    return markdown
