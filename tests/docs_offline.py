"""Offline stand-in for the Quarto docs build.

Quarto cannot be installed on every machine (it is not on PyPI as a wheel and its installer downloads
from the internet), so CI checks the docs without it: every notebook in nbs/ goes through nbdev's own
notebook processing (the processors `nbdev_docs` applies before Quarto renders: directives removed,
`show_doc` tables added, exported cells executed for the docs) and the processed notebook is rendered
to a standalone HTML page with nbconvert. Run it by hand to look at the pages:

    python tests/docs_offline.py            # pages in _docs_offline/ (ignored by git)
"""
from __future__ import annotations
import os, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
FIGURE_MIMES = ('image/png', 'image/jpeg', 'image/svg+xml')


def notebooks() -> list[Path]:
    "Every notebook of the docs site, in reading order."
    return sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')))


def count_figures(nb: dict) -> int:
    "Number of figure outputs (PNG, JPEG, SVG) stored in a notebook."
    return sum(any(m in o.get('data', {}) for m in FIGURE_MIMES)
               for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []))


def count_html_figures(html: str) -> int:
    "Number of embedded figures in a rendered page."
    return len(re.findall(r'<img[^>]+src="data:image/(?:png|jpeg)', html)) + len(re.findall(r'<svg[\s>]', html))


def render(nb_path: Path, dest: Path) -> Path:
    "Process `nb_path` as nbdev does for the docs, then render it to `dest/<name>.html`."
    from execnb.nbio import read_nb, write_nb
    from nbdev.processors import FilterDefaults
    from nbconvert import HTMLExporter
    import nbformat
    cwd = os.getcwd()
    os.chdir(nb_path.parent)  # notebooks resolve relative paths from nbs/, as under nbdev and Quarto
    try:
        nb = read_nb(nb_path)
        FilterDefaults()(nb)
    finally: os.chdir(cwd)
    dest.mkdir(parents=True, exist_ok=True)
    proc = dest/nb_path.name
    write_nb(nb, proc)
    node = nbformat.read(proc, as_version=4)
    for cell in node.cells:   # nbdev's processing marks cells (e.g. `has_sd`); nbformat's schema has no room for that
        for k in [k for k in cell if k not in ('cell_type', 'execution_count', 'id', 'metadata', 'outputs', 'source', 'attachments')]:
            del cell[k]
    body, _ = HTMLExporter(template_name='lab').from_notebook_node(node)
    out = dest/f'{nb_path.stem}.html'
    out.write_text(body, encoding='utf-8')
    proc.unlink()
    return out


if __name__ == '__main__':
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT/'_docs_offline'
    for p in notebooks():
        out = render(p, dest)
        print(f'{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: '
              f'{count_html_figures(out.read_text(encoding="utf-8"))} figures')
