"""Readable text from chunk text: reST, Markdown and HTML markup and table scaffolding removed.

Chunks keep the document's raw text (offsets, hashing, what the embedder saw); quotes and prompts
use this cleaned form, so a reader sees "handling Exception" rather than "handling
:exc:`Exception`", and a version note reads "New in version 3.2." rather than
".. versionadded:: 3.2". Paragraph breaks (blank lines) are kept: a heading or a syntax box never
runs into the sentence after it.
"""

from __future__ import annotations

import html
import re

# Sphinx roles whose target is called: rendered with "()" as Sphinx renders them.
_CALLABLE_ROLES = {"func", "meth"}

_ROLE = re.compile(r":(?:[\w-]+:)?([\w-]+):`(~?!?)([^`<]*?)\s*(?:<([^>`]*)>)?`")
_VERSION_DIRECTIVE = re.compile(
    r"^[ \t]*\.\. (versionadded|versionchanged|deprecated|deprecated-removed)::[ \t]*([^\n]*)$",
    re.MULTILINE,
)
_VERSION_WORDS = {
    "versionadded": "New in version {}.",
    "versionchanged": "Changed in version {}:",
    "deprecated": "Deprecated since version {}:",
    "deprecated-removed": "Deprecated since version {}:",
}
# Directives that describe an object keep their argument (the signature: facts live there).
_DIRECTIVE = re.compile(r"^([ \t]*)\.\. ([\w:-]+)::[ \t]*([^\n]*)$", re.MULTILINE)
_ADMONITIONS = {"note", "warning", "important", "tip", "caution", "attention", "seealso", "hint"}
_DROPPED_DIRECTIVES = {
    "index", "highlight", "code-block", "sourcecode", "testsetup", "testcleanup", "toctree",
    "currentmodule", "sectionauthor", "moduleauthor", "include", "literalinclude", "only",
    "impl-detail", "audit-event", "availability", "raw", "image", "figure", "productionlist",
    "tabularcolumns", "testoutput", "testcode", "doctest", "opcode", "program",
}  # fmt: skip
_TARGET = re.compile(r"^[ \t]*\.\. (?:_[^:\n]+|\|[^|\n]+\|[^\n]*):[^\n]*$", re.MULTILINE)
# Sphinx's "**Source code:** :source:`Lib/x.py`" line under a module's title: a link, not prose
_SOURCE_LINK = re.compile(r"^[ \t]*\*\*Source code:\*\*[^\n]*$", re.MULTILINE)
_COMMENT = re.compile(r"^[ \t]*\.\.(?:[ \t]+[^\n]*)?$", re.MULTILINE)
_OPTION_LINE = re.compile(
    r"^[ \t]*:(?:noindex|no-index|module|platform|synopsis|deprecated|async|abstractmethod|"
    r"classmethod|staticmethod|canonical|annotation|type|value|linenos|emphasize-lines|caption|"
    r"name|class|options|hide|skipif|pyversion|noindexentry|nocontentsentry)(?: [^\n]*)?:?[^\n]*$",
    re.MULTILINE,
)
# Field lists (":param float timeout:", ":raises ValueError:") become "timeout:" / "Raises ValueError:"
_PARAM_FIELD = re.compile(r":(?:param|parameter|arg|argument|key|keyword)\s+(?:[^:\n]*\s)?(\w+):")
# (":type x: ..." lines go with the directive options above)
_OTHER_FIELD = re.compile(r":(raises?|returns?|rtype|var|ivar|cvar)(\s+[^:\n]+)?:")
_FIELD_NAMES = {
    "raise": "Raises",
    "raises": "Raises",
    "return": "Returns",
    "returns": "Returns",
    "rtype": "Return type",
    "var": "Variable",
    "ivar": "Variable",
    "cvar": "Variable",
}

_LINK = re.compile(r"`([^`<\n]+?)\s*<[^>`\n]+>`__?")  # `text <url>`_
_REF = re.compile(r"`([^`\n]+)`__?(?!\w)")  # `text`_
_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)
_INTERPRETED = re.compile(r"(?<![\w`])`([^`\n]+)`(?![\w`])")
_STRONG = re.compile(r"(?<![\w*])\*\*(?=\S)(.+?)(?<=\S)\*\*(?![\w*])")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=\S)\*(?![\w*])")
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()]|\([^)]*\))*\)")
_MD_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+", re.MULTILINE)
_MD_UNDERSCORE_STRONG = re.compile(r"(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)")
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
# Lines of table borders and heading adornments: nothing but = - ~ + | : ^ * # ` ' " . _ and spaces
_RULE_LINE = re.compile(
    r"^[ \t]*([=\-~+|:^*#`'\"._])(?:[ \t]*[=\-~+|:^*#`'\"._]){2,}[ \t]*$", re.MULTILINE
)
_EM_DASH = re.compile(r"(?<=\S) --- (?=\S)")  # reST's spelling of an em dash
_CONTINUATION = re.compile(r"[ \t]*\\\n[ \t]*")
_DOUBLE_COLON = re.compile(r"(\S)::(?=\s|$)|\s+::(?=\s|$)")


def clean_markup(text: str) -> str:
    """``text`` without markup: plain prose, paragraphs separated by one blank line."""
    text = _CONTINUATION.sub(" ", text)  # signatures continued over lines with "\\"
    text = _VERSION_DIRECTIVE.sub(_version_line, text)
    text = _drop_code(text)
    text = _DIRECTIVE.sub(_directive_line, text)
    text = _TARGET.sub("", text)
    text = _SOURCE_LINK.sub("", text)
    text = _COMMENT.sub("", text)
    text = _OPTION_LINE.sub("", text)
    text = _PARAM_FIELD.sub(r"\1:", text)
    text = _OTHER_FIELD.sub(_field, text)
    text = _ROLE.sub(_role, text)
    text = _LINK.sub(r"\1", text)
    text = _LITERAL.sub(lambda m: " ".join(m.group(1).split()), text)
    text = _REF.sub(r"\1", text)
    text = _INTERPRETED.sub(r"\1", text)
    text = _STRONG.sub(r"\1", text)
    text = _MD_UNDERSCORE_STRONG.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_HEADING.sub("", text)
    text = _HTML_TAG.sub(" ", text)
    text = html.unescape(text)
    text = _grid_tables(text)
    text = _RULE_LINE.sub("", text)
    text = _EM_DASH.sub(" — ", text)
    text = _DOUBLE_COLON.sub(lambda m: f"{m.group(1)}:" if m.group(1) else ":", text)
    return _normalise_space(text)


def paragraphs(text: str) -> list[str]:
    """The cleaned paragraphs of chunk text, each on one line."""
    return [p for p in clean_markup(text).split("\n\n") if p]


def _drop_code(text: str) -> str:
    """Interactive sessions (``>>>``), literal blocks (the indented block after a paragraph
    ending in ``::``, or a fenced block) and the bodies of directives that hold code or layout
    (``.. testsetup::``, ``.. code-block::``, ...) are not sentences to quote."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                i += 1
            i += 1
            continue
        if stripped.startswith(">>>"):
            while i < len(lines) and lines[i].strip():
                i += 1
            continue
        directive = _DIRECTIVE.match(line)
        if directive and directive.group(2).split(":")[-1] in _DROPPED_DIRECTIVES:
            indent = len(directive.group(1))
            i += 1
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
            ):
                i += 1
            out.append("")
            continue
        out.append(line)
        i += 1
        if stripped.endswith("::"):
            indent = len(line) - len(line.lstrip())
            # skip blank lines, then every line indented deeper than the paragraph
            j = i
            while j < len(lines) and not lines[j].strip():
                j += 1
            k = j
            while k < len(lines) and (
                not lines[k].strip() or len(lines[k]) - len(lines[k].lstrip()) > indent
            ):
                k += 1
            if k > j:
                block = [ln.strip() for ln in lines[j:k] if ln.strip()]
                if len(block) <= 2 and all(len(ln) <= 80 for ln in block):
                    # a one-line command completes its sentence ("... with the path: python -m
                    # venv env"): keep it inline; longer listings are dropped
                    out[-1] = line.rstrip() + " " + " ".join(block)
                out.append("")
                i = k
    return "\n".join(out)


def _grid_tables(text: str) -> str:
    """Table rows as one line each ("name: description"). In a reST grid table a row's cells
    continue over lines until the next ``+---+`` border, so each column's pieces are joined
    first; a Markdown table row is one line, and its ``|---|`` rule is dropped."""
    out: list[str] = []
    row: list[list[str]] = []
    in_grid = False

    def flush() -> None:
        cells = [" ".join(" ".join(parts).split()) for parts in row]
        cells = [c for c in cells if c]
        if cells:
            out.append(cells[0] + (": " + " ".join(cells[1:]) if len(cells) > 1 else ""))
            out.append("")
        row.clear()

    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("+") and stripped.endswith("+") and set(stripped) <= set("+-=: "):
            flush()
            in_grid = True
        elif stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 1:
            cells = stripped[1:-1].split("|")
            if set(stripped) <= set("|-: "):
                continue  # a Markdown table's header rule
            if len(row) != len(cells):
                flush()
                row.extend([] for _ in cells)
            for parts, cell in zip(row, cells, strict=True):
                parts.append(cell.strip())
            if not in_grid:
                flush()
        else:
            flush()
            in_grid = False
            out.append(line)
    flush()
    return "\n".join(out)


def _normalise_space(text: str) -> str:
    parts = re.split(r"\n[ \t]*\n+", text)
    return "\n\n".join(" ".join(p.split()) for p in parts if p.strip())


def _version_line(m: re.Match) -> str:
    version = m.group(2).strip().split()[0] if m.group(2).strip() else ""
    return "\n\n" + _VERSION_WORDS[m.group(1)].format(version)  # its body follows on the next line


def _directive_line(m: re.Match) -> str:
    indent, name, argument = m.group(1), m.group(2).split(":")[-1], m.group(3).strip()
    if name in _DROPPED_DIRECTIVES:
        return ""
    if name in _ADMONITIONS:
        label = "See also" if name == "seealso" else name.capitalize()
        return f"{indent}{label}: {argument}" if argument else f"{indent}{label}:"
    # function, method, class, attribute, data, exception, envvar, option, describe, ...
    return f"\n\n{indent}{argument}\n\n" if argument else ""


def _field(m: re.Match) -> str:
    name = _FIELD_NAMES[m.group(1)]
    target = (m.group(2) or "").strip()
    return f"{name} {target}:" if target else f"{name}:"


def _role(m: re.Match) -> str:
    role, prefix, title, target = m.group(1), m.group(2), m.group(3).strip(), m.group(4)
    if not title and target:
        title = target
    if "~" in prefix:  # :meth:`~Connection.close` shows as close()
        title = title.rsplit(".", 1)[-1]
    if role in _CALLABLE_ROLES and title and not title.endswith(")") and not target:
        title += "()"
    return title
