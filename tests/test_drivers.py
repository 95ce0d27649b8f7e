"The runnable notebooks, run as a user runs them (papermill), on a tiny synthetic data set."
import ast, dataclasses, json, os, subprocess
from pathlib import Path
import pytest

papermill = pytest.importorskip('papermill')
from anomaly_nb.synthetic import make_dataset
from anomaly_nb.students.run import TeacherRun, StudentsRun, EvalRun, PAPER_RECIPE

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
DRIVERS = {'train_teacher': TeacherRun, 'train_students': StudentsRun, 'eval_students': EvalRun}
NOT_IN_CONFIG = {'eval_students': {'real_data'}}


def _parameters(nb_name):
    nb = json.loads((NBS/f'{nb_name}.ipynb').read_text())
    cell = next(c for c in nb['cells'] if 'parameters' in c.get('metadata', {}).get('tags', []))
    ns = {}
    for node in ast.parse(''.join(cell['source'])).body: ns[node.targets[0].id] = ast.literal_eval(node.value)
    return ns


@pytest.mark.parametrize('name', DRIVERS)
def test_parameters_cell_matches_the_run_config(name):
    "The defaults in the notebook are the defaults of its config dataclass: one recipe, written once for users to read."
    params = _parameters(name)
    fields = {f.name: f.default for f in dataclasses.fields(DRIVERS[name])}
    assert set(params) - NOT_IN_CONFIG.get(name, set()) == set(fields), f'{name}: parameters and {DRIVERS[name].__name__} fields differ'
    for k, v in fields.items():
        assert params[k] == (list(v) if isinstance(v, tuple) else v), f'{name}: parameter {k}={params[k]!r}, config default {v!r}'


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('drivers')
    root = make_dataset(tmp/'data', categories=('weave',), image_size=48, n_train=8, n_test_good=3, n_per_defect=1)
    common = dict(data_root=str(root), category='weave', image_size=48, patch=17, d=16, val_fraction=0.25, device='cpu',
                  out_dir=str(tmp/'runs'))
    return tmp, common


def _run(name, out, **params):
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    return papermill.execute_notebook(str(NBS/f'{name}.ipynb'), str(out), parameters=params, cwd=str(out.parent),
                                      kernel_name='python3', progress_bar=False)


def test_train_teacher_students_and_eval_run_green(tiny):
    tmp, common = tiny
    _run('train_teacher', tmp/'teacher.ipynb', **common, epochs=1, patches_per_epoch=32, batch_size=16)
    assert (tmp/'runs'/'weave'/'teacher_p17.pt').exists()
    students = dict(n_students=2, epochs=1, crop=16, teacher_epochs=1, teacher_patches=32, teacher_batch_size=16)
    nb = _run('train_students', tmp/'students.ipynb', **common, **students)
    text = json.dumps(nb['cells'])
    assert 'teacher p=17: loaded' in text, 'train_students must reuse the finished teacher of train_teacher'
    assert text.count('image/png') >= 2, 'train_students shows its loss curves and heatmaps'
    _run('train_students', tmp/'students33.ipynb', **{**common, 'patch': 33}, **students)   # trains its own teacher too
    # eval exactly as a user types it: the papermill CLI passes "[17, 33]" as a string
    ev = {k: v for k, v in common.items() if k not in ('patch', 'd')}
    args = [a for k, v in {**ev, 'knn_bank': 200, 'batch_size': 2}.items() for a in ('-p', k, str(v))]
    r = subprocess.run(['papermill', str(NBS/'eval_students.ipynb'), str(tmp/'eval.ipynb'), '-p', 'patches', '[17, 33]', *args,
                        '--cwd', str(tmp)], capture_output=True, text=True, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp/'runs'/'weave'/'eval'/'metrics.json').read_text())
    assert set(summary['methods']) == {'students_p17', 'students_p33', 'students_multiscale', 'knn'}
    for m in summary['methods'].values():
        for k in ('image_auroc', 'pixel_auroc', 'aupro', 'image_f1', 'image_precision', 'image_recall', 'image_threshold', 'threshold'):
            assert isinstance(m[k], float), k
    assert summary['methods']['students_p17']['backbone']['name'] == 'efficientnet_lite0'
    assert 'validation' in summary['decision_threshold']
    lines = (tmp/'runs'/'weave'/'eval'/'students_p17'/'results.jsonl').read_text().splitlines()
    assert len(lines) == summary['data']['n_test'] == 6
    rec = json.loads(lines[-1])
    assert set(rec) >= {'filename', 'ground_truth', 'prediction', 'correct'}
    assert (tmp/'runs'/'weave'/'eval'/'students_p17'/rec['prediction']['heatmap_path']).exists()


def test_recipe_in_the_notebook_is_the_library_recipe():
    "The paper recipe written in train_students' prose is PAPER_RECIPE, argument for argument."
    text = ''.join(''.join(c['source']) for c in json.loads((NBS/'train_students.ipynb').read_text())['cells'] if c['cell_type'] == 'markdown')
    text = ' '.join(text.replace('\\\n', ' ').split())
    for k, v in PAPER_RECIPE.items(): assert f'-p {k} {v}' in text, f'-p {k} {v} missing from the recipe in train_students.ipynb'


def test_a_misspelt_parameter_is_an_error_that_names_it(tiny):
    tmp, common = tiny
    with pytest.raises(papermill.PapermillExecutionError, match="patchsize.*did you mean 'patch'"):
        _run('train_teacher', tmp/'bad.ipynb', **common, patchsize=33)
