"""anomaly_nb.metrics against slow, obviously-correct oracles and scikit-learn.

The oracles follow the definitions literally: AUROC over all (anomalous, normal) pairs with ties
counting 1/2; F1 by trying every threshold; PRO by a plain loop over thresholds with
`scipy.ndimage.label` (8-connectivity) and the trapezoid rule cut at the FPR limit.
"""
import json

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn import metrics as skm

from anomaly_nb.core import atomic_write_json
from anomaly_nb.metrics import (F1Result, Metrics, aupro, evaluate, f1_max, image_auroc, pixel_auroc,
                                pixel_stats, pr_curve, pro_curve, rank_stats, roc_curve, toy_maps)

# ---------------------------------------------------------------- oracles

def auroc_pairwise(scores, labels):
    "Fraction of (anomalous, normal) pairs ranked right, ties counting 1/2."
    s, y = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel().astype(bool)
    p, n = s[y][:, None], s[~y][None, :]
    return ((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size)

def f1_brute(scores, labels):
    "Best F1 over every threshold `score >= t` (the lowest t among equals)."
    s, y = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel().astype(bool)
    best = None
    for t in np.unique(s):
        pred = s >= t
        tp, fp, fn = (pred & y).sum(), (pred & ~y).sum(), (~pred & y).sum()
        f1 = 2 * tp / (2 * tp + fp + fn)
        if best is None or f1 > best[0]: best = (f1, tp / (tp + fp), tp / (tp + fn), t)
    return best

def pro_curve_loop(maps, masks):
    "(fpr, pro) at t = +inf and at every distinct score, from the definition."
    regions = []
    for m, mask in zip(maps, masks):
        lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += [m[lab == k] for k in range(1, n + 1)]
    normal = maps[~masks.astype(bool)]
    fpr, pro = [0.], [0.]
    for t in np.unique(maps)[::-1]:
        pro.append(np.mean([(r >= t).mean() for r in regions]))
        fpr.append((normal >= t).mean())
    return np.array(fpr), np.array(pro)

def aupro_loop(maps, masks, limit):
    "Trapezoid area under the PRO curve up to `limit` (interpolated there), over `limit`."
    fpr, pro = pro_curve_loop(maps, masks)
    area = 0.
    for x0, x1, y0, y1 in zip(fpr[:-1], fpr[1:], pro[:-1], pro[1:]):
        if x0 >= limit: break
        if x1 <= limit: area += (x1 - x0) * (y0 + y1) / 2
        else:
            y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + y_lim) / 2
            break
    return area / limit

def sk_f1_max(scores, labels):
    p, r, _ = skm.precision_recall_curve(np.ravel(labels), np.ravel(scores))
    with np.errstate(invalid='ignore'): return np.nanmax(2 * p * r / (p + r))

# ---------------------------------------------------------------- cases

def _cases():
    "(name, maps, masks): random blobs, ties, constant maps, single pixels, borders."
    out = []
    for seed, levels in [(0, None), (1, None), (2, 6), (3, 3), (4, None), (5, 2)]:
        _, _, maps, masks = toy_maps(8, 20, seed=seed, levels=levels)
        out.append((f'toy{seed}-levels{levels}', maps, masks))
    rng = np.random.default_rng(7)
    _, _, maps, masks = toy_maps(6, 16, seed=7)
    out.append(('constant', np.zeros_like(maps), masks))
    out.append(('two-levels', (rng.random(maps.shape) < 0.5).astype(np.float32), masks))
    m = np.zeros((4, 12, 12), bool); m[2, 0, 0] = True
    out.append(('single-pixel-corner', rng.random((4, 12, 12)).astype(np.float32), m))
    m = np.zeros((4, 12, 12), bool); m[1, 0, :] = True; m[1, :, -1] = True; m[3, -2:, :3] = True; m[3, 5, 5] = True
    out.append(('border-rows-and-corner', rng.random((4, 12, 12)).astype(np.float32), m))
    m = np.zeros((3, 10, 10), bool); m[1] = True  # one image is all defect
    out.append(('whole-image-defect', rng.random((3, 10, 10)), m))  # float64 maps
    m = np.zeros((2, 9, 9), bool); m[0, np.arange(9), np.arange(9)] = True  # a diagonal: one 8-connected region
    out.append(('diagonal', rng.integers(0, 5, (2, 9, 9)).astype(np.uint8), m))
    return out

CASES = _cases()
IDS = [c[0] for c in CASES]

# ---------------------------------------------------------------- the fast implementation against the oracles

@pytest.mark.parametrize('name,maps,masks', CASES, ids=IDS)
def test_pixel_metrics_match_oracles(name, maps, masks):
    stats = pixel_stats(maps, masks)
    ref_auroc = auroc_pairwise(maps, masks)
    assert abs(stats.auroc() - ref_auroc) < 1e-12
    assert abs(pixel_auroc(maps, masks) - skm.roc_auc_score(masks.ravel(), maps.ravel())) < 1e-9
    for limit in (0.3, 0.05, 0.5, 1.0):
        assert abs(stats.aupro(limit) - aupro_loop(maps, masks, limit)) < 1e-10, limit
    assert aupro(maps, masks) == stats.aupro(0.3)
    f1, p, r, t = f1_brute(maps, masks)
    res = f1_max(maps, masks)
    assert abs(res.f1 - f1) < 1e-12 and abs(res.precision - p) < 1e-12 and abs(res.recall - r) < 1e-12
    assert res.threshold == float(t)
    assert abs(res.f1 - sk_f1_max(maps, masks)) < 1e-12
    assert stats.n_regions == sum(ndimage.label(m, np.ones((3, 3)))[1] for m in masks)

@pytest.mark.parametrize('name,maps,masks', CASES, ids=IDS)
def test_full_curves_match_sklearn_and_oracle(name, maps, masks):
    fpr, tpr, thr = roc_curve(maps, masks, max_points=None)
    sk = skm.roc_curve(masks.ravel(), maps.ravel(), drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk[0], atol=1e-15); np.testing.assert_allclose(tpr, sk[1], atol=1e-15)
    np.testing.assert_array_equal(thr, sk[2])
    prec, rec, thr = pr_curve(maps, masks, max_points=None)
    sk = skm.precision_recall_curve(masks.ravel(), maps.ravel())
    np.testing.assert_allclose(prec, sk[0][::-1], atol=1e-15); np.testing.assert_allclose(rec, sk[1][::-1], atol=1e-15)
    np.testing.assert_array_equal(thr[1:], sk[2][::-1])
    fpr, pro, thr = pro_curve(maps, masks, max_points=None)
    ref_fpr, ref_pro = pro_curve_loop(maps, masks)
    np.testing.assert_allclose(fpr, ref_fpr, atol=1e-15); np.testing.assert_allclose(pro, ref_pro, atol=1e-12)

def test_thinned_curves_are_points_of_the_full_curve():
    _, _, maps, masks = toy_maps(8, 24, seed=11)
    stats = pixel_stats(maps, masks)
    for curve in ('roc_curve', 'pr_curve', 'pro_curve'):
        full = getattr(stats, curve)(None)
        thin = getattr(stats, curve)(200)
        assert 100 <= len(thin[0]) <= 202 < len(full[0])
        assert thin[2][0] == np.inf and np.all(np.diff(thin[2]) < 0)
        at = {t: (x, y) for x, y, t in zip(*full)}
        for x, y, t in zip(*thin): assert at[t] == (x, y)
        assert thin[2][-1] == full[2][-1]  # the lowest threshold (FPR = TPR = PRO = 1) is kept

@pytest.mark.parametrize('seed', range(6))
def test_image_metrics_match_oracles(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    labels = np.arange(n) < rng.integers(1, n)
    scores = np.round(rng.normal(size=n) + labels * rng.uniform(0, 2), int(rng.integers(0, 3)))  # many ties
    assert abs(image_auroc(scores, labels) - auroc_pairwise(scores, labels)) < 1e-12
    assert abs(image_auroc(scores, labels) - skm.roc_auc_score(labels, scores)) < 1e-9
    f1, p, r, t = f1_brute(scores, labels)
    res = f1_max(scores, labels)
    assert (abs(res.f1 - f1), abs(res.precision - p), abs(res.recall - r)) < (1e-12,) * 3 and res.threshold == t
    assert abs(res.f1 - sk_f1_max(scores, labels)) < 1e-12

@pytest.mark.parametrize('levels', [None, 50])
def test_larger_set_against_sklearn(levels):
    "Thousands of distinct defect scores (the searches run in several chunks), with and without many ties."
    _, _, maps, masks = toy_maps(60, 96, seed=3, levels=levels)
    maps[0, 0, 0] = maps.max() + 1; masks[0, 0, 0] = True  # an isolated single-pixel defect at the corner
    assert levels or len(np.unique(maps[masks])) > 2 * 4096
    assert abs(pixel_auroc(maps, masks) - skm.roc_auc_score(masks.ravel(), maps.ravel())) < 1e-9
    assert abs(f1_max(maps, masks).f1 - sk_f1_max(maps, masks)) < 1e-12
    # AUPRO against the oracle on a coarsened copy (the loop oracle is slow for 500k distinct scores)
    coarse = np.floor(maps * 8) / 8
    assert abs(aupro(coarse, masks) - aupro_loop(coarse, masks, 0.3)) < 1e-10

@pytest.mark.parametrize('seed', range(4))
def test_chunked_search(seed):
    "The cache-friendly search equals np.searchsorted, with ties among and beyond the keys, at chunk edges."
    from anomaly_nb.metrics import _distinct, _search_sorted_keys
    rng = np.random.default_rng(seed)
    a = np.sort(rng.integers(0, int(rng.integers(5, 3000)), 20_000))
    pos = np.sort(a[rng.random(len(a)) < 0.2])  # the anomalous scores are among all scores
    u, first = _distinct(pos)
    n_at = np.diff(first, append=len(pos))
    for step in (1, 2, 7, 4096):
        left, right = _search_sorted_keys(a, u, n_at, step)
        np.testing.assert_array_equal(left, np.searchsorted(a, u, 'left'))
        np.testing.assert_array_equal(right, np.searchsorted(a, u, 'right'))

def test_hand_example():
    m = np.array([[.9, .8, 0, .5], [.6, 0, 0, 0], [0, .3, 0, .7], [.4, 0, 0, 0]], dtype=np.float32)[None]
    k = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 1]], dtype=bool)[None]
    assert abs(aupro(m, k) - 0.671875) < 1e-12 and abs(aupro_loop(m, k, 0.3) - 0.671875) < 1e-12

def test_perfect_worst_constant():
    _, _, maps, masks = toy_maps(6, 16, seed=4)
    for limit in (0.01, 0.3, 1.0):
        assert abs(aupro(masks.astype(np.float32), masks, limit) - 1) < 1e-12
        assert abs(aupro(~masks * np.float32(1), masks, limit)) < 1e-12
        assert abs(aupro(np.full(masks.shape, 3.), masks, limit) - limit / 2) < 1e-12
    assert pixel_auroc(masks * 1., masks) == 1 and pixel_auroc(np.ones(masks.shape), masks) == 0.5

# ---------------------------------------------------------------- backends, inputs, evaluate

def test_torch_backend_matches_numpy():
    _, _, maps, masks = toy_maps(10, 24, seed=5, levels=8)
    tn = pixel_stats(maps, masks, backend='numpy')
    tt = pixel_stats(torch.as_tensor(maps), torch.as_tensor(masks), backend='torch')
    assert tt.auroc() == tn.auroc() and tt.f1_max() == tn.f1_max() and abs(tt.aupro() - tn.aupro()) < 1e-13
    for c in ('roc_curve', 'pro_curve'):
        for a, b in zip(getattr(tt, c)(100), getattr(tn, c)(100)): np.testing.assert_allclose(a, b, atol=1e-13)
    sel = np.arange(10) % 3 > 0
    assert pixel_stats(maps, masks, images=sel).aupro() == pytest.approx(
        pixel_stats(torch.as_tensor(maps), torch.as_tensor(masks), images=sel, backend='torch').aupro(), abs=1e-13)
    # torch inputs on the CPU go through NumPy; half precision is widened exactly
    assert pixel_auroc(torch.as_tensor(maps).half(), torch.as_tensor(masks)) == pixel_auroc(maps.astype(np.float16), masks)

def test_evaluate_torch_path(monkeypatch):
    "evaluate() as it runs for CUDA tensors, here with CPU tensors sent down the torch path."
    import anomaly_nb.metrics as M
    scores, labels, maps, masks = toy_maps(16, 24, seed=9, levels=20)
    has = np.ones(16, bool); has[np.flatnonzero(labels)[0]] = False
    ref = evaluate(scores, labels, maps, masks, has_mask=has)
    monkeypatch.setattr(M, '_backend', lambda x, backend='auto': 'torch' if backend == 'torch' or (
        backend == 'auto' and isinstance(x, torch.Tensor)) else 'numpy')
    got = evaluate(torch.as_tensor(scores), torch.as_tensor(labels), torch.as_tensor(maps), torch.as_tensor(masks),
                   has_mask=torch.as_tensor(has))
    assert isinstance(got.curves, dict) and got.to_dict().keys() == ref.to_dict().keys()
    for k, v in ref.to_dict().items():
        assert got.to_dict()[k] == pytest.approx(v, abs=1e-13) if isinstance(v, float) else got.to_dict()[k] == v, k
    for name, c in ref.curves.items():
        for k in c: np.testing.assert_allclose(got.curves[name][k], c[k], atol=1e-13)
    with pytest.raises(ValueError, match=r'maps contain NaN or inf \(first at image 3\)'):
        evaluate(torch.as_tensor(scores), torch.as_tensor(labels), torch.as_tensor(_with(maps, (3, 0, 0), np.nan)),
                 torch.as_tensor(masks))

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_matches_cpu():
    scores, labels, maps, masks = toy_maps(30, 64, seed=6)
    cpu = evaluate(scores, labels, maps, masks)
    gpu = evaluate(torch.as_tensor(scores).cuda(), torch.as_tensor(labels).cuda(), torch.as_tensor(maps).cuda(),
                   torch.as_tensor(masks).cuda())
    for k in ('image_auroc', 'pixel_auroc', 'pixel_f1', 'pixel_threshold', 'n_regions'): assert getattr(gpu, k) == getattr(cpu, k), k
    assert abs(gpu.aupro - cpu.aupro) < 1e-12

def test_input_types():
    s, y = [0.1, 0.9, 0.5, 0.3], [0, 1, 1, 0]
    assert image_auroc(s, y) == 1.0 == image_auroc(torch.tensor(s), torch.tensor(y, dtype=torch.bool))
    assert image_auroc(np.array([1, 5, 3, 3], np.uint8), np.array([0, 1, 1, 0])) == 0.875
    assert isinstance(f1_max(s, y), F1Result)

def test_evaluate_and_json(tmp_path):
    scores, labels, maps, masks = toy_maps(20, 24, seed=8)
    m = evaluate(scores, labels, maps, masks, fpr_limit=0.2)
    assert isinstance(m, Metrics)
    assert m.image_auroc == image_auroc(scores, labels) and m.pixel_auroc == pixel_auroc(maps, masks)
    assert m.aupro == aupro(maps, masks, 0.2) and m.pixel_f1 == f1_max(maps, masks).f1
    assert (m.n_images, m.n_anomalous, m.n_pixel_images, m.n_skipped_no_mask) == (20, labels.sum(), 20, 0)
    assert m.n_anomalous_pixels == masks.sum() and m.n_normal_pixels == (~masks).sum()
    assert set(m.curves) == {'image_roc', 'image_pr', 'pixel_roc', 'pixel_pr', 'pro'}
    atomic_write_json(tmp_path/'metrics.json', m.to_dict())
    d = json.loads((tmp_path/'metrics.json').read_text())
    assert d['aupro'] == m.aupro and 'curves' not in d and d['pixel_note'] is None
    atomic_write_json(tmp_path/'c.json', m.to_dict(curves=True))
    c = json.loads((tmp_path/'c.json').read_text())['curves']
    assert c['pro']['threshold'][0] is None and c['pro']['fpr'][-1] == 1.0
    # anomalous images without masks are skipped; normal images without masks count as all-normal
    has = np.ones(20, bool); has[np.flatnonzero(labels)[0]] = False; has[np.flatnonzero(~labels)[0]] = False
    m2 = evaluate(scores, labels, maps, masks * has[:, None, None], has_mask=has)
    assert (m2.n_skipped_no_mask, m2.n_pixel_images) == (1, 19) and '1 anomalous image' in m2.pixel_note
    keep = has | ~labels
    assert abs(m2.pixel_auroc - skm.roc_auc_score(masks[keep].ravel(), maps[keep].ravel())) < 1e-9
    assert m2.aupro == aupro(maps[keep], masks[keep])
    m3 = evaluate(scores, labels)
    assert m3.pixel_auroc is m3.aupro is m3.pixel_f1 is None and 'no ground-truth masks' in m3.pixel_note

# ---------------------------------------------------------------- bad input: a clear error that says which

MAPS = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
MASKS = np.zeros((3, 8, 8), bool); MASKS[1, 2:4, 2:4] = True
S, Y = np.array([.1, .9, .2]), np.array([0, 1, 0])

def _with(a, idx, v):
    a = a.copy(); a[idx] = v; return a

PIXEL_FNS = {'pixel_auroc': pixel_auroc, 'aupro': aupro, 'pro_curve': pro_curve, 'f1_max': f1_max,
             'evaluate': lambda maps, masks: evaluate(S, Y, maps, masks)}
BAD_PIXELS = {  # case: (maps, masks, message; f1_max, which takes any scores and labels, names them so)
    'fewer-masks': (MAPS, MASKS[:2], 'maps and masks have different shapes', 'scores and labels have different shapes'),
    'narrower-masks': (MAPS, MASKS[..., :7], 'maps and masks have different shapes', 'scores and labels have different shapes'),
    'nan': (_with(MAPS, (2, 0, 0), np.nan), MASKS, 'maps contain NaN or inf (first at image 2)', 'scores contain NaN or inf'),
    'inf': (_with(MAPS, (1, 5, 5), np.inf), MASKS, 'maps contain NaN or inf (first at image 1)', 'scores contain NaN or inf'),
    '-inf': (_with(MAPS, (0, 0, 0), -np.inf), MASKS, 'maps contain NaN or inf (first at image 0)', 'scores contain NaN or inf'),
    'mask-255': (MAPS, MASKS * np.uint8(255), 'masks must be binary (0/1 or bool), but it holds 255', 'mask > 127'),
    'mask-0.5': (MAPS, MASKS * 0.5, 'masks must be binary (0/1 or bool), but it holds 0.5', 'labels must be binary'),
    'no-defect': (MAPS, np.zeros_like(MASKS), 'no anomalous pixel', 'no anomalous pixel'),
    'all-defect': (MAPS, np.ones_like(MASKS), 'no normal pixel', 'no normal pixel'),
}

@pytest.mark.parametrize('fn', PIXEL_FNS)
@pytest.mark.parametrize('case', BAD_PIXELS)
def test_bad_pixel_input(fn, case):
    maps, masks, msg, msg_f1 = BAD_PIXELS[case]
    if fn == 'f1_max': msg = msg_f1
    if fn == 'evaluate' and case == 'all-defect': msg = 'image 0 is labelled normal but its mask has defect pixels'
    with pytest.raises(ValueError) as e: PIXEL_FNS[fn](maps, masks)
    assert msg in str(e.value), str(e.value)

def test_bad_pixel_input_torch_backend():
    with pytest.raises(ValueError, match=r'maps contain NaN or inf \(first at image 2\)'):
        pixel_stats(torch.as_tensor(_with(MAPS, (2, 0, 0), np.nan)), torch.as_tensor(MASKS), backend='torch')
    with pytest.raises(ValueError, match='mask > 127'):
        pixel_stats(torch.as_tensor(MAPS), torch.as_tensor(MASKS * np.uint8(255)), backend='torch')

@pytest.mark.parametrize('fn', [image_auroc, f1_max, roc_curve, pr_curve, lambda s, y: evaluate(s, y)])
@pytest.mark.parametrize('scores,labels,msg', [
    (S, Y[:2], 'different shapes'),
    (_with(S, 1, np.nan), Y, 'scores contain NaN or inf (first at index 1)'),
    (_with(S, 2, -np.inf), Y, 'scores contain NaN or inf (first at index 2)'),
    (S, np.array([0, 2, 0]), 'labels must be binary'),
    (S, np.zeros(3), 'no anomalous'),
    (S, np.ones(3), 'no normal'),
])
def test_bad_image_input(fn, scores, labels, msg):
    with pytest.raises(ValueError) as e: fn(scores, labels)
    assert msg in str(e.value), str(e.value)
    if fn is image_auroc and 'no ' in msg: assert f'{msg} image' in str(e.value)

def test_bad_arguments():
    with pytest.raises(ValueError, match=r'maps must be \[N, H, W\]'): pixel_auroc(MAPS[0], MASKS[0])
    with pytest.raises(ValueError, match='use pixel_auroc'): image_auroc(MAPS, MASKS)
    for lim in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r'fpr_limit must be in \(0, 1\]'): aupro(MAPS, MASKS, lim)
    with pytest.raises(ValueError, match='no region weights'): pixel_stats(MAPS, MASKS, regions=False).aupro()
    with pytest.raises(ValueError, match='image 1 is labelled normal but its mask has defect pixels'):
        evaluate(S, np.array([0, 0, 1]), MAPS, MASKS)
    with pytest.raises(ValueError, match='maps has 3 images but scores has 2'): evaluate(S[:2], Y[:2], MAPS, MASKS)
    with pytest.raises(ValueError, match='without maps'): evaluate(S, Y, None, MASKS)
    with pytest.raises(ValueError, match='has_mask has shape'): evaluate(S, Y, MAPS, MASKS, has_mask=np.ones(2, bool))
    with pytest.raises(ValueError, match='no anomalous pixel'):  # the only anomalous image has no mask
        evaluate(S, Y, MAPS, MASKS * 0, has_mask=np.array([1, 0, 1], bool))
    with pytest.raises(ValueError, match="backend must be"): rank_stats(S, Y, backend='jax')
    with pytest.raises(TypeError, match='scores must be real numbers'): image_auroc(np.array(['a', 'b']), [0, 1])
