"""Self-contained HTML pieces: escaped text, tables, PNGs and WAVs embedded as base64
``data:`` URIs, collapsible sections, and one page with phone-width CSS. Nothing on a
page refers to the network."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;
 padding:12px;line-height:1.45;color:#222}
h1{font-size:1.5em;word-break:break-word}h2{font-size:1.2em;border-bottom:1px solid #ddd;margin-top:1.6em}
pre,code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}code{overflow-wrap:anywhere}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.85em;margin:.4em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:.8em 0;max-width:900px}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}audio{width:100%;height:36px}
.clips{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:6px 14px}
.clip{margin:.2em 0;font-size:.9em}.muted{color:#666;font-size:.85em}.bad{color:#b00020}.ok{color:#1b7a1b}details summary{cursor:pointer}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    return f"<td>{esc('' if value is None else value)}</td>"


def table(rows: Sequence[dict], columns: Sequence[str], links: dict[str, str] | None = None,
          link_column: str | None = None, link_width: int = 22) -> str:
    """An HTML table (inside a horizontally scrolling box); ``links`` maps a ``link_column``
    value to the relative href it links to (its text shortened to ``link_width`` characters,
    the whole in its title)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            if links and c == link_column and str(value) in links:
                text = str(value) if len(str(value)) <= link_width else str(value)[: link_width - 1] + "…"
                cells.append(f'<td><a href="{esc(links[str(value)])}" title="{esc(value)}">{esc(text)}</a></td>')
            else:
                cells.append(cell(value))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def image(path: str | os.PathLike, caption: str | None = None) -> str:
    """A PNG file embedded as a figure (re-encoded with a 256-colour palette)."""
    path = Path(path)
    caption = caption if caption is not None else path.name
    from speechexp.viz.png import compact_png  # noqa: PLC0415

    return (f'<figure><img alt="{esc(caption)}" src="{data_uri(compact_png(path), "image/png")}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def audio(path: str | os.PathLike, caption: str) -> str:
    """A WAV file embedded as a playable ``<audio>``."""
    data = Path(path).read_bytes()
    return (f'<div class="clip"><div>{esc(caption)}</div>'
            f'<audio controls preload="none" src="{data_uri(data, "audio/wav")}"></audio></div>')


def clips(parts: Iterable[str]) -> str:
    """Audio players side by side, as many as fit the width (one per line on a phone)."""
    return f'<div class="clips">{"".join(parts)}</div>'


def short_number(value: Any) -> Any:
    """A number-like override (``0.0036396393567863887``) to 4 significant digits."""
    if isinstance(value, str) and len(value) > 8:
        try:
            return f"{float(value):.4g}"
        except ValueError:
            return value
    return value


def details(summary: str, body: str, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>{body}</details>"


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def section(title: str, *parts: str) -> str:
    return f"<h2>{esc(title)}</h2>" + "".join(parts)


def page(title: str, parts: Iterable[str]) -> str:
    """A whole self-contained page."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1>" + "\n".join(parts) + "</body></html>\n")


def md_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    def md(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(md(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"
