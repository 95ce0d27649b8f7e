"""Dense scoring with FDFE against the naive per-patch loop, for each patch size of Uninformed Students.

For one `size`×`size` image, FDFE computes every pixel's descriptor in one dense pass. The naive loop
runs the patch network once per pixel; it is timed on a `crop`×`crop` block of pixels (which it can
finish) and extrapolated linearly to the whole image. The two results are compared on that block.

    python benchmarks/bench_students.py                      # CPU, 256×256, p = 17, 33, 65
    python benchmarks/bench_students.py --device cuda        # on a GPU
"""
import argparse, time
import torch
from anomaly_nb.core import get_device
from anomaly_nb.students.teacher import PatchNet, PatchNetConfig
from anomaly_nb.students.fdfe import FDFE, dense_naive


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def timed(fn, device, repeat=1):
    "Best wall time of `repeat` calls of `fn` (after one warm-up call) and its last result."
    out = fn(); sync(device)
    best = float('inf')
    for _ in range(repeat):
        t = time.perf_counter(); out = fn(); sync(device); best = min(best, time.perf_counter() - t)
    return best, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--size', type=int, default=256, help='image side')
    ap.add_argument('--crop', type=int, default=12, help='side of the pixel block the naive loop is timed on')
    ap.add_argument('--patches', type=int, nargs='+', default=[17, 33, 65])
    ap.add_argument('--d', type=int, default=512, help='descriptor dimension')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--batch', type=int, default=256, help='patches per call of the naive loop')
    args = ap.parse_args()
    device = get_device(args.device)
    torch.manual_seed(0)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; image {args.size}×{args.size}, "
          f"d={args.d}, paper widths; naive loop timed on {args.crop}×{args.crop} pixels and extrapolated\n")
    print(f"{'p':>3} {'FDFE s':>9} {'naive s (extrap.)':>18} {'speed-up':>9} {'max |diff|':>11}")
    x = torch.randn(1, 3, args.size, args.size, device=device)
    n_pix = args.size * args.size
    for p in args.patches:
        net = PatchNet(PatchNetConfig(p, d=args.d)).to(device).eval()
        dense = FDFE(net)
        with torch.no_grad():
            t_dense, out = timed(lambda: dense(x), device, repeat=2)
        r0 = args.size // 2 - args.crop // 2
        pix = torch.cartesian_prod(torch.arange(r0, r0 + args.crop), torch.arange(r0, r0 + args.crop))
        t_block, ref = timed(lambda: dense_naive(net, x, pix, batch=args.batch), device)
        t_naive = t_block * n_pix / len(pix)
        diff = (out[:, :, pix[:, 0], pix[:, 1]] - ref).abs().max().item()
        assert diff < 1e-3, f"p={p}: FDFE differs from the per-patch result by {diff}"
        print(f"{p:>3} {t_dense:>9.3f} {t_naive:>18.1f} {t_naive / t_dense:>8.0f}x {diff:>11.1e}")


if __name__ == '__main__':
    main()
