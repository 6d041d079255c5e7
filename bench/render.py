#!/usr/bin/env python3
"""Fills {{NAME}} placeholders of an Envoy config template.

    render.py TEMPLATE NAME=value NAME=@file ... > OUT

`NAME=@file` inserts the file's text, itself rendered with the same values.
A placeholder alone on its line takes that line's indentation for every line
of a multi-line value, so YAML snippets and JSON documents nest correctly;
an empty value removes the line. Comment lines (`#` first) are copied as
they are. A placeholder left unfilled is an error.
"""
import re
import sys

PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


def render(text, values, depth=0):
    if depth > 4:
        sys.exit("render.py: files include each other too deeply")
    out = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            out.append(line)
            continue
        alone = re.fullmatch(r"(\s*)\{\{([A-Z_]+)\}\}\s*", line)
        if alone:
            indent, name = alone.groups()
            value = lookup(name, values, depth)
            out.extend(indent + v if v else v for v in value.splitlines())
        else:
            out.append(PLACEHOLDER.sub(lambda m: lookup(m.group(1), values, depth), line))
    return "\n".join(out) + "\n"


def lookup(name, values, depth):
    if name not in values:
        sys.exit(f"render.py: no value for {{{{{name}}}}}")
    value = values[name]
    if value.startswith("@"):
        with open(value[1:], encoding="utf-8") as f:
            return render(f.read(), values, depth + 1).rstrip("\n")
    return value


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    values = {}
    for arg in sys.argv[2:]:
        name, sep, value = arg.partition("=")
        if not sep:
            sys.exit(f"render.py: expected NAME=value, got {arg!r}")
        values[name] = value
    with open(sys.argv[1], encoding="utf-8") as f:
        sys.stdout.write(render(f.read(), values))


if __name__ == "__main__":
    main()
