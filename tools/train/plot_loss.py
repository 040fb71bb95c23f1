"""Plots a training log (train.py --log, one JSON object per step) as a PNG: the label loss per step, its
moving average, and the held-out accuracy at each evaluation.

usage: python3 tools/train/plot_loss.py LOG.jsonl OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def main(log, out):
    rows = [json.loads(line) for line in open(log) if line.strip()]
    steps = [r['step'] for r in rows]
    loss = [r['loss'] for r in rows]
    avg = []
    acc = 0.0
    for i, x in enumerate(loss):
        acc = x if i == 0 else 0.97 * acc + 0.03 * x
        avg.append(acc)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(steps, loss, color='#c8d6e5', linewidth=0.7, label='label loss (batch)')
    ax.plot(steps, avg, color='#1f4e79', linewidth=1.6, label='moving average')
    ax.set_yscale('log')
    ax.set_xlabel('step (32 notes each)')
    ax.set_ylabel('cross entropy of the label token (log scale)')
    evals = [(r['step'], r['heldout_acc']) for r in rows if 'heldout_acc' in r]
    if evals:
        ax2 = ax.twinx()
        ax2.plot([e[0] for e in evals], [100 * e[1] for e in evals], 'o-', color='#c0392b', markersize=4, label='held-out accuracy')
        ax2.set_ylabel('held-out accuracy % (500 notes)')
        ax2.set_ylim(min(90, min(100 * e[1] for e in evals) - 1), 100)
        ax2.legend(loc='center right')
    secs = rows[-1].get('s')
    ax.set_title(f'weld-demo SambaY: {len(rows)} steps' + (f', {secs / 60:.0f} min' if secs else ''))
    ax.legend(loc='upper right')
    fig.tight_layout()
    fig.savefig(out)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
