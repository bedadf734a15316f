"""Command-line flags generated from dataclasses: one flag per field of ``hpo.Task`` and of a
strategy's config, typed by the field's annotation, documented from the class's docstring.

The ``hpo`` command and the study scripts both build their flags here, so a field added to
``Task`` (or to a config) is a flag everywhere at once. Every generated flag defaults to "not
given" (``None``): ``values(args, ...)`` returns only the fields the user set, which override
a base (``Task()``, or the task ``--task package.module:function`` returns).

Why not a library that builds CLIs from dataclasses (``tyro``, ``jsonargparse``)? Measured with
``python -X importtime`` here: argparse imports in 6 ms, tyro in 67 ms, jsonargparse in 56 ms —
small beside torch — but neither handles fields typed ``Any`` whose value is a name, an import
path or a callable (``Task.model``), nor the configs' preset defaults, and both replace the
one-line-and-exit-2 errors the command promises. Sixty lines of argparse do.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
import typing
from collections.abc import Mapping, Sequence
from typing import Any


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit code 2 (no usage dump)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
    """Show "(default: X)" after options that have a meaningful default and do not say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" not in text
            and default not in (None, False, [], argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def add_dataclass_flags(
    group: Any,
    cls: type,
    *,
    prefix: str = "",
    skip: Sequence[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add ``--<prefix><field>`` for every init field of the dataclass ``cls`` to ``group``.

    Args:
        group: An ``argparse`` parser or argument group.
        cls: The dataclass.
        prefix: Before every flag and ``dest`` (``"pbt."`` gives ``--pbt.population``).
        skip: Fields that get no flag.
        defaults: The default shown in the help where it is not the dataclass's.

    Flags by annotation: ``bool`` -> ``--x`` / ``--no-x``; ``int``, ``float``, ``str`` (and
    their ``| None``, where ``none`` gives ``None``) -> one value; tuples -> comma-separated
    values or a Python literal; a mapping -> ``--<prefix><singular>-option KEY=VALUE``,
    repeatable; anything else -> a string (a name or an import path).
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    shown = dict(defaults or {})
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip:
            continue
        kind = _kind(hints.get(f.name, Any))
        dest = f"{prefix}{f.name}"
        flag = "--" + dest.replace("_", "-")
        default = shown.get(f.name, _default(f))
        text = docs.get(f.name, "")
        # the default, unless the description says it already (and the command keeps it)
        if default is not dataclasses.MISSING and ("default" not in text or f.name in shown):
            text = f"{text} (default: {_show(default)})".strip()
        if kind == "bool":
            group.add_argument(
                flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        elif kind == "mapping":
            flag = "--" + (prefix + f.name.removesuffix("s").replace("_options", "_option"))
            group.add_argument(
                flag.replace("_", "-"),
                dest=dest,
                action="append",
                default=None,
                metavar="KEY=VALUE",
                type=_key_value,
                help=f"{text} (repeatable)",
            )
        else:
            group.add_argument(
                flag,
                dest=dest,
                default=None,
                type=_parser(kind, flag),
                help=text,
                metavar=f.name.upper(),
            )


def values(args: argparse.Namespace, cls: type, *, prefix: str = "") -> dict[str, Any]:
    """The fields of ``cls`` the user set on the command line (``dest`` ``prefix + name``)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f"{prefix}{f.name}", None)
        if value is None:
            continue
        if isinstance(value, list) and value and isinstance(value[0], tuple):  # KEY=VALUE pairs
            value = dict(value)
        out[f.name] = value
    return out


def parse_value(cls: type, name: str, text: str) -> Any:
    """The value of field ``name`` of ``cls`` written as ``text`` (``--set NAME=TEXT``), parsed
    by the field's annotation.

    Raises:
        ValueError: ``name`` is no field of ``cls`` (the message lists them) or ``text`` does
            not parse.

    Example:
        >>> from strategies import PBTConfig
        >>> parse_value(PBTConfig, "population", "4"), parse_value(PBTConfig, "factors", "1.5,0.5")
        (4, (1.5, 0.5))
    """
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    if name not in names:
        raise ValueError(f"{cls.__name__} has no option {name!r}; it has {sorted(names)}.")
    kind = _kind(typing.get_type_hints(cls).get(name, Any))
    try:
        if kind == "bool":
            return _bool(text)
        if kind == "mapping":
            return dict(_key_value(p) for p in text.split(","))
        return _parser(kind, f"{name}=")(text)
    except argparse.ArgumentTypeError as err:  # the flags' parsers speak argparse
        raise ValueError(str(err)) from err


def field_docs(cls: type) -> dict[str, str]:
    """Each field's description from the ``Args:`` section of the class's docstring (the first
    sentence, preset markers dropped)."""
    doc = cls.__doc__ or ""
    out: dict[str, str] = {}
    if "Args:" not in doc:
        return out
    body = doc.split("Args:", 1)[1]
    for match in re.finditer(r"^\s{8}(\w+): (.+?)(?=^\s{8}\w+: |\n\s*\n|\Z)", body, re.M | re.S):
        text = " ".join(match.group(2).split()).replace("*Preset.* ", "")
        text = re.split(r"(?<!e\.g\.)(?<!i\.e\.)(?<=\.) ", text, maxsplit=1)[0]
        out[match.group(1)] = text.replace("``", "").replace("%", "%%")
    return out


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _kind(hint: Any) -> str:
    """``bool``, ``int``, ``float``, ``str``, ``int?`` (optional)..., ``tuple``, ``mapping`` or
    ``any``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    origin = typing.get_origin(hint)
    if optional and len(args) == 1:
        inner = _kind(args[0])
        return inner if inner in ("tuple", "any", "bool") else inner + "?"
    if hint is bool:
        return "bool"
    if hint in (int, float, str):
        return hint.__name__
    if origin is tuple or hint is tuple:
        return "tuple"
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return "mapping"
    return "any"


def _parser(kind: str, flag: str) -> Any:
    def parse(text: str) -> Any:
        base = kind.rstrip("?")
        if kind.endswith("?") and text.lower() == "none":
            return None
        try:
            if base == "int":
                return int(text)
            if base == "float":
                return float(text)
            if base == "tuple":
                return _sequence(text)
            if base == "any" and text.lower() == "none":
                return None
            return text
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {base} value: {text!r}") from None

    parse.__name__ = kind.rstrip("?")
    return parse


def _sequence(text: str) -> tuple[Any, ...]:
    """``"0.1,0.01"`` or ``"(0.1, 0.01)"`` -> ``(0.1, 0.01)``; names stay strings."""
    try:
        value = ast.literal_eval(text)
        return tuple(value) if isinstance(value, (list, tuple)) else (value,)
    except (ValueError, SyntaxError):
        return tuple(_literal(t.strip()) for t in text.split(",") if t.strip())


def _literal(text: str) -> Any:
    if text.strip().lower() in ("inf", "+inf", "-inf", "nan", "infinity", "-infinity"):
        return float(text)  # a number, so that the field's check names the value
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, but got {text!r}")
    return key.strip().replace("-", "_"), _literal(value)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, but got {text!r}")


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _show(value: Any) -> str:
    if repr(value) == "<from preset>":
        return "from the preset"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "none"
    if isinstance(value, Mapping):
        return "none" if not value else ",".join(f"{k}={v}" for k, v in value.items())
    return str(value).replace("%", "%%")
