"""docs/reference.md, generated from the code: the project's whole interface in one page.

`python -m drift_pipeline.reference` writes it (`make reference`); `--check` exits 1 when the
file differs from what the code gives (tests/test_reference.py runs the same comparison).
Sources: the CLI's argparse tree (`cli.build_parser`), the Makefile's documented targets, the
settings list (`settings.SETTINGS`), the home's layout (`settings.HOME_LAYOUT`), the raw tables
(`warehouse.schema.RAW_TABLES`) and the dbt models' YAML (descriptions and columns).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from drift_pipeline.settings import HOME_LAYOUT, SETTINGS
from drift_pipeline.warehouse.schema import RAW_TABLES

PROJECT_DIR = Path(__file__).resolve().parent.parent
REFERENCE = PROJECT_DIR / "docs" / "reference.md"
MODEL_LAYERS = ("marts", "intermediate", "staging")


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _options(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:  # argparse has no public accessor for a parser's arguments
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        names = ", ".join(action.option_strings) or action.metavar or action.dest
        if action.option_strings and action.nargs != 0:
            names += f" {action.metavar or action.dest.upper()}"
        rows.append(f"| `{names}` | {_one_line(action.help)} |")
    return rows


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    lines: list[str] = []
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for sub in subparsers:
        helps = {choice.dest: choice.help for choice in sub._choices_actions}
        for name, child in sub.choices.items():
            command = f"{prefix} {name}"
            lines.append(f"### `{command}`")
            lines.append(_one_line(helps.get(name) or child.description) or "")
            options = _options(child)
            if options:
                lines += ["", "| argument | meaning |", "|---|---|", *options]
            lines.append("")
            lines += _commands(child, command)
    return lines


def _make_targets() -> list[str]:
    """Targets whose rule is preceded by a `## ` comment in the Makefile."""
    rows, comment = [], []
    for line in (PROJECT_DIR / "Makefile").read_text().splitlines():
        if line.startswith("## "):
            comment.append(line[3:].strip())
            continue
        match = re.match(r"^([a-z][a-z-]*):", line)
        if match and comment:
            rows.append(f"| `make {match.group(1)}` | {_one_line(' '.join(comment))} |")
        comment = []
    return rows


def _models(layer: str) -> list[dict]:
    models = []
    for path in sorted((PROJECT_DIR / "dbt_project" / "models" / layer).glob("*.yml")):
        models += (yaml.safe_load(path.read_text()) or {}).get("models") or []
    return sorted(models, key=lambda m: m["name"])


def render() -> str:
    from drift_pipeline.cli import build_parser

    parser = build_parser()
    lines = [
        "# Reference",
        "",
        "Generated from the code by `make reference` (`python -m drift_pipeline.reference`); "
        "`tests/test_reference.py` fails when this file is stale. Do not edit by hand.",
        "",
        "## Commands",
        "",
        "| command | what it does |",
        "|---|---|",
        *_make_targets(),
        "",
        f"`drift-pipeline` ({_one_line(parser.description)}): every command takes `--help`; a usage "
        "error is one line on stderr and exit code 2.",
        "",
        "| argument | meaning |",
        "|---|---|",
        *_options(parser),
        "",
        *_commands(parser, "drift-pipeline"),
        "## Environment",
        "",
        "Read once by each process (`Settings.from_env`). Secrets reach Dagster's resources only as "
        "`EnvVar`s: the UI shows the variable's name, never its value.",
        "",
        "| variable | meaning | default | secret |",
        "|---|---|---|---|",
        *(f"| `{s.env}` | {_one_line(s.meaning)} | {s.default} | {'yes' if s.secret else ''} |" for s in SETTINGS),
        "",
        "## Files under `$DRIFT_PIPELINE_HOME`",
        "",
        "| path | what it holds |",
        "|---|---|",
        *(f"| `{path}` | {_one_line(meaning)} |" for path, meaning in HOME_LAYOUT),
        "",
        "## Raw tables (`warehouse.duckdb`, schema `raw`)",
        "",
        "Times are naive UTC `TIMESTAMP`s; every table but the job logs carries `org_id`. Rows are "
        "upserted on their key.",
        "",
    ]
    for table in RAW_TABLES:
        lines += [f"### `{table.name}`", "", f"Key: `{', '.join(table.key)}`.", "",
                  "| column | type |", "|---|---|",
                  *(f"| `{name}` | {sql_type.replace(' NOT NULL', '')} |" for name, sql_type in table.columns), ""]
    lines += ["## dbt models", "",
              "Definitions of each metric and why: `dbt_project/DECISIONLOG.md`. The serving copy "
              "publishes the `marts` schema.", ""]
    for layer in MODEL_LAYERS:
        for model in _models(layer):
            lines += [f"### `{layer}.{model['name']}`" if layer == "marts" else f"### `{model['name']}` ({layer})", "",
                      _one_line(model.get("description")), ""]
            columns = model.get("columns") or []
            if columns:
                lines += ["| column | meaning |", "|---|---|",
                          *(f"| `{c['name']}` | {_one_line(c.get('description'))} |" for c in columns), ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="exit 1 if docs/reference.md is stale")
    options = args.parse_args(argv)
    text = render()
    if options.check:
        current = REFERENCE.read_text() if REFERENCE.exists() else ""
        if current != text:
            print(f"{REFERENCE} is stale: run `make reference`", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
