"""Owns how the report is written: one document built as HTML (self-contained: inline CSS, images
as base64 PNG, no script, no external URL) and Markdown (images by relative path) side by side."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;max-width:1180px;
margin:2em auto;padding:0 1.5em;line-height:1.45;font-size:15px}
h1{font-size:1.7em;border-bottom:2px solid #0072b2;padding-bottom:.2em}
h2{font-size:1.3em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.15em}
h3{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.82em}
th,td{border:1px solid #d6d6d6;padding:.28em .55em;text-align:right;white-space:nowrap}
th{background:#f0f4f8;font-weight:600}
td:first-child,th:first-child,td.txt,th.txt{text-align:left}
tr:nth-child(even) td{background:#fafafa}
td.best{font-weight:700;color:#08519c}
td.sig{font-weight:700}
.wrap{overflow-x:auto}
figure{margin:1.5em 0;text-align:center}
figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#555;margin-top:.4em}
.warn{background:#fff4e5;border-left:4px solid #d55e00;padding:.5em 1em;margin:1em 0}
.ok{background:#eef7ee;border-left:4px solid #009e73;padding:.5em 1em;margin:1em 0}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.8em}
.meta{color:#666;font-size:.9em}
"""


#: a cell that reads as a number, an interval or a missing value (right-aligned)
_NUMERIC = re.compile(r"^\s*([-+\u2212\u2013<>~\[(]|\d|\.\d)")
#: cells that stand for a missing value (ignored when deciding a column's alignment)
_MISSING = {"", "-", "\u2013", "nan"}


def _words_only(column: list[str]) -> bool:
    """True when a column holds text (left-aligned): some word, and no cell that reads as a number."""
    present = [c for c in column if c.strip() not in _MISSING]
    return bool(present) and not any(_NUMERIC.match(c) for c in present)


def _html_table(header: list[str], cells: list[list[str]], marked: set | None = None, cls: str = "best",
                text_cols: int = 1) -> str:
    marked = marked or set()
    text = {j for j in range(len(header)) if j < text_cols or _words_only([row[j] for row in cells if j < len(row)])}
    h = "".join(f'<th class="txt">{html.escape(c)}</th>' if j in text else f"<th>{html.escape(c)}</th>"
                for j, c in enumerate(header))
    body = []
    for i, row in enumerate(cells):
        tds = []
        for j, c in enumerate(row):
            klass = [cls] if (i, j) in marked else []
            if j in text:
                klass.append("txt")
            attr = f' class="{" ".join(klass)}"' if klass else ""
            tds.append(f"<td{attr}>{html.escape(c)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f'<div class="wrap"><table><thead><tr>{h}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _md_table(header: list[str], cells: list[list[str]], marked: set | None = None) -> str:
    marked = marked or set()

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(c) for c in header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(cells):
        lines.append("| " + " | ".join(f"**{esc(c)}**" if (i, j) in marked else esc(c)
                                       for j, c in enumerate(row)) + " |")
    return "\n".join(lines)


class Document:
    """Builds the HTML and the Markdown side by side; :meth:`html_page` and :meth:`markdown` give the
    two files' text."""

    def __init__(self) -> None:
        self.h: list[str] = []
        self.m: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.h.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.m.append("#" * level + " " + text + "\n")

    def para(self, text: str, cls: str | None = None) -> None:
        attr = f' class="{cls}"' if cls else ""
        self.h.append(f"<p{attr}>{html.escape(text)}</p>")
        self.m.append(("> " if cls in ("warn", "ok") else "") + text + "\n")

    def items(self, items: list[str], cls: str | None = None) -> None:
        attr = f' class="{cls}"' if cls else ""
        self.h.append(f"<ul{attr}>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
        self.m.append("\n".join(f"- {i}" for i in items) + "\n")

    def table(self, header: list[str], cells: list[list[str]], marked: set | None = None, cls: str = "best",
              text_cols: int = 1) -> None:
        self.h.append(_html_table(header, cells, marked, cls, text_cols))
        self.m.append(_md_table(header, cells, marked) + "\n")

    def figure(self, png: Path, rel: str, caption: str) -> None:
        b64 = base64.b64encode(png.read_bytes()).decode("ascii")
        self.h.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(png.stem)}">'
                      f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        self.m.append(f"![{png.stem}]({rel})\n\n*{caption}*\n")

    def pre(self, text: str) -> None:
        self.h.append(f"<pre>{html.escape(text)}</pre>")
        self.m.append("```\n" + text.rstrip() + "\n```\n")

    def html_page(self, title: str) -> str:
        """The whole HTML file: head with title and inline CSS, then the body."""
        body = "\n".join(self.h)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")

    def markdown(self) -> str:
        """The whole Markdown file."""
        return "\n".join(self.m)

