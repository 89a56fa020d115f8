"""Tables of docs/results.md from the runs of bench/results/*.sh: mean ± std over the
seeds of every configuration (TA, RA, images/s, bytes sent per iteration; a run whose loss
became NaN counts in the seeds, not in the means), and for early stopping the test RA of
the last epoch against that of the best validation epoch.

    /usr/bin/python3 bench/results/summarize.py [RESULTS [SECTION...]]

RESULTS defaults to build/results; SECTIONs (a, b, c, d, torch, transfer, early) pick
tables, all by default.
"""
import json
import statistics
import sys
from pathlib import Path

TABLES = [
    ("a", "(a) AT on 1 rank vs DAT on 4 ranks, with and without LALR; DAT-LSGD",
     ["at-1rank", "dat-4rank-nolalr", "dat-4rank-lalr", "dat-4rank-lsgd"]),
    ("b", "(b) Quantized gradients, DAT-LALR on 4 ranks",
     ["dat-4rank-lalr", "dat-4rank-lalr-q16", "dat-4rank-lalr-q8", "dat-4rank-lalr-q8-two"]),
    ("c", "(c) DAT-FGSM vs DAT-PGD, 4 ranks, LALR", ["dat-4rank-lalr-fgsm", "dat-4rank-lalr"]),
    ("d", "(d) TRADES, 4 ranks, LALR: labeled part only vs with pseudo-labeled data",
     ["teacher", "trades-labeled", "trades-pseudo"]),
    ("torch", "The main job's recipe at 6 000 training images: libdat vs PyTorch",
     ["main-recipe-libdat", "main-recipe-pytorch"]),
    ("torch", "The main job's recipe over the whole epoch (60 000 images): libdat vs PyTorch",
     ["main-recipe-60000-libdat", "main-recipe-60000-pytorch"]),
    ("transfer", "Transfer: PGD-AT finetuning on classes 5-9",
     ["pretrain-robust", "pretrain-standard", "finetune-from-robust", "finetune-from-standard",
      "finetune-scratch"]),
]


def mean_std(xs, scale=1.0, digits=2):
    if not xs:
        return "-"
    m = statistics.mean(xs) * scale
    s = statistics.stdev(xs) * scale if len(xs) > 1 else 0.0
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def runs(root, name):
    """[(final JSON, [epoch JSON lines])] of every finished seed of `name`."""
    out = []
    for f in sorted(root.glob(f"{name}.s*.json")):
        final = json.loads(f.read_text().strip().splitlines()[-1])
        m = f.with_name(f.name[:-len(".json")] + ".metrics.jsonl")
        epochs = [json.loads(x) for x in m.read_text().splitlines()] if m.exists() else []
        out.append((final, epochs))
    return out


def table(root, title, names):
    print(f"\n### {title}\n")
    print("| run | seeds | TA % | RA % (PGD-20) | images/s | MB sent per iteration |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        every = runs(root, name)
        rs = [r for r in every if "diverged" not in r[0]]
        lost = len(every) - len(rs)
        seeds = f"{len(every)} ({lost} diverged)" if lost else f"{len(every)}"
        if not rs:
            print(f"| {name} | {seeds} | - | - | - | - |")
            continue
        get = lambda k: [r[0][k] for r in rs if k in r[0]]
        print(f"| {name} | {seeds} | {mean_std(get('ta'), 100)} | {mean_std(get('ra'), 100)} "
              f"| {mean_std(get('images_per_s'), 1, 0)} "
              f"| {mean_std(get('bytes_sent_per_iter'), 1e-6, 3)} |")


def early_stopping(root):
    rs = runs(root, "early-stopping")
    print("\n### Early stopping: test accuracy at the last epoch vs at the best validation RA\n")
    print("| seed | best epoch | val RA % at best | test TA / RA % at best | "
          "test TA / RA % at last |")
    print("|---:|---:|---:|---:|---:|")
    best_ra, last_ra = [], []
    for i, (final, epochs) in enumerate(rs):
        if not epochs or "val_ra" not in epochs[0]:
            continue
        b = max(range(len(epochs)), key=lambda e: (epochs[e]["val_ra"], -e))
        eb, el = epochs[b], epochs[-1]
        best_ra.append(eb["ra"])
        last_ra.append(el["ra"])
        print(f"| {i + 1} | {eb['epoch']} | {100 * eb['val_ra']:.2f} | "
              f"{100 * eb['ta']:.2f} / {100 * eb['ra']:.2f} | "
              f"{100 * el['ta']:.2f} / {100 * el['ra']:.2f} |")
    if best_ra:
        print(f"\nTest RA, mean ± std: best {mean_std(best_ra, 100)}, last "
              f"{mean_std(last_ra, 100)}.")


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "build/results")
    want = set(sys.argv[2:]) or {t[0] for t in TABLES} | {"early"}
    for key, title, names in TABLES:
        if key in want:
            table(root, title, names)
    if "early" in want:
        early_stopping(root)


if __name__ == "__main__":
    main()
