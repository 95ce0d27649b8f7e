"""Tests of anomaly_nb.data and anomaly_nb.synthetic beyond the notebooks' own checks:
the real images in ../shared/data (skipped when absent), every bad-input case, the split table,
and the synthetic generator's determinism and mask/defect agreement on the written files."""
import dataclasses, hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from anomaly_nb.core import shared_dir
from anomaly_nb.data import (SPLITS, AnomalyDataset, DataError, PatchDataset, Sample, anomaly_split, by_split,
                             check_train_split, denormalize, eval_transform, holdout_val, images_tensor, load_image,
                             load_mask, mvtec_categories, read_csv, read_dataset, read_folder, read_mvtec,
                             student_transform, teacher_transform)
from anomaly_nb.synthetic import CATEGORIES, default_dataset, make_dataset, render, sample_seed

DATA = shared_dir('data')
needs_data = pytest.mark.skipif(DATA is None, reason='../shared/data is absent (only a development checkout has it)')


def png(path, arr=None, mode=None, size=(8, 6), value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr is None: arr = np.full((size[1], size[0], 3), value, np.uint8)
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(path)
    return path


# ---------------------------------------------------------------- real images in ../shared/data

@needs_data
def test_mvtec_256_categories_ignore_stray_files():
    root = DATA/'mvtec_ad_256'
    assert (root/'license.txt').is_file() and (root/'readme.txt').is_file()   # the premise of this test
    assert mvtec_categories(root) == ['hazelnut', 'transistor']


@needs_data
@pytest.mark.parametrize('category,defects', [('hazelnut', ['crack', 'cut', 'hole', 'print']),
                                              ('transistor', ['bent_lead', 'cut_lead', 'damaged_case', 'misplaced'])])
def test_mvtec_256_reader(category, defects):
    ss = read_mvtec(DATA/'mvtec_ad_256', category)
    assert all(s.category == category for s in ss)
    train, test = by_split(ss, 'train'), by_split(ss, 'test')
    assert len(train) == 50 and not any(s.is_anomalous for s in train)
    assert sorted({s.defect_type for s in test}) == sorted(['good', *defects])
    assert sum(s.defect_type == 'good' for s in test) == 2
    for d in defects: assert sum(s.defect_type == d for s in test) == 2
    for s in test:
        assert s.is_anomalous == (s.defect_type != 'good')
        assert (s.mask_path is not None) == s.is_anomalous
    bad = [s for s in test if s.is_anomalous]
    for s in bad:
        assert Image.open(s.mask_path).mode == '1'                       # 1-bit PNG masks
        m = load_mask(s.mask_path, load_image(s.path).size, s.path)
        assert m.dtype == bool and m.shape == (256, 256) and m.any() and not m.all()
        np.testing.assert_array_equal(m, np.asarray(Image.open(s.mask_path)).astype(bool))
    batch = AnomalyDataset(bad, image_size=64).stack()
    assert batch['image'].shape == (8, 3, 64, 64) and batch['mask'].shape == (8, 1, 64, 64)
    assert set(batch['mask'].unique().tolist()) == {0.0, 1.0}
    assert batch['has_mask'].all() and batch['label'].tolist() == [1] * 8


@needs_data
def test_magnetic_tile_grayscale_jpegs_and_noisy_masks():
    ss = read_mvtec(DATA, 'magnetic_tile')
    assert [sum(s.split == sp for s in ss) for sp in SPLITS] == [5, 0, 9]
    assert sorted({s.defect_type for s in ss if s.is_anomalous}) == ['blowhole', 'break', 'crack']
    sizes = set()
    for s in ss:
        raw = Image.open(s.path)
        assert raw.mode == 'L' and s.path.suffix == '.jpg'
        im = load_image(s.path)
        assert im.mode == 'RGB' and im.size == raw.size
        a = np.asarray(im)
        assert (a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all()   # gray replicated, not recoloured
        sizes.add(im.size)
        if s.is_anomalous:
            raw_mask = np.asarray(Image.open(s.mask_path))
            m = load_mask(s.mask_path, im.size, s.path)
            np.testing.assert_array_equal(m, raw_mask > 127)               # reference: the threshold by hand
            assert m.any()
    assert len(sizes) > 3                                                   # varying sizes
    noisy = [np.asarray(Image.open(s.mask_path)) for s in ss if s.is_anomalous]
    assert any(len(np.unique(m)) > 2 for m in noisy)                        # the masks really are not binary
    item = AnomalyDataset([s for s in ss if s.is_anomalous], image_size=96)[0]
    assert item['image'].shape == (3, 96, 96) and set(item['mask'].unique().tolist()) <= {0.0, 1.0}


@needs_data
def test_holdout_val_on_real_mvtec():
    ss = read_mvtec(DATA/'mvtec_ad_256', 'hazelnut')
    hv = holdout_val(ss, 0.1, seed=0)
    assert [sum(s.split == sp for s in hv) for sp in SPLITS] == [45, 5, 10]
    assert hv == holdout_val(ss, 0.1, seed=0) and hv != holdout_val(ss, 0.1, seed=1)
    assert [s for s in hv if s.split == 'test'] == [s for s in ss if s.split == 'test']
    assert not any(s.is_anomalous for s in hv if s.split == 'val')


# ---------------------------------------------------------------- conversions (accepted, not rejected)

def test_odd_image_formats_are_converted(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    cases = {
        'gray.png': (png(tmp_path/'gray.png', rgb[..., 0]), np.repeat(rgb[..., :1], 3, -1)),
        'rgba.png': (png(tmp_path/'rgba.png', np.dstack([rgb, np.full((6, 8), 9, np.uint8)])), rgb),
        'la.png': (png(tmp_path/'la.png', np.dstack([rgb[..., 0], rgb[..., 1]]), 'LA'), np.repeat(rgb[..., :1], 3, -1)),
        'gray.jpg': (png(tmp_path/'gray.jpg', np.full((6, 8), 77, np.uint8)), np.full((6, 8, 3), 77, np.uint8)),
    }
    for name, (path, want) in cases.items():
        im = load_image(path)
        assert im.mode == 'RGB', name
        np.testing.assert_array_equal(np.asarray(im), want, err_msg=name)
    Image.fromarray(rgb).quantize(16).save(tmp_path/'pal.png')
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path/'pal.png')),
                                  np.asarray(Image.open(tmp_path/'pal.png').convert('RGB')))


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    v = np.array([[0, 257, 1000, 32768, 65535]], np.uint16)
    png(tmp_path/'deep.png', v)
    assert Image.open(tmp_path/'deep.png').mode.startswith('I')
    got = np.asarray(load_image(tmp_path/'deep.png'))[..., 0]
    np.testing.assert_array_equal(got, np.rint(v / 257).astype(np.uint8))     # reference: 65535 -> 255 by hand
    assert got.tolist() == [[0, 1, 4, 128, 255]]
    # and through the dataset: a 16-bit normal image is accepted and normalised like its 8-bit version
    png(tmp_path/'deep8.png', np.rint(v / 257).astype(np.uint8))
    a = AnomalyDataset([Sample(tmp_path/'deep.png', False)], image_size=5)[0]['image']
    b = AnomalyDataset([Sample(tmp_path/'deep8.png', False)], image_size=5)[0]['image']
    torch.testing.assert_close(a, b)


def test_mask_thresholds(tmp_path):
    png(tmp_path/'m8.png', np.array([[0, 127, 128, 255]], np.uint8))
    png(tmp_path/'m16.png', np.array([[0, 32639, 32896, 65535]], np.uint16))
    png(tmp_path/'mrgb.png', np.array([[[0, 0, 0], [120, 120, 120], [200, 200, 200], [255, 255, 255]]], np.uint8))
    Image.fromarray(np.array([[0, 1, 1, 0]], bool)).save(tmp_path/'m1.png')
    assert load_mask(tmp_path/'m8.png').tolist() == [[False, False, True, True]]
    assert load_mask(tmp_path/'m16.png').tolist() == [[False, False, True, True]]
    assert load_mask(tmp_path/'mrgb.png').tolist() == [[False, False, True, True]]
    assert load_mask(tmp_path/'m1.png').tolist() == [[False, True, True, False]]


# ---------------------------------------------------------------- bad input: errors name the culprit

def test_truncated_and_non_image_files(tmp_path):
    whole = png(tmp_path/'whole.png', np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = whole.read_bytes()
    (tmp_path/'cut.png').write_bytes(data[:len(data) // 2])
    (tmp_path/'text.jpg').write_text('hello')
    for name in ('cut.png', 'text.jpg'):
        with pytest.raises(DataError, match=name): load_image(tmp_path/name)
        with pytest.raises(DataError, match=name): AnomalyDataset([Sample(tmp_path/name, False)], image_size=8)[0]
    with pytest.raises(DataError, match='cut.png'): load_mask(tmp_path/'cut.png')
    with pytest.raises(FileNotFoundError, match='absent.png'): load_image(tmp_path/'absent.png')


def test_mask_size_mismatch_names_both_files(tmp_path):
    img = png(tmp_path/'img.png', size=(8, 6))
    mask = png(tmp_path/'img_mask.png', np.zeros((5, 5), np.uint8))
    ds = AnomalyDataset([Sample(img, True, mask)], image_size=8)
    with pytest.raises(DataError) as e: ds[0]
    assert 'img_mask.png' in str(e.value) and str(img) in str(e.value) and '5x5' in str(e.value) and '8x6' in str(e.value)


def test_csv_errors_name_row_and_file(tmp_path):
    png(tmp_path/'a.png'); png(tmp_path/'b.png'); png(tmp_path/'b_mask.png', np.zeros((6, 8), np.uint8))
    (tmp_path/'ok.csv').write_text('filename,is_anomalous,mask_path,split\na.png,0,,train\nb.png,1,b_mask.png,test\n')
    ss = read_csv(tmp_path/'ok.csv')
    assert [(s.path.name, s.is_anomalous, s.split, s.mask_path and s.mask_path.name) for s in ss] == \
           [('a.png', False, 'train', None), ('b.png', True, 'test', 'b_mask.png')]
    cases = {'missing_image.csv': ('filename,is_anomalous\na.png,0\nb.png,1\nsub/c.png,1\n', ['row 3', 'c.png']),
             'missing_mask.csv': ('filename,is_anomalous,mask_path\nb.png,1,nomask.png\n', ['row 1', 'nomask.png']),
             'bad_label.csv': ('filename,is_anomalous\na.png,2\n', ['row 1', 'a.png', "'2'"]),
             'bad_split.csv': ('filename,is_anomalous,split\na.png,0,training\n', ['row 1', 'a.png']),
             'no_label.csv': ('filename\na.png\n', ['no_label.csv', 'is_anomalous']),
             'empty.csv': ('', ['empty.csv'])}
    for name, (text, words) in cases.items():
        (tmp_path/name).write_text(text)
        with pytest.raises((DataError, FileNotFoundError)) as e: read_csv(tmp_path/name)
        for w in words: assert w in str(e.value), (name, w, str(e.value))
    with pytest.raises(FileNotFoundError, match='nothere.csv'): read_csv(tmp_path/'nothere.csv')


def test_csv_root_and_header_spaces(tmp_path):
    png(tmp_path/'imgs'/'x.png')
    (tmp_path/'lists').mkdir()
    (tmp_path/'lists'/'l.csv').write_text('filename, is_anomalous\nimgs/x.png, 1\n')
    (s,) = read_csv(tmp_path/'lists'/'l.csv', root=tmp_path)
    assert s.path == tmp_path/'imgs'/'x.png' and s.is_anomalous and s.defect_type == 'defect' and s.category == 'l'


def test_training_split_with_anomalies_or_empty(tmp_path):
    good = [Sample(png(tmp_path/f'g{i}.png'), False, split='train') for i in range(3)]
    leak = Sample(png(tmp_path/'leak.png'), True, split='train')
    with pytest.raises(DataError, match='leak.png'): check_train_split(good + [leak])
    with pytest.raises(DataError, match='leak.png'): by_split(good + [leak], 'train')
    with pytest.raises(DataError, match='leak.png'): PatchDataset(good + [leak], 5, image_size=8)
    with pytest.raises(DataError, match='leak.png'): holdout_val(good + [leak])
    with pytest.raises(DataError, match='empty'): check_train_split([])
    with pytest.raises(DataError, match='empty'): by_split([dataclasses.replace(g, split='test') for g in good], 'train')
    with pytest.raises(DataError, match='empty'): anomaly_split([dataclasses.replace(leak, split=None)] * 4)
    with pytest.raises(DataError, match='empty'): holdout_val(good[:1], 0.5)


def test_reader_errors_name_the_folder(tmp_path):
    png(tmp_path/'mv'/'screw'/'train'/'good'/'000.png')
    with pytest.raises(FileNotFoundError) as e: read_mvtec(tmp_path/'mv', 'hazelnut')
    assert str(tmp_path/'mv'/'hazelnut') in str(e.value) and 'screw' in str(e.value)
    with pytest.raises(FileNotFoundError, match='images'): read_folder(tmp_path/'mv')
    with pytest.raises(FileNotFoundError, match='nowhere'): read_dataset(tmp_path/'nowhere')


def test_read_folder_with_defect_subfolders_and_masks(tmp_path):
    for d in ('good', 'crack', 'hole'):
        for i in range(2): png(tmp_path/'bottle'/'images'/d/f'{i:03d}.png')
    png(tmp_path/'bottle'/'masks'/'crack'/'000_mask.png', np.zeros((6, 8), np.uint8))
    png(tmp_path/'bottle'/'masks'/'hole'/'001.png', np.zeros((6, 8), np.uint8))
    (tmp_path/'bottle'/'images'/'notes.txt').write_text('x')
    ss = read_folder(tmp_path, 'bottle')
    assert [(s.defect_type, s.path.name, s.mask_path and s.mask_path.relative_to(tmp_path/'bottle').as_posix()) for s in ss] == [
        ('good', '000.png', None), ('good', '001.png', None), ('crack', '000.png', 'masks/crack/000_mask.png'),
        ('crack', '001.png', None), ('hole', '000.png', None), ('hole', '001.png', 'masks/hole/001.png')]
    assert all(s.category == 'bottle' and s.split is None for s in ss)
    assert read_dataset(tmp_path, 'bottle') == ss


# ---------------------------------------------------------------- the split engine

@pytest.mark.parametrize('pct,normal,anomalous', [((70, 15, 15), (70, 15, 15), (0, 30, 30)),
                                                  ((70, 20, 10), (70, 20, 10), (0, 40, 20)),
                                                  ((80, 10, 10), (80, 10, 10), (0, 30, 30)),
                                                  ((60, 30, 10), (60, 30, 10), (0, 45, 15))])
def test_split_table(pct, normal, anomalous):
    pool = [Sample(f'n/{i:03d}.png', False) for i in range(100)] + [Sample(f'a/{i:03d}.png', True) for i in range(60)]
    ss = anomaly_split(pool, *pct, seed=0)
    assert tuple(sum(not s.is_anomalous and s.split == sp for s in ss) for sp in SPLITS) == normal
    got = tuple(sum(s.is_anomalous and s.split == sp for s in ss) for sp in SPLITS)
    assert got == anomalous
    # the seed's percentages: anomalous val share = val / (val + test)
    assert got[1] / sum(got) == pytest.approx(pct[1] / (pct[1] + pct[2]))


@pytest.mark.parametrize('n_normal,n_anom,seed', [(1, 0, 0), (7, 3, 1), (33, 17, 2), (250, 1, 3), (10, 90, 4)])
def test_split_invariants(n_normal, n_anom, seed):
    pool = [Sample(f'n{i}.png', False) for i in range(n_normal)] + [Sample(f'a{i}.png', True) for i in range(n_anom)]
    ss = anomaly_split(pool, 70, 20, 10, seed=seed)
    assert [s.path for s in ss] == [s.path for s in pool]                    # order kept, every sample assigned
    assert all(s.split in SPLITS for s in ss)
    assert not any(s.is_anomalous and s.split == 'train' for s in ss)
    n_train = sum(s.split == 'train' for s in ss)
    assert n_train == int(np.floor(n_normal * 0.7 + 0.5)) and n_train >= 1
    rng = np.random.default_rng(seed)
    shuffled = [pool[i] for i in rng.permutation(len(pool))]
    assert {s.path: s.split for s in anomaly_split(shuffled, 70, 20, 10, seed=seed)} == {s.path: s.split for s in ss}


def test_split_bad_parameters():
    pool = [Sample('n.png', False), Sample('a.png', True)]
    with pytest.raises(ValueError, match='val=-5'): anomaly_split(pool, 70, -5, 35)
    with pytest.raises(DataError, match='val=test=0'): anomaly_split(pool, 100, 0, 0)


# ---------------------------------------------------------------- transforms and datasets

def test_transforms_keep_image_and_mask_together(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    m = np.zeros((40, 40), np.uint8); m[5:15, 20:35] = 255
    s = Sample(png(tmp_path/'i.png', img), True, png(tmp_path/'m.png', m))
    torch.manual_seed(0)
    ref = AnomalyDataset([s], eval_transform(40))[0]
    seen = set()
    for _ in range(12):
        it = AnomalyDataset([s], student_transform(40))[0]
        # find which flip was applied from the image, then check the mask got the same one
        for k, f in enumerate([lambda t: t, lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.flip(-1).flip(-2)]):
            if torch.allclose(it['image'], f(ref['image'])):
                assert torch.equal(it['mask'], f(ref['mask'])); seen.add(k); break
        else: raise AssertionError('student transform did something other than flips')
    assert len(seen) > 1
    assert ref['mask'].sum() == 150 and set(ref['mask'].unique().tolist()) == {0.0, 1.0}


def test_teacher_patches_and_patch_dataset(tmp_path):
    ss = [Sample(png(tmp_path/f'{i}.png', np.random.default_rng(i).integers(0, 256, (48, 48, 3), dtype=np.uint8)), False)
          for i in range(3)]
    a = PatchDataset(ss, 17, n_patches=6, image_size=32, seed=5)
    b = PatchDataset(ss, 17, n_patches=6, image_size=32, seed=5)
    pa = torch.stack([a[i] for i in range(6)])
    assert pa.shape == (6, 3, 17, 17)
    torch.testing.assert_close(torch.stack([b[i] for i in reversed(range(6))]).flip(0), pa, rtol=0, atol=0)
    torch.manual_seed(123)                                                   # the global RNG does not matter
    torch.testing.assert_close(torch.stack([a[i] for i in range(6)]), pa, rtol=0, atol=0)
    a.set_epoch(1)
    assert not torch.equal(torch.stack([a[i] for i in range(6)]), pa)
    assert not torch.equal(torch.stack([PatchDataset(ss, 17, 6, 32, seed=6)[i] for i in range(6)]), pa)
    loader = torch.utils.data.DataLoader(b, batch_size=3)
    torch.testing.assert_close(torch.cat(list(loader)), pa, rtol=0, atol=0)
    with pytest.raises(ValueError, match='patch_size=65'): PatchDataset(ss, 65, image_size=32)
    # the seed's literal order gives blank corners on rotation; the default does not
    flat = Image.new('RGB', (64, 64), (255, 255, 255))
    torch.manual_seed(0)
    lit = torch.stack([teacher_transform(33, 64, rotate_margin=False)(flat) for _ in range(20)])
    dflt = torch.stack([teacher_transform(33, 64)(flat) for _ in range(20)])
    assert denormalize(lit).min() < 0.5 and denormalize(dflt).min() > 0.99


def test_denormalize_inverts_normalize():
    x = torch.rand(2, 3, 4, 4)
    n = (x - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    torch.testing.assert_close(denormalize(n), x)
    torch.testing.assert_close(denormalize(n[1]), x[1])


def test_has_mask_rules(tmp_path):
    g, a = png(tmp_path/'g.png'), png(tmp_path/'a.png')
    mk = png(tmp_path/'a_mask.png', np.full((6, 8), 255, np.uint8))
    b = AnomalyDataset([Sample(g, False), Sample(a, True), Sample(a, True, mk)], image_size=4).stack()
    assert b['has_mask'].tolist() == [True, False, True]
    assert b['mask'].sum((1, 2, 3)).tolist() == [0, 0, 16]
    assert b['label'].tolist() == [0, 1, 1] and b['path'] == [str(g), str(a), str(a)]
    assert images_tensor([Sample(g, False)], 4).shape == (1, 3, 4, 4)


# ---------------------------------------------------------------- the synthetic data set

def digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_synthetic_same_seed_same_bytes(tmp_path):
    kw = dict(image_size=96, n_train=4, n_test_good=2, n_per_defect=3)
    a, b = digest(make_dataset(tmp_path/'a', **kw)), digest(make_dataset(tmp_path/'b', **kw))
    assert a == b and len(a) == 2 * (4 + 2 + 3 * 3 * 2) + 2
    c = digest(make_dataset(tmp_path/'c', **kw, seed=1))
    assert all(c[k] != a[k] for k in a if k.endswith('.png'))
    # more training images leave the test files unchanged
    d = digest(make_dataset(tmp_path/'d', **{**kw, 'n_train': 6}))
    assert all(d[k] == a[k] for k in a if '/test/' in k or '/ground_truth/' in k)


def test_synthetic_files_agree_with_their_masks(tmp_path):
    root = make_dataset(tmp_path, image_size=128, n_train=2, n_test_good=2, n_per_defect=4, seed=3)
    assert mvtec_categories(root) == ['pill', 'weave']
    for cat, defects in CATEGORIES.items():
        ss = read_mvtec(root, cat)
        assert sorted({s.defect_type for s in ss}) == sorted(['good', *defects])
        for s in ss:
            img = np.asarray(load_image(s.path))
            r = render(cat, s.defect_type, 128, sample_seed(3, cat, s.split, s.defect_type, int(s.path.stem)))
            np.testing.assert_array_equal(img, r.image)
            changed = (img != r.clean).any(-1)
            if not s.is_anomalous:
                assert s.mask_path is None and not changed.any()
                continue
            mask = load_mask(s.mask_path, (128, 128), s.path)
            assert mask.any() and not changed[~mask].any()                   # identical outside the mask
            delta = np.abs(img.astype(int) - r.clean.astype(int)).max(-1)[mask]
            assert delta.min() >= 20 and delta.mean() >= 60                  # visible everywhere inside it


def test_default_dataset_is_cached_and_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv('ANOMALY_NB_CACHE', str(tmp_path))
    kw = dict(image_size=48, n_train=2, n_test_good=1, n_per_defect=1, categories=('pill',))
    root = default_dataset(**kw)
    assert root.parent == tmp_path/'synthetic' and (root/'params.json').is_file()
    assert mvtec_categories(root) == ['pill']
    stamp = (root/'pill'/'train'/'good'/'000.png').stat().st_mtime_ns
    assert default_dataset(**kw) == root
    assert (root/'pill'/'train'/'good'/'000.png').stat().st_mtime_ns == stamp   # not rebuilt
    assert default_dataset(**{**kw, 'seed': 1}) != root
    (root/'params.json').unlink()                                            # an incomplete folder is rebuilt
    assert default_dataset(**kw) == root and (root/'params.json').is_file()
    assert [p.name for p in (tmp_path/'synthetic').iterdir() if p.name.startswith('.')] == []   # no temp folders left
    with pytest.raises(TypeError, match='n_trian'): default_dataset(n_trian=3)


def test_synthetic_defects_visible_at_128():
    for cat, defects in CATEGORIES.items():
        for d in defects:
            for k in range(3):
                r = render(cat, d, 256, (9, k))
                small = lambda a: np.asarray(Image.fromarray(a).resize((128, 128), Image.BILINEAR)).astype(int)
                m = np.asarray(Image.fromarray(r.mask).resize((128, 128), Image.NEAREST))
                assert m.any(), (cat, d, k)
                assert np.abs(small(r.image) - small(r.clean)).max(-1)[m].max() > 50, (cat, d, k)
