#!/usr/bin/env python3
"""Lints the Dockerfile without a Docker engine (standard library only).

No Docker engine runs on the machines that test siaga, and hadolint is not packaged by
Debian, so this reads the Dockerfile the way the builder does (continuation lines joined,
comments and parser directives skipped, then instruction by instruction) and checks:

  the rules of hadolint (github.com/hadolint/hadolint, rule ids given) that apply here:
    DL3000 WORKDIR is absolute          DL3002 the final stage does not run as root
    DL3006 FROM names a tag or digest   DL3007 ... and not `latest`
    DL3009 apt lists removed in the RUN that fetched them
    DL3014 apt-get install -y           DL3015 ... --no-install-recommends
    DL3022 COPY --from names an earlier stage   DL3023 ... not its own
    DL3025 ENTRYPOINT and CMD in JSON (exec) form, so SIGTERM reaches siaga
    DL4000 no MAINTAINER
  and what only a build would show: every COPY/ADD source exists in the build context and
  is not excluded by .dockerignore (Docker's rules: patterns relative to the context, `*`
  not crossing `/`, `**` crossing it, a pattern excluding a directory excluding its
  contents, `!` re-including, the last matching pattern deciding).

  python3 sip-tests/dockerfile_lint.py [Dockerfile]     (context: the Dockerfile's directory)

Prints "OK dockerfile: N instructions, M stages" or one "BAD <rule>: <text>" per problem
(exit status 1).
"""

import json
import os
import re
import shlex
import sys


def instructions(text):
    """(line number, KEYWORD, arguments) of each instruction, continuations joined."""
    result = []
    pending, start = "", 0
    directives_allowed = True
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not pending and stripped.startswith("#"):
            # `# syntax=...` at the top is a parser directive; any comment is skipped.
            if directives_allowed and re.match(r"#\s*\w+\s*=", stripped):
                continue
            directives_allowed = False
            continue
        if pending and (not stripped or stripped.startswith("#")):
            continue  # blank and comment lines inside a continued instruction
        directives_allowed = False
        if not stripped and not pending:
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((start, keyword.upper(), args.strip()))
    if pending:
        result.append((start, "<EOF>", pending))
    return result


def ignore_patterns(context):
    """The .dockerignore patterns as (regex, excluded) in file order."""
    path = os.path.join(context, ".dockerignore")
    if not os.path.exists(path):
        return []
    patterns = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip().strip("/"))
            regex = ""
            i = 0
            while i < len(pattern):
                if pattern.startswith("**", i):
                    regex += ".*"
                    i += 2
                elif pattern[i] == "*":
                    regex += "[^/]*"
                    i += 1
                elif pattern[i] == "?":
                    regex += "[^/]"
                    i += 1
                else:
                    regex += re.escape(pattern[i])
                    i += 1
            patterns.append((re.compile(regex + r"\Z"), not negated))
    return patterns


def is_excluded(relpath, patterns):
    """Whether Docker leaves `relpath` (relative to the context) out of the context."""
    parts = relpath.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for regex, excludes in patterns:
        if any(regex.match(p) for p in prefixes):
            excluded = excludes
    return excluded


def sent_files(context, source, patterns):
    """The files under `source` (a file or a directory) that reach the build."""
    path = os.path.join(context, source)
    if os.path.isfile(path):
        candidates = [source]
    else:
        candidates = []
        for root, _, files in os.walk(path):
            for name in files:
                full = os.path.join(root, name)
                candidates.append(os.path.relpath(full, context).replace(os.sep, "/"))
    return [c for c in candidates if not is_excluded(c, patterns)]


def lint(dockerfile):
    context = os.path.dirname(os.path.abspath(dockerfile))
    with open(dockerfile, encoding="utf-8") as f:
        items = instructions(f.read())
    patterns = ignore_patterns(context)
    bad = []
    stages = []  # alias (or index) of each stage so far
    user = {}  # stage index -> last USER
    for line, keyword, args in items:
        at = f"line {line}"
        if keyword == "<EOF>":
            bad.append(f"syntax: {at}: the file ends inside a continued line")
        elif keyword == "FROM":
            words = args.split()
            image = words[0] if words else ""
            if "@" not in image and image != "scratch":
                name = image.rsplit("/", 1)[-1]
                if ":" not in name and image not in stages:
                    bad.append(f"DL3006: {at}: FROM {image} names no tag")
                elif name.endswith(":latest"):
                    bad.append(f"DL3007: {at}: FROM {image} uses latest")
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(alias or str(len(stages)))
        elif not stages and keyword != "ARG":
            bad.append(f"syntax: {at}: {keyword} before the first FROM")
        elif keyword == "USER":
            user[len(stages) - 1] = args.split(":")[0]
        elif keyword == "WORKDIR" and not args.startswith(("/", "$")):
            bad.append(f"DL3000: {at}: WORKDIR {args} is not absolute")
        elif keyword == "MAINTAINER":
            bad.append(f"DL4000: {at}: MAINTAINER is deprecated (use a LABEL)")
        elif keyword in ("ENTRYPOINT", "CMD"):
            try:
                ok = isinstance(json.loads(args), list)
            except ValueError:
                ok = False
            if not ok:
                bad.append(f"DL3025: {at}: {keyword} is not in JSON form")
        elif keyword == "RUN" and re.search(r"apt-get\s+(-\S+\s+)*install", args):
            if not re.search(r"(^|\s)(-y|--yes|--assume-yes)(\s|$)", args):
                bad.append(f"DL3014: {at}: apt-get install without -y")
            if "--no-install-recommends" not in args:
                bad.append(f"DL3015: {at}: apt-get install without --no-install-recommends")
            if "rm -rf /var/lib/apt/lists" not in args:
                bad.append(f"DL3009: {at}: apt lists not removed in the same RUN")
        elif keyword in ("COPY", "ADD"):
            words = shlex.split(args)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            source_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if source_stage is not None:
                if source_stage == stages[-1]:
                    bad.append(f"DL3023: {at}: COPY --from={source_stage} names its own stage")
                elif source_stage not in stages[:-1] and ":" not in source_stage:
                    bad.append(f"DL3022: {at}: COPY --from={source_stage} names no earlier stage")
                continue
            if len(paths) < 2:
                bad.append(f"syntax: {at}: {keyword} needs a source and a destination")
                continue
            for source in paths[:-1]:
                if not os.path.exists(os.path.join(context, source)):
                    bad.append(f"context: {at}: {keyword} {source}: no such file in the context")
                elif not sent_files(context, source, patterns):
                    bad.append(f"context: {at}: {keyword} {source}: excluded by .dockerignore")
    if not stages:
        bad.append("syntax: no FROM")
    elif user.get(len(stages) - 1, "root") in ("root", "0"):
        bad.append("DL3002: the final stage runs as root (no USER, or USER root)")
    for line in bad:
        print(f"BAD {line}")
    if not bad:
        print(f"OK dockerfile: {len(items)} instructions, {len(stages)} stages")
    return not bad


if __name__ == "__main__":
    sys.exit(0 if lint(sys.argv[1] if len(sys.argv) > 1 else "Dockerfile") else 1)
