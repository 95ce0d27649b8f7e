"The docs site, checked offline: every notebook renders to a page that holds its figures, and the sidebar lists every page."
import json
import pytest, yaml
from docs_offline import NBS, ROOT, count_figures, count_html_figures, notebooks, render

# Pages that teach with pictures must have some.
MUST_HAVE_FIGURES = {'01_data', '02_synthetic', '04_viz', '05_metrics', '06_backbones', '07_baselines', '08_evaluate',
                     '10_students_teacher', '11_students_fdfe', '13_students_train', 'train_students', 'eval_students'}


@pytest.fixture(scope='module')
def dest(tmp_path_factory): return tmp_path_factory.mktemp('docs')


@pytest.mark.parametrize('nb', notebooks(), ids=lambda p: p.stem)
def test_page_renders_with_its_figures(nb, dest):
    html = render(nb, dest).read_text(encoding='utf-8')
    assert '<html' in html and len(html) > 1000, f'{nb.name}: empty page'
    assert '#| export' not in html and '#|export' not in html, f'{nb.name}: nbdev directives were not processed'
    n_src = count_figures(json.loads(nb.read_text(encoding='utf-8')))
    assert count_html_figures(html) >= n_src, f'{nb.name}: {n_src} figures in the notebook, fewer on the page'
    if nb.stem in MUST_HAVE_FIGURES: assert n_src > 0, f'{nb.name} is committed without its figures'


def _sidebar_entries(items):
    for it in items:
        if isinstance(it, str): yield it
        elif 'contents' in it: yield from _sidebar_entries(it['contents'])
        elif 'href' in it: yield it['href']


def test_quarto_sidebar_lists_every_notebook():
    cfg = yaml.safe_load((ROOT/'_quarto.yml').read_text())
    listed = list(_sidebar_entries(cfg['website']['sidebar']['contents']))
    names = {p.name for p in notebooks()}
    assert names - set(listed) == set(), f'notebooks missing from the sidebar of _quarto.yml: {sorted(names - set(listed))}'
    assert set(listed) - names == set(), f'sidebar entries without a notebook: {sorted(set(listed) - names)}'
    assert len(listed) == len(set(listed)), 'a notebook is listed twice'


def test_nbs_quarto_yml_links_to_the_top_level_one():
    link = NBS/'_quarto.yml'
    assert link.is_symlink() and link.resolve() == (ROOT/'_quarto.yml').resolve()
