"""Time anomaly_nb.metrics on a test set the size of MVTec AD's (1,725 maps of 256x256 = 113 M pixels).

Each pixel metric is timed against a bare sort of the same scores (`np.sort`, or `torch.sort` on a GPU)
and its peak extra memory against the size of the maps and masks; on a subset of the images it is
timed against scikit-learn and the sort-based AUPRO of the MVTec AD evaluation scripts, and the values
are compared.

    python benchmarks/bench_metrics.py                      # full size, CPU
    python benchmarks/bench_metrics.py --n 200 --subset 50  # quicker
    python benchmarks/bench_metrics.py --device cuda        # torch on the GPU
"""
import argparse, bisect, resource, time, tracemalloc

import numpy as np
import torch
from scipy import ndimage
from sklearn import metrics as skm

from anomaly_nb.metrics import aupro, evaluate, f1_max, image_auroc, pixel_auroc, toy_maps


def aupro_mvtec_reference(maps, masks, fpr_limit=0.3):
    "AUPRO as the MVTec AD evaluation scripts compute it (`compute_pro` + `trapezoid`): argsort and cumsums."
    fp_changes = np.zeros(maps.shape, np.uint32)
    pro_changes = np.zeros(maps.shape, np.float64)
    n_ok, n_regions = 0, 0
    for i, mask in enumerate(masks):
        lab, n = ndimage.label(mask, np.ones((3, 3), int))
        n_regions += n
        ok = lab == 0
        n_ok += ok.sum()
        fp_changes[i, ok] = 1
        for k in range(1, n + 1):
            region = lab == k
            pro_changes[i, region] = 1. / region.sum()
    flat = maps.ravel()
    order = np.argsort(flat).astype(np.uint32)[::-1]
    scores = flat[order]
    fprs = np.cumsum(fp_changes.ravel()[order]) / n_ok
    pros = np.cumsum(pro_changes.ravel()[order]) / n_regions
    keep = np.append(np.diff(scores) != 0, True)  # one point per distinct score
    x, y = np.concatenate([[0], fprs[keep], [1]]), np.concatenate([[0], pros[keep], [1]])
    correction = 0.
    if fpr_limit not in x:
        ins = bisect.bisect(x, fpr_limit)
        y_lim = y[ins - 1] + (y[ins] - y[ins - 1]) * (fpr_limit - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_lim + y[ins - 1]) * (fpr_limit - x[ins - 1])
    inside = x <= fpr_limit
    x, y = x[inside], y[inside]
    return (np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction) / fpr_limit


def sklearn_f1_max(maps, masks):
    p, r, _ = skm.precision_recall_curve(masks.ravel(), maps.ravel())
    with np.errstate(invalid='ignore'): return np.nanmax(2 * p * r / (p + r))


def _seconds(fn, cuda):
    if cuda: torch.cuda.synchronize()
    t = time.perf_counter()
    res = fn()
    if cuda: torch.cuda.synchronize()
    return res, time.perf_counter() - t


def _peak(fn, cuda):
    "Peak extra bytes allocated during one call: tracemalloc on the CPU (NumPy reports to it), torch stats on CUDA."
    if cuda:
        base = torch.cuda.memory_allocated(); torch.cuda.reset_peak_memory_stats()
        fn(); torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def measure(fn, sort, cuda=False, repeat=3):
    """(result, best seconds of `fn`, best seconds of the bare `sort`, peak extra bytes of `fn`).
    The sort is timed right before each call, so that the ratio holds on a machine whose load drifts."""
    t_fn, t_sort = [], []
    for _ in range(repeat):
        t_sort.append(_seconds(sort, cuda)[1])
        res, t = _seconds(fn, cuda)
        t_fn.append(t)
    return res, min(t_fn), min(t_sort), _peak(fn, cuda)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=1725, help='number of maps (MVTec AD test: 1725)')
    ap.add_argument('--size', type=int, default=256, help='height and width of each map')
    ap.add_argument('--anomalous', type=float, default=1258 / 1725, help='fraction of anomalous images')
    ap.add_argument('--subset', type=int, default=100, help='images in the comparison with scikit-learn and the MVTec script')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--device', default='cpu', help="'cpu' (NumPy) or 'cuda' (torch on the GPU)")
    ap.add_argument('--fpr-limit', type=float, default=0.3)
    ap.add_argument('--repeat', type=int, default=3, help='time the best of this many calls')
    a = ap.parse_args()

    t = time.perf_counter()
    scores, labels, maps, masks = toy_maps(a.n, a.size, a.anomalous, a.seed)
    data_bytes = maps.nbytes + masks.nbytes
    print(f"data: {a.n} maps of {a.size}x{a.size} = {maps.size / 1e6:.1f} M pixels, {labels.sum()} anomalous images, "
          f"{masks.mean():.2%} defect pixels; maps {maps.dtype} + masks bool = {data_bytes / 2**20:.0f} MiB "
          f"(built in {time.perf_counter() - t:.1f} s)")
    cuda = a.device.startswith('cuda')
    if cuda:
        dev = torch.device(a.device)
        maps, masks = torch.as_tensor(maps, device=dev), torch.as_tensor(masks, device=dev)
        bare_sort = lambda: torch.sort(maps.reshape(-1)).values
        print(f"device: {torch.cuda.get_device_name(dev)}; peak memory is GPU memory (torch.cuda), the region labelling runs on the CPU")
    else:
        bare_sort = lambda: np.sort(maps.reshape(-1))
        print(f"device: CPU ({torch.get_num_threads()} threads); peak memory is extra memory allocated (tracemalloc)")

    rows = [('bare sort (itself)', bare_sort),
            ('pixel_auroc', lambda: pixel_auroc(maps, masks)),
            ('aupro', lambda: aupro(maps, masks, a.fpr_limit)),
            ('f1_max (pixels)', lambda: f1_max(maps, masks)),
            ('evaluate (all metrics + curves)', lambda: evaluate(scores, labels, maps, masks, fpr_limit=a.fpr_limit)),
            ('image_auroc', lambda: image_auroc(scores, labels))]
    print(f"\nseconds: best of {a.repeat} calls; sort s: the bare sort timed just before each call; x sort: their ratio;\n"
          "peak MiB: extra memory during one call; x data: that over the size of maps + masks")
    print(f"{'full set':<34}{'seconds':>9}{'sort s':>8}{'x sort':>8}{'peak MiB':>10}{'x data':>8}  value")
    for name, fn in rows:
        res, secs, sort_secs, peak = measure(fn, bare_sort, cuda, a.repeat)
        val = {'aupro': res, 'pixel_auroc': res, 'image_auroc': res}.get(name, getattr(res, 'f1', None))
        if name.startswith('evaluate'): val = f"AUROC {res.pixel_auroc:.6f} AUPRO {res.aupro:.6f} F1 {res.pixel_f1:.6f}"
        print(f"{name:<34}{secs:9.2f}{sort_secs:8.2f}{secs / sort_secs:8.2f}{peak / 2**20:10.0f}{peak / data_bytes:8.2f}  "
              + (f"{val:.6f}" if isinstance(val, float) else str(val or '')))

    k = min(a.subset, a.n)
    sub_maps = (maps[:k].cpu().numpy() if cuda else maps[:k])
    sub_masks = (masks[:k].cpu().numpy() if cuda else masks[:k])
    print(f"\nsubset: first {k} maps = {sub_maps.size / 1e6:.1f} M pixels, CPU")
    sort_s = min(_seconds(lambda: np.sort(sub_maps.reshape(-1)), False)[1] for _ in range(a.repeat))
    print(f"{'':<28}{'reference s':>12}{'ours s':>9}{'speed-up':>10}{'ours x sort':>13}  |ours - reference|")
    for name, ref, ours in [
            ('pixel AUROC vs sklearn', lambda: skm.roc_auc_score(sub_masks.ravel(), sub_maps.ravel()),
             lambda: pixel_auroc(sub_maps, sub_masks)),
            ('F1-max vs sklearn PR curve', lambda: sklearn_f1_max(sub_maps, sub_masks),
             lambda: f1_max(sub_maps, sub_masks).f1),
            ('AUPRO vs MVTec AD script', lambda: aupro_mvtec_reference(sub_maps, sub_masks, a.fpr_limit),
             lambda: aupro(sub_maps, sub_masks, a.fpr_limit))]:
        t = time.perf_counter(); r_ref = ref(); t_ref = time.perf_counter() - t
        t = time.perf_counter(); r_ours = ours(); t_ours = time.perf_counter() - t
        print(f"{name:<28}{t_ref:12.2f}{t_ours:9.2f}{t_ref / t_ours:9.1f}x{t_ours / sort_s:13.2f}  {abs(r_ours - r_ref):.1e}")
    print(f"(bare sort of the subset: {sort_s:.2f} s; one call each)")
    print(f"\nprocess peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")


if __name__ == '__main__':
    main()
