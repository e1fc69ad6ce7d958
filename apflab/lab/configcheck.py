"""The chosen target's lab.yaml entry, checked once at session start, before any test.

labgrid makes a target's drivers when a test first asks for them, so a wrong key would
otherwise fail every test with a traceback (or be dropped with a warning: labgrid keeps
only the keys a driver has). Here every resource and driver of the target must be known,
every key must be one of its fields, and every value must pass the field's own attrs
converter and validator (the drivers say what they accept, apflab.lab.keys); the target
must have a driver that gives a Guest. The first mistake is a :class:`ConfigError` of
one line naming the target, the driver, the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
from typing import Any

import attr
from labgrid.factory import target_factory

from apflab.lab.guestprotocol import GuestProtocol

#: Keys labgrid itself reads from a driver's or resource's entry.
LABGRID_KEYS = frozenset({"name", "bindings"})
#: Fields labgrid sets itself.
LABGRID_FIELDS = frozenset({"target", "name", "state", "avail"})


class ConfigError(ValueError):
    """A mistake in lab.yaml: one line that says what is wrong and what is allowed."""


def check_names(env: Any) -> list[str]:
    """The environment's target names; one that YAML read as a number is a mistake."""
    names = list(env.config.get_targets())
    odd = [n for n in names if not isinstance(n, str)]
    if odd:
        raise ConfigError(
            f"{env.config_file}: target name {odd[0]!r} is not a string (YAML read it as {type(odd[0]).__name__}); "
            f"quote it: '{odd[0]}'"
        )
    return names


def check_target(env: Any, name: str) -> None:
    """Check target ``name`` of labgrid environment ``env`` (see the module's doc)."""
    where = f"target {name!r} in {env.config_file}"
    config = env.config.get_targets()[name]
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: expected `drivers:` (and `resources:`) under it, got {config!r}")
    drivers = []
    for kind, registry in (("resource", target_factory.resources), ("driver", target_factory.drivers)):
        for cls_name, args in _entries(where, kind, config.get(f"{kind}s")):
            cls = registry.get(cls_name)
            if cls is None:
                raise ConfigError(f"{where}: unknown {kind} {cls_name!r}{_did_you_mean(cls_name, registry)}")
            _check_keys(f"{where}: {cls_name}", cls, args)
            drivers.append(cls)
    if not any(issubclass(cls, GuestProtocol) for cls in drivers):
        givers = sorted(n for n, c in target_factory.drivers.items() if issubclass(c, GuestProtocol))
        raise ConfigError(f"{where}: no driver gives a guest to test; add one of {', '.join(givers)}")


def _entries(where: str, kind: str, section: Any) -> list[tuple[str, dict]]:
    """(class name, keys) of a ``drivers:`` or ``resources:`` section, in labgrid's two
    spellings: a mapping of class to keys, or a list of one-entry mappings."""
    if section is None:
        return []
    if isinstance(section, dict):
        items = list(section.items())
    elif isinstance(section, list) and all(isinstance(i, dict) and len(i) == 1 for i in section):
        items = [next(iter(i.items())) for i in section]
    else:
        raise ConfigError(f"{where}: {kind}s must map each class to its keys, not {section!r}")
    for cls_name, args in items:
        if not isinstance(args, dict):
            raise ConfigError(f"{where}: {cls_name}: {args!r} is not allowed: give its keys (`key: value`) or {{}}")
    return [(str(cls_name), args) for cls_name, args in items]


def _did_you_mean(name: str, registry: dict[str, type]) -> str:
    close = difflib.get_close_matches(name, list(registry), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"{hint} (labgrid's own and those of `imports:`, e.g. apflab.lab)"


def _check_keys(where: str, cls: type, args: dict) -> None:
    fields = {f.name: f for f in attr.fields(cls) if f.init and f.name not in LABGRID_FIELDS}
    for key, value in args.items():
        if key in LABGRID_KEYS:
            continue
        field = fields.get(key)
        if field is None:
            raise ConfigError(f"{where} has no key {key!r}; its keys: {', '.join(sorted(fields)) or 'none'}")
        try:
            if field.converter is not None:
                value = field.converter(value)
            if field.validator is not None:
                field.validator(None, field, value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} {key}: {_plain(args[key])!r} is not allowed: {_allowed(exc)}") from None
    missing = sorted(k for k, f in fields.items() if f.default is attr.NOTHING and k not in args)
    if missing:
        raise ConfigError(f"{where} needs the key {missing[0]!r}")


def _plain(value: Any) -> Any:
    """A value as lab.yaml wrote it (labgrid's loader reads mappings as OrderedDicts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}


def _allowed(exc: Exception) -> str:
    """What a field's converter or validator said, in words: attrs' own validators carry
    the type or the options in their arguments."""
    by_attrs = len(exc.args) == 4 and isinstance(exc.args[1], attr.Attribute)
    if by_attrs and isinstance(exc, TypeError):  # instance_of: (message, attribute, type, value)
        types = exc.args[2] if isinstance(exc.args[2], tuple) else (exc.args[2],)
        return "must be " + " or ".join(_KINDS.get(t, getattr(t, "__name__", str(t))) for t in types)
    if by_attrs and isinstance(exc, ValueError):  # in_: (message, attribute, options, value)
        return "must be one of " + ", ".join(map(str, exc.args[2]))
    return str(exc)
