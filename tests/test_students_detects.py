"""Uninformed Students must actually detect: a small ensemble trained for a minute separates synthetic defects,
with the teacher distilled from the pretrained backbone and from the same backbone randomly initialised."""
import pytest
from sklearn.metrics import roc_auc_score
from anomaly_nb.backbones import load_backbone
from anomaly_nb.data import by_split, holdout_val, read_mvtec
from anomaly_nb.evaluate import score_samples
from anomaly_nb.students.scoring import StudentTeacherScorer
from anomaly_nb.students.train import StudentsConfig, TeacherConfig, calibrate_scorer, train_students, train_teacher
from anomaly_nb.synthetic import make_dataset


@pytest.mark.parametrize('weights', ['imagenet', None], ids=['pretrained', 'random'])
def test_a_small_ensemble_separates_synthetic_defects(tmp_path, weights):
    root = make_dataset(tmp_path/'data', categories=('weave',), image_size=64, n_train=20, n_test_good=8, n_per_defect=4)
    samples = holdout_val(read_mvtec(root, 'weave'), fraction=0.2)
    train, val, test = (by_split(samples, k) for k in ('train', 'val', 'test'))
    tcfg = TeacherConfig(patch=17, d=32, widths=(32, 32, 32), backbone='efficientnet_lite0', backbone_weights=weights, image_size=64,
                         epochs=3, patches_per_epoch=512, batch_size=64, lr=1e-3)
    teacher = train_teacher(tcfg, train, tmp_path/'t.pt', 'cpu', load_backbone('efficientnet_lite0', weights), progress=False)
    students = train_students(StudentsConfig(patch=17, n_students=3, image_size=64, epochs=6, lr=1e-3),
                              teacher, train, tmp_path/'s.pt', 'cpu', progress=False)
    scorer = StudentTeacherScorer(teacher.net, students.nets, teacher.mean, teacher.std)
    calibrate_scorer(scorer, val, 64, 'cpu', path=tmp_path/'s.pt')
    scored = score_samples(scorer, test, 64, 8, 'cpu')
    auroc = roc_auc_score(scored.labels, scored.image_scores)
    pixel = roc_auc_score(scored.masks.ravel(), scored.maps.ravel())
    print(f'image AUROC {auroc:.3f}, pixel AUROC {pixel:.3f}')
    assert auroc > 0.8 and pixel > 0.8, f'image AUROC {auroc:.3f}, pixel AUROC {pixel:.3f}'
