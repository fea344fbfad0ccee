"""The adversarial regex sweep (issue 27): every compiled pattern of ``search/`` on pathological inputs.

The parent (``tests/test_regex_sweep.py``) finds the patterns and generates the cases; a child
process (this file run as a script) times them and prints one JSON line per case, so a pattern
that never finishes costs only its deadline: the parent kills the child and carries on.

A case is ``prefix + body + ender`` where the body is, at ``size`` characters,

* ``run``: one character repeated (a character of each class or literal the pattern mentions);
* ``alternate``: two such characters alternating;
* ``literal``: one of the pattern's own literal strings repeated.

The prefix is empty, a literal of the pattern (``cid:``) or a short string a match can begin
with (a heading's ``# a``), the ender empty or a character that breaks the run: the shapes that make backtracking engines retry a long run
from every start (quadratic) or split it between two quantifiers (cubic).
"""

from __future__ import annotations

import ast
import importlib
import itertools
import json
import re
import re._constants as sre  # noqa: PLC2701 - the parser's node names (Python 3.11+)
import re._parser as sre_parse  # noqa: PLC2701
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "search"
#: Characters every pattern is tried with, besides those it names: spaces, breaks, letters, digits,
#: punctuation, Chinese, a control character.
BASE_CHARACTERS = (" ", "\n", "\t", "a", "Z", "7", ".", "#", "-", "!", "中", "\u3000", "\x00")
CATEGORY_CHARACTERS = {
    sre.CATEGORY_DIGIT: "7", sre.CATEGORY_NOT_DIGIT: "a", sre.CATEGORY_SPACE: " ", sre.CATEGORY_NOT_SPACE: "a",
    sre.CATEGORY_WORD: "a", sre.CATEGORY_NOT_WORD: "!", sre.CATEGORY_LINEBREAK: "\n",
    sre.CATEGORY_NOT_LINEBREAK: "a",
}
REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
PREFIX_DEPTH = 3
MAX_PREFIXES = 30
MAX_ENDERS = 4  # characters tried after a run, besides nothing and NUL


@dataclass(frozen=True)
class Case:
    module: str
    name: str
    kind: str      # run | alternate | literal
    body: str      # the repeated unit
    prefix: str = ""
    ender: str = ""

    @property
    def label(self) -> str:
        return f"{self.module}.{self.name} {self.kind} {self.prefix!r}+{self.body!r}*n+{self.ender!r}"

    def text(self, size: int) -> str:
        return self.prefix + self.body * max(1, size // len(self.body)) + self.ender


# -- finding the patterns --------------------------------------------------------------------------
def _is_re_call(node: ast.AST, names: tuple[str, ...]) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in names
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "re")


def module_patterns() -> list[tuple[str, str]]:
    """``(module, name)`` of every module-level ``NAME = re.compile(...)`` in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and _is_re_call(node.value, ("compile",)):
                found.extend((module, target.id) for target in node.targets if isinstance(target, ast.Name))
    return found


def inline_patterns() -> list[str]:
    """``file:line`` of every regex used without a module-level constant (``re.sub(r"...", ...)`` or
    ``re.compile`` inside a function): the sweep could not see them."""
    uses = ("search", "match", "fullmatch", "sub", "subn", "split", "findall", "finditer", "compile")
    places = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {id(node.value) for node in tree.body if isinstance(node, ast.Assign)}
        for node in ast.walk(tree):
            if _is_re_call(node, uses) and id(node) not in top_level:
                places.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return places


#: Patterns built at run time from escaped literals (file: the function that builds one and a sample's
#: arguments): the sweep times the sample.
BUILT_AT_RUN_TIME = {
    "search/text/language.py": ("search.text.language", "_term_pattern", ["gold"]),
    "search/backends/codec.py": ("search.backends.codec", "_side_by_side", [["software", "package"]]),
}


def run_time_patterns() -> list[tuple[str, str]]:
    """``(module, "function:arguments as JSON")`` of a sample of each pattern built at run time."""
    return [(module, f"{function}:{json.dumps(arguments)}") for module, function, arguments in BUILT_AT_RUN_TIME.values()]


def load(module: str, name: str) -> re.Pattern:
    """A module-level pattern ``NAME``, or the one ``function:[arguments]`` builds (lists passed as tuples)."""
    function, _, arguments = name.partition(":")
    value = getattr(importlib.import_module(module), function)
    if not arguments:
        return value
    return value(*(tuple(argument) if isinstance(argument, list) else argument for argument in json.loads(arguments)))


# -- what a pattern mentions -----------------------------------------------------------------------
CATEGORY_CLASSES = {
    sre.CATEGORY_DIGIT: r"\d", sre.CATEGORY_NOT_DIGIT: r"\D", sre.CATEGORY_SPACE: r"\s",
    sre.CATEGORY_NOT_SPACE: r"\S", sre.CATEGORY_WORD: r"\w", sre.CATEGORY_NOT_WORD: r"\W",
}


def _set_class(items) -> tuple[str, list[str]]:
    """A parsed character set as regex text again, and characters it names."""
    parts, characters = [], []
    for op, value in items:
        if op is sre.NEGATE:
            parts.insert(0, "^")
        elif op is sre.LITERAL:
            parts.append(re.escape(chr(value)))
            characters.append(chr(value))
        elif op is sre.RANGE:
            low, high = value
            parts.append(f"{re.escape(chr(low))}-{re.escape(chr(high))}")
            characters.extend(chr(code) for code in (low, (low + high) // 2, high))
        elif op is sre.CATEGORY:
            parts.append(CATEGORY_CLASSES.get(value, r"\w"))
            characters.append(CATEGORY_CHARACTERS.get(value, "a"))
    return "[" + "".join(parts) + "]", characters


def _walk(items, atoms: list[str], characters: list[str], literals: list[str]) -> None:
    """Collect the single-character atoms (as regex text), the characters they name and the literal
    strings of each sequence."""
    run: list[str] = []
    for op, value in items:
        if op is sre.LITERAL:
            run.append(chr(value))
            atoms.append(re.escape(chr(value)))
            characters.append(chr(value))
            continue
        if len(run) > 1:
            literals.append("".join(run))
        run = []
        if op is sre.NOT_LITERAL:
            atoms.append(f"[^{re.escape(chr(value))}]")
        elif op is sre.IN:
            atom, named = _set_class(value)
            atoms.append(atom)
            characters.extend(named)
        elif op is sre.ANY:
            atoms.append(".")
        elif op in REPEATS:
            _walk(value[2], atoms, characters, literals)
        elif op is sre.SUBPATTERN:
            _walk(value[3], atoms, characters, literals)
        elif op is sre.BRANCH:
            for branch in value[1]:
                _walk(branch, atoms, characters, literals)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            _walk(value[1], atoms, characters, literals)
        elif op is sre.ATOMIC_GROUP:
            _walk(value, atoms, characters, literals)
        elif op is sre.GROUPREF_EXISTS:
            for branch in value[1:]:
                if branch is not None:
                    _walk(branch, atoms, characters, literals)
    if len(run) > 1:
        literals.append("".join(run))


def mentions(pattern: re.Pattern) -> tuple[list[str], list[str]]:
    """``(characters, literal strings)`` the pattern names: one character per distinct way the
    pattern's atoms see it (which of its literals and classes match it), most specific first."""
    atoms: list[str] = []
    characters: list[str] = []
    literals: list[str] = []
    _walk(sre_parse.parse(pattern.pattern, pattern.flags), atoms, characters, literals)
    flags = pattern.flags & (re.IGNORECASE | re.DOTALL | re.ASCII)
    compiled = [re.compile(atom, flags) for atom in dict.fromkeys(atoms)]
    if pattern.flags & re.IGNORECASE:
        characters += [char.swapcase() for char in characters]
    by_signature: dict[tuple[bool, ...], str] = {}
    for char in [*characters, *BASE_CHARACTERS]:
        by_signature.setdefault(tuple(bool(atom.fullmatch(char)) for atom in compiled) + (char == "\n",), char)
    return list(by_signature.values()), list(dict.fromkeys(literal for literal in literals if literal.strip()))


def viable_prefixes(pattern: re.Pattern, characters: list[str]) -> list[str]:
    """Short strings over ``characters`` that a match can start with (the ``regex`` module's partial
    matching), shortest first: the states from which a long run may be tried many ways."""
    import regex

    partial = regex.compile(pattern.pattern, pattern.flags & ~re.UNICODE)
    prefixes, level = [""], [""]
    for _ in range(PREFIX_DEPTH):
        level = [prefix + char for prefix in level for char in characters
                 if partial.fullmatch(prefix + char, partial=True)]
        level.sort(key=lambda prefix: -len(set(prefix)))  # mixed prefixes first: "# a" before "###"
        prefixes += level[:MAX_PREFIXES - len(prefixes)]
    return prefixes


def cases_for(module: str, name: str) -> list[Case]:
    """The pathological inputs of one pattern (see the module docstring)."""
    import regex

    pattern = load(module, name)
    characters, literals = mentions(pattern)
    partial = regex.compile(pattern.pattern, pattern.flags & ~re.UNICODE)
    enders = ["", "\x00", *characters[:MAX_ENDERS]]
    cases = [Case(module, name, "run", char, prefix, ender)
             for prefix in [*viable_prefixes(pattern, characters), *literals] for char in characters
             if not prefix or partial.fullmatch(prefix + char, partial=True)
             for ender in enders if ender != char]
    cases += [Case(module, name, "alternate", a + b, "", ender)
              for a, b in itertools.combinations(characters, 2) for ender in ("", "\x00")]
    cases += [Case(module, name, "literal", literal, prefix, ender)
              for literal in literals for prefix in ("", " ") for ender in ("", "\x00")]
    return list(dict.fromkeys(cases))


# -- the child: time the cases ---------------------------------------------------------------------
def time_case(pattern: re.Pattern, text: str, repeats: int = 3) -> float:
    """CPU seconds of the best of ``repeats`` full scans (``findall``: every start position, like search,
    sub and finditer); CPU time, so a busy machine slows the clock, not the measure."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        pattern.findall(text)
        best = min(best, time.process_time() - started)
    return best


def child() -> None:
    """Read ``[[case, size, repeats], ...]`` from stdin; print ``{"index": i, "seconds": t}`` per case."""
    jobs = json.load(sys.stdin)
    for index, (fields, size, repeats) in enumerate(jobs):
        case = Case(**fields)
        seconds = time_case(load(case.module, case.name), case.text(size), repeats)
        print(json.dumps({"index": index, "seconds": seconds}), flush=True)


def job(case: Case, size: int, repeats: int = 1) -> list:
    return [asdict(case), size, repeats]


# -- the parent: run the cases in a child, each under a deadline -------------------------------------
def run_jobs(jobs: list[list], deadline: float) -> dict[int, float | None]:
    """Seconds by job index; None for a job that passed ``deadline`` seconds (the child is killed and a
    fresh one takes over). The later jobs of a pattern that hung are left out (one hang is enough)."""
    import os
    import selectors
    import subprocess

    results: dict[int, float | None] = {}
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), str(Path(__file__).parent)])}
    pending = list(range(len(jobs)))
    while pending:
        process = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   env=environment, text=True)
        process.stdin.write(json.dumps([jobs[index] for index in pending]))
        process.stdin.close()
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        done = 0
        try:
            while done < len(pending):
                if not selector.select(deadline + (30 if done == 0 else 0)):  # the first waits for imports
                    break
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError(f"the sweep's child died at {jobs[pending[done]]}: exit {process.wait()}")
                results[pending[done]] = json.loads(line)["seconds"]
                done += 1
        finally:
            process.kill()
            process.wait()
            process.stdout.close()
        if done == len(pending):
            break
        results[pending[done]] = None
        hung = jobs[pending[done]][0]
        pending = [index for index in pending[done + 1:]
                   if (jobs[index][0]["module"], jobs[index][0]["name"]) != (hung["module"], hung["name"])]
    return results


if __name__ == "__main__":
    child()
