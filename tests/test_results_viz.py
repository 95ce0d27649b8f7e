"Results records, heatmap files and figures: round trips on disk, and the figures and explorer built headless."
import json

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from anomaly_nb.results import (GroundTruth, ImageResult, Prediction, decide, heatmap_relpath, make_result,
                                read_heatmap, read_results, save_heatmap_png, scores_and_labels, write_results)
from anomaly_nb import viz


# --- results -------------------------------------------------------------------------------------------

def test_record_is_the_seed_format(tmp_path):
    "Section 12 of the task description, key for key, when no optional field is set."
    r = ImageResult('img_001.png', GroundTruth(True), Prediction(True, 0.87, 'heatmaps/img_001.png'), correct=True)
    write_results(tmp_path/'r.jsonl', [r])
    assert json.loads((tmp_path/'r.jsonl').read_text()) == {
        'filename': 'img_001.png', 'ground_truth': {'is_anomalous': True},
        'prediction': {'is_anomalous': True, 'anomaly_score': 0.87, 'heatmap_path': 'heatmaps/img_001.png'},
        'correct': True}


def test_results_round_trip_with_extras(tmp_path):
    rs = [make_result(f'test/{d}/{i:03d}.png', d != 'good', s, 0.5, heatmap_relpath(f'test/{d}/{i:03d}.png'),
                      defect_type=d, mask_path=None if d == 'good' else f'ground_truth/{d}/{i:03d}_mask.png',
                      category='pill', e_max=np.float32(s / 2), n_pixels=np.int64(4))
          for i, (d, s) in enumerate([('good', 0.1), ('good', 0.7), ('crack', 0.9), ('spot', 0.3)])]
    write_results(tmp_path/'r.jsonl', rs)
    back = read_results(tmp_path/'r.jsonl')
    assert back == rs
    assert [r.correct for r in back] == [True, False, True, False]
    assert [r.ground_truth.mask_path for r in back][2] == 'ground_truth/crack/002_mask.png'
    s, y = scores_and_labels(back)
    assert s.dtype == np.float64 and y.tolist() == [False, False, True, True]
    np.testing.assert_allclose(s, [0.1, 0.7, 0.9, 0.3], rtol=1e-6)


def test_nan_score_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match=r'test/cut/001\.png: anomaly_score is nan'):
        make_result('test/cut/001.png', True, float('nan'), 0.5)
    r = make_result('test/cut/001.png', True, 0.9, 0.5)
    r.prediction.anomaly_score = float('inf')  # mutated after the checks
    with pytest.raises(ValueError, match=r"r\.jsonl: record 'test/cut/001\.png' has a non-finite value at 'prediction\.anomaly_score'"):
        write_results(tmp_path/'r.jsonl', [r])
    assert not (tmp_path/'r.jsonl').exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_decide_matches_sklearn_operating_points():
    from sklearn.metrics import roc_curve
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    s = np.round(rng.normal(y * 1.0, 1.0), 1)  # rounded: many ties
    fpr, tpr, thr = roc_curve(y, s)
    for f, t, th in zip(fpr[1:], tpr[1:], thr[1:]):
        p = decide(s, th)
        assert p[y].mean() == pytest.approx(t) and p[~y].mean() == pytest.approx(f)


def test_heatmap_png_round_trip(tmp_path):
    h = torch.linspace(-1, 3, 40 * 30).reshape(1, 40, 30)  # a [1, H, W] tensor
    p = save_heatmap_png(tmp_path/'heatmaps/a.png', h, vmin=-1, vmax=3, save_raw=True)
    im = Image.open(p)
    assert im.mode == 'RGB' and im.size == (30, 40)
    np.testing.assert_array_equal(read_heatmap(p), h[0].numpy())  # exact through the .npy
    approx = read_heatmap(p, prefer_raw=False)  # through the colours
    assert np.abs(approx - h[0].numpy()).max() <= 2 * 4 / 256 + 1e-6
    # the PNG's colours are what matplotlib draws for the same scale
    expected = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(-1, 3), 'jet').to_rgba(h[0].numpy(), bytes=True)[..., :3]
    np.testing.assert_array_equal(np.asarray(im), expected)


def test_heatmap_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match='bad.png: the heatmap holds 1 non-finite'):
        save_heatmap_png(tmp_path/'bad.png', np.array([[0., np.nan]]), 0, 1)
    with pytest.raises(FileNotFoundError, match='missing.png'):
        read_heatmap(tmp_path/'missing.png')


def test_read_results_names_the_broken_line(tmp_path):
    good = json.dumps(make_result('a.png', False, 0.1, 0.5).to_dict())
    (tmp_path/'r.jsonl').write_text(good + '\n\n' + '{"filename": "b.png"\n')
    with pytest.raises(ValueError, match=r'r\.jsonl:3: not valid JSON'):
        read_results(tmp_path/'r.jsonl')


# --- viz -----------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def demo():
    rng = np.random.default_rng(0)
    n, s = 4, 32
    images = torch.randn(n, 3, s, s)  # ImageNet-normalised batch
    masks = torch.zeros(n, 1, s, s); masks[1:, :, 10:16, 10:16] = 1
    heat = rng.random((n, s, s)).astype(np.float32) + 2 * masks[:, 0].numpy()
    scores = heat.max((1, 2))
    labels = torch.tensor([0, 1, 1, 1])
    return images, masks, heat, scores, labels


def test_figures_are_returned_and_not_kept_by_pyplot(demo):
    images, masks, heat, scores, labels = demo
    plt.close('all')
    figs = [viz.show_dataset_grid(images, labels, masks),
            viz.show_eval_grid(images, heat, scores, labels, 2.0, uncertainty=heat * 0.1, masks=masks),
            viz.plot_roc([0, 0.5, 1], [0, 0.9, 1], auc=0.7),
            viz.plot_pr([1, 0.8, 0.5], [0, 0.5, 1], prevalence=0.5),
            viz.plot_pro(np.linspace(0, 1, 11), np.linspace(0, 1, 11) ** 0.5, aupro=0.5),
            viz.plot_losses({'loss': [3, 2, 1]}),
            viz.plot_score_hist(scores, labels, 2.0)]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    assert plt.get_fignums() == []  # nothing left open in pyplot: no leak, no double display
    for f in figs: f.savefig(__import__('io').BytesIO(), format='png')  # each one renders


def test_eval_grid_frames_follow_the_decision(demo):
    images, masks, heat, scores, labels = demo
    thr = float(np.sort(scores)[1])  # image 0 (normal) may be above or below; decide() says which
    fig = viz.show_eval_grid(images, heat, scores, labels, thr, titles=list('abcd'))
    for i, t in enumerate('abcd'):
        ax = next(a for a in fig.axes if a.get_title().startswith(t + ' '))
        right = bool(decide(scores[i], thr)) == bool(labels[i])
        assert ax.spines['top'].get_edgecolor() == matplotlib.colors.to_rgba(viz.NORMAL_COLOR if right else viz.ANOMALOUS_COLOR)


def test_bad_lengths_name_the_parameter(demo):
    images, masks, heat, scores, labels = demo
    with pytest.raises(ValueError, match='heatmaps has 3 entries, but there are 4 images'):
        viz.show_eval_grid(images, heat[:3], scores, labels, 1.0)
    with pytest.raises(ValueError, match=r'images\[0\]: a tensor image must be \[3, H, W\]'):
        viz.show_dataset_grid(torch.zeros(2, 1, 8, 8), [0, 1])


def test_plotly_views(demo):
    images, masks, heat, scores, labels = demo
    fig = viz.heatmap_figure(images[1], heat[1], score=scores[1], mask=masks[1], max_side=16)
    assert [t.type for t in fig.data] == ['image', 'heatmap', 'contour']
    z = np.asarray(fig.data[1].z)
    assert z.shape == (16, 16) and z.max() == pytest.approx(heat[1].max(), abs=1e-4)
    h = viz.score_histogram(scores, labels, threshold=2.0)
    assert sum(len(t.x) for t in h.data) == 4
    assert any(s.type == 'line' for s in h.layout.shapes)  # the threshold


def test_explorer_builds_headless_and_follows_the_slider(demo):
    images, masks, heat, scores, labels = demo
    ex = viz.explorer(images, heat, scores, labels, masks=masks, uncertainty=heat * 0.1)
    ex.picker.value = 2
    ex.threshold.value = float(scores[2]) - 1e-3
    assert 'anomalous</b> · ground truth anomalous' in ex.decision.value and 'correct' in ex.decision.value
    png = ex.view.value
    ex.threshold.value = float(scores[2]) + 1e-3
    assert 'normal</b> · ground truth anomalous' in ex.decision.value and 'wrong' in ex.decision.value and '(FN)' in ex.decision.value
    assert ex.view.value != png and ex.view.value[:4] == b'\x89PNG'
    assert plt.get_fignums() == []
