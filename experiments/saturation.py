"""Study 4: saturation and vanishing gradients.

    python3 experiments/saturation.py          # ~4 min on 2 cores

1. Per-layer gradient norms of a 64-30-30-30-30-10 net on digits (cross-entropy
   on a sigmoid output, as Nielsen; LeCun-normal init), hidden sigmoid, tanh, scaled tanh and
   ReLU: at init and along one run of mini-batch SGD (batch 10, lr 0.1, as Nielsen
   trains; params kept at checkpoint epochs by the loop), measured on the full training set.  The measure is Nielsen's
   (chapter 5): the norm of dC/db per hidden layer (the weight-gradient norms
   are stored too); the ratio last/first hidden layer says how much slower the
   first layer learns.
2. Targets 0.1/0.9 against 0/1 with a sigmoid output (64-30-10 sigmoid net):
   how far the output units are driven into saturation, and test accuracy.
3. Input standardisation: raw digits pixels (0..16) against zero-mean,
   unit-variance inputs: hidden saturation at init and the training that follows.

Writes ``experiments/results/saturation.json``, ``figures/saturation.png`` and
its README section.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bpkit import study
from bpkit.tables import Table

FOLDER = study.Folder(Path(__file__).resolve().parent)

NAME = "saturation"
ACTIVATIONS = ("sigmoid", "tanh", "scaled_tanh", "relu")
SIZES = (64, 30, 30, 30, 30, 10)
CHECKPOINTS = (0, 1, 2, 5, 10, 20, 50)
SEEDS = tuple(range(10))
LOSS = "bce"  # Nielsen's chapter 5 trains with the cross-entropy cost


def saturated_fraction(net, params, x, threshold=0.01) -> list[float]:
    """Per layer: the fraction of units x examples whose f'(z) < threshold * max f' (dead ReLUs count)."""
    import jax.numpy as jnp

    out, cache = net.forward(params, x)
    fr = []
    for act, z in zip(net.activations, cache.zs, strict=True):
        peak = float(jnp.max(act.deriv(jnp.linspace(-10.0, 10.0, 20001, dtype=z.dtype))))
        fr.append(float(np.mean(np.asarray(act.deriv(z)) < threshold * peak)))
    return fr


def depth_norms() -> list[dict]:
    import jax
    import jax.numpy as jnp
    import optax

    from bpkit import MLP, analysis, autodiff, datasets
    from bpkit.stopping import StopRules
    from bpkit.training import train

    data = datasets.load("digits")
    x, y = jnp.asarray(data.x_train, jnp.float32), jnp.asarray(data.y_train, jnp.float32)
    rows = []
    opt = optax.sgd(0.1)
    for act in ACTIVATIONS:
        net = MLP(SIZES, hidden=act, output="sigmoid")
        for seed in SEEDS:
            key = jax.random.key(seed)
            res = train(net, opt, net.init(key), x, y, key=key, batch_size=10, loss=LOSS, checkpoints=CHECKPOINTS,
                        rules=StopRules(max_epochs=CHECKPOINTS[-1], stall_epochs=None))  # one run, params kept at each
            for i, ep in enumerate(CHECKPOINTS):
                p = jax.tree_util.tree_map(lambda a, i=i: a[i], res.checkpoints)
                n = analysis.layer_norms(autodiff(net, p, x, y, LOSS))
                out = np.asarray(net.apply(p, x))
                rows.append({"activation": act, "seed": seed, "epoch": ep, "bias_grad_norms": n["b"],
                             "weight_grad_norms": n["w"],
                             "train_acc": float(np.mean(out.argmax(1) == np.asarray(y).argmax(1))),
                             "saturated": saturated_fraction(net, p, x)})
    return rows


def targets_study() -> list[dict]:
    import jax.numpy as jnp

    from bpkit import MLP, datasets
    from bpkit.stopping import StopRules

    data = datasets.load("digits")
    net = MLP((64, 30, 10), hidden="sigmoid", output="sigmoid")
    rows = []
    for name, (lo, hi) in (("0/1", (0.0, 1.0)), ("0.1/0.9", (0.1, 0.9))):
        y = lo + (hi - lo) * np.asarray(data.y_train)
        res = study.train_many(net, data.x_train, y, SEEDS, [0.5],
                                batch_size=10, rules=StopRules(max_epochs=100, stall_epochs=None))
        for i, seed in enumerate(SEEDS):
            p = [{k: jnp.asarray(v[i]) for k, v in layer.items()} for layer in res.params]
            out, cache = net.forward(p, jnp.asarray(data.x_train, jnp.float32))
            z_out = np.asarray(cache.zs[-1])
            s_prime = np.asarray(net.activations[-1].deriv(cache.zs[-1]))
            test = np.asarray(net.apply(p, jnp.asarray(data.x_test, jnp.float32)))
            rows.append({
                "targets": name, "seed": seed,
                "test_acc": float(np.mean(test.argmax(1) == np.asarray(data.y_test).argmax(1))),
                "mean_abs_z_out": float(np.mean(np.abs(z_out))),
                "out_saturated": float(np.mean(s_prime < 0.01 * 0.25)),
                "out_weight_norm": float(np.linalg.norm(np.asarray(p[-1]["w"]))),
                "loss_curve": np.asarray(res.history.loss[i]).tolist(),
            })
    return rows


def standardisation_study(lrs=(0.1, 0.5, 2.0)) -> list[dict]:
    import itertools

    import jax
    import jax.numpy as jnp
    from sklearn.datasets import load_digits

    from bpkit import MLP, datasets
    from bpkit.stopping import StopRules

    d = load_digits()
    net = MLP((64, 30, 10), hidden="sigmoid", output="sigmoid")
    rows = []
    for name, std in (("raw pixels 0..16", False), ("standardised", True)):
        data = datasets.split("digits", d.data.astype(np.float64), datasets.one_hot(d.target), 0, "classification",
                              standardize=std)
        x = jnp.asarray(data.x_train, jnp.float32)
        res = study.train_many(net, data.x_train, data.y_train, SEEDS, lrs,
                                batch_size=10, rules=StopRules(max_epochs=100, stall_epochs=None))
        for i, (seed, lr) in enumerate(itertools.product(SEEDS, lrs)):
            p0 = net.init(jax.random.split(jax.random.key(seed))[0])
            p = [{k: jnp.asarray(v[i]) for k, v in layer.items()} for layer in res.params]
            test = np.asarray(net.apply(p, jnp.asarray(data.x_test, jnp.float32)))
            rows.append({
                "inputs": name, "seed": seed, "lr": lr, "hidden_saturated_at_init": saturated_fraction(net, p0, x)[0],
                "mean_abs_z_hidden_at_init": float(np.mean(np.abs(np.asarray(net.forward(p0, x)[1].zs[0])))),
                "input_max_abs": float(np.max(np.abs(data.x_train))),
                "test_acc": float(np.mean(test.argmax(1) == np.asarray(data.y_test).argmax(1))),
                "loss_curve": np.asarray(res.history.loss[i]).tolist(),
            })
    return rows


def _med(rows, key, j=None):
    vals = [r[key] if j is None else r[key][j] for r in rows]
    return float(np.median(vals))


def _right_panel_curves(res: dict) -> dict[str, np.ndarray]:
    """Median loss curve per label of the targets and inputs studies at lr 0.5.  The 0/1-targets runs and
    the standardised-inputs runs are the same runs (same net, data, targets, seeds and rate; they agree to
    float32 rounding, 5e-7 relative, since one program vmaps one learning rate and the other three): a curve
    met twice is drawn once, under both labels, instead of one line hiding the other."""
    out: dict[str, np.ndarray] = {}
    for rows, field in ((res["targets"], "targets"), ([r for r in res["inputs"] if r["lr"] == 0.5], "inputs")):
        for v in dict.fromkeys(r[field] for r in rows):
            curve = np.median(np.array([r["loss_curve"] for r in rows if r[field] == v]), 0)
            same = next((k for k, c in out.items() if np.allclose(c, curve, rtol=1e-5, atol=0)), None)
            if same is None:
                out[f"{field}: {v}"] = curve
            else:
                out[f"{same} = {field}: {v}"] = out.pop(same)
    return out


def figure(res: dict) -> str:
    plt = study.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    ax = axes[0]
    for k, act in enumerate(ACTIVATIONS):
        rs = [r for r in res["depth"] if r["activation"] == act and r["epoch"] == 0]
        med = [np.median([r["bias_grad_norms"][j] for r in rs]) for j in range(len(SIZES) - 1)]
        ax.plot(range(1, len(SIZES)), med, "o-", color=f"C{k}", label=act)
    ax.set_yscale("log")
    ax.set_xticks(range(1, len(SIZES)), [f"hidden {j}" for j in range(1, len(SIZES) - 1)] + ["output"], fontsize=8)
    ax.set_ylabel("norm of dC/db (median over seeds)")
    ax.set_title("per-layer gradient at init, 64-30-30-30-30-10", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    for k, act in enumerate(ACTIVATIONS):
        eps = sorted({r["epoch"] for r in res["depth"]})
        ratio = [np.median([r["bias_grad_norms"][-2] / r["bias_grad_norms"][0] for r in res["depth"]
                            if r["activation"] == act and r["epoch"] == e]) for e in eps]
        ax.plot([max(e, 0.5) for e in eps], ratio, "o-", color=f"C{k}", label=act)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("epoch (0 plotted at 0.5)")
    ax.set_ylabel("last / first hidden layer")
    ax.set_title("how much slower the first hidden layer learns", fontsize=9)
    ax.grid(alpha=0.3)
    ax = axes[2]
    for k, (label, curve) in enumerate(_right_panel_curves(res).items()):
        ax.plot(np.arange(1, len(curve) + 1), curve, color=f"C{k}", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("half MSE (median)")
    ax.set_title("64-30-10 sigmoid, lr 0.5: targets and inputs", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    name = FOLDER.save_figure(fig, NAME).name
    plt.close(fig)
    return name


def depth_table(res: dict) -> list[str]:
    """Per hidden activation and epoch: bias-gradient norms per layer, last over first, saturated units."""
    rows = []
    for act in ACTIVATIONS:
        for ep in (0, 10, 50):
            rs = [r for r in res["depth"] if r["activation"] == act and r["epoch"] == ep]
            norms = [_med(rs, "bias_grad_norms", j) for j in range(len(SIZES) - 1)]
            ratio = float(np.median([r["bias_grad_norms"][-2] / r["bias_grad_norms"][0] for r in rs]))
            sat = [_med(rs, "saturated", j) for j in range(len(SIZES) - 2)]
            rows.append([act, str(ep), ", ".join(f"{v:.2e}" for v in norms), f"{ratio:.3g}",
                         ", ".join(f"{100 * s:.0f}%" for s in sat), f"{100 * _med(rs, 'train_acc'):.1f}%"])
    return Table("depth", ["hidden", "epoch", "dC/db norm per layer: hidden 1, 2, 3, 4, output", "last / first hidden",
                           "units x examples with f' < 1% of its max (ReLU: inactive) per hidden layer",
                           "train accuracy"], rows).markdown().splitlines()


def targets_table(res: dict) -> list[str]:
    rows = []
    for t in ("0/1", "0.1/0.9"):
        rs = [r for r in res["targets"] if r["targets"] == t]
        rows.append([t, f"{100 * np.mean([r['test_acc'] for r in rs]):.1f}%", f"{_med(rs, 'mean_abs_z_out'):.2f}",
                     f"{100 * _med(rs, 'out_saturated'):.1f}%", f"{_med(rs, 'out_weight_norm'):.2f}"])
    return Table("targets", ["targets", "test accuracy", "mean abs(z) at the output",
                             "output units with s'(z) < 1% of 1/4", "output weight norm"], rows).markdown().splitlines()


def inputs_table(res: dict) -> list[str]:
    rows = []
    for v, lr in dict.fromkeys((r["inputs"], r["lr"]) for r in res["inputs"]):
        rs = [r for r in res["inputs"] if r["inputs"] == v and r["lr"] == lr]
        at = [float(np.median([r["loss_curve"][e - 1] for r in rs])) for e in (1, 10, 100)]
        rows.append([v, f"{rs[0]['input_max_abs']:.1f}", str(lr), f"{_med(rs, 'mean_abs_z_hidden_at_init'):.2f}",
                     f"{100 * _med(rs, 'hidden_saturated_at_init'):.0f}%", " / ".join(f"{a:.4f}" for a in at),
                     f"{100 * np.mean([r['test_acc'] for r in rs]):.1f}%"])
    return Table("inputs", ["inputs", "largest abs(input)", "lr", "mean abs(z), first hidden layer at init",
                            "hidden units saturated at init", "half MSE after 1 / 10 / 100 epochs", "test accuracy"],
                 rows).markdown().splitlines()


def write_readme(res: dict, fig: str) -> None:
    lines, t_lines, i_lines = depth_table(res), targets_table(res), inputs_table(res)

    def ratio(act, ep=0):
        return float(np.median([r["bias_grad_norms"][-2] / r["bias_grad_norms"][0] for r in res["depth"]
                                if r["activation"] == act and r["epoch"] == ep]))

    t = {v: [r for r in res["targets"] if r["targets"] == v] for v in ("0/1", "0.1/0.9")}
    inp = {v: [r for r in res["inputs"] if r["inputs"] == v] for v in dict.fromkeys(r["inputs"] for r in res["inputs"])}
    raw, std = inp["raw pixels 0..16"], inp["standardised"]
    sig0 = [r for r in res["depth"] if r["activation"] == "sigmoid" and r["epoch"] == 0]
    sig_sat0 = max(_med(sig0, "saturated", j) for j in range(len(SIZES) - 2))
    others = {a: ratio(a) for a in ACTIVATIONS if a != "sigmoid"}
    acc = {a: _med([r for r in res["depth"] if r["activation"] == a and r["epoch"] == 50], "train_acc") for a in ACTIVATIONS}
    lrs = sorted({r["lr"] for r in res["inputs"]})

    def final(rs, lr, e=100):
        return float(np.median([r["loss_curve"][e - 1] for r in rs if r["lr"] == lr]))

    best = {k: min(lrs, key=lambda lr, rs=rs: final(rs, lr)) for k, rs in (("raw", raw), ("std", std))}
    at = {k: (final(rs, best[k], 10), final(rs, best[k]),
              100 * float(np.mean([r["test_acc"] for r in rs if r["lr"] == best[k]])))
          for k, rs in (("raw", raw), ("std", std))}
    raw_better = at["raw"][1] < at["std"][1]
    inputs_text = (
        f"Raw pixels put {100 * _med(raw, 'hidden_saturated_at_init'):.0f}% of the hidden units into saturation at init "
        f"(standardised: {100 * _med(std, 'hidden_saturated_at_init'):.0f}%); each at its best learning rate (raw "
        f"{best['raw']}, standardised {best['std']}) the half MSE after 10 and 100 epochs is {at['raw'][0]:.4f} and "
        f"{at['raw'][1]:.4f} against {at['std'][0]:.4f} and {at['std'][1]:.4f}, test accuracy {at['raw'][2]:.1f}% "
        f"against {at['std'][2]:.1f}%. "
        + (f"Here standardising did not pay, against LeCun's advice: digits pixels are already bounded (0..16), and "
           f"dividing by each pixel's own spread blows rarely-inked border pixels up to {std[0]['input_max_abs']:.0f} "
           "standard deviations, so the standardised set has large inputs of its own."
           if raw_better else
           "Standardising pays, as LeCun advises"
           + (f", and it takes a larger step (best lr {best['std']} against {best['raw']}). At one fixed lr, 0.5, the raw "
              f"pixels look better ({final(raw, 0.5):.4f} against {final(std, 0.5):.4f} after 100 epochs): larger inputs "
              "act as a larger step for the first layer, so compare input scalings each at its own learning rate."
              if best["std"] > best["raw"] and 0.5 in lrs and final(raw, 0.5) < final(std, 0.5) else "."))
    )
    conclusion = (
        f"Conclusion: in a deep sigmoid net the gradient shrinks layer by layer ({ratio('sigmoid'):.0f}x from the last "
        f"hidden layer to the first at init) although hardly any hidden unit is saturated (at most {100 * sig_sat0:.0f}% "
        "of units x examples per layer): the ceiling s' <= 1/4, compounded over the layers, is enough. With tanh, the "
        f"scaled tanh or ReLU the layers stay within {max(others.values()):.1f}x of each other, and after 50 epochs they "
        f"are at {study.span([round(100 * acc[a]) for a in others])}% training accuracy against "
        f"{100 * acc['sigmoid']:.0f}% for the sigmoid. Saturation proper comes from the targets: 0/1 targets push "
        f"{100 * _med(t['0/1'], 'out_saturated'):.0f}% of the output units into s' < 1% of its maximum (0.1/0.9: "
        f"{100 * _med(t['0.1/0.9'], 'out_saturated'):.1f}%) by growing the output weights "
        f"({_med(t['0/1'], 'out_weight_norm'):.1f} against {_med(t['0.1/0.9'], 'out_weight_norm'):.1f}), with test "
        f"accuracy {100 * np.mean([r['test_acc'] for r in t['0/1']]):.1f}% against "
        f"{100 * np.mean([r['test_acc'] for r in t['0.1/0.9']]):.1f}%. " + inputs_text
    )
    body = f"""
## Study 4: saturation and vanishing gradients

Command: `python3 experiments/saturation.py` (numbers below come from `experiments/results/saturation.json`,
written by that run).

Setup: digits (1078 training examples, standardised), 64-30-30-30-30-10 with a sigmoid output and cross-entropy (Nielsen's cost),
LeCun-normal init (std fan_in^-1/2, as Nielsen's), mini-batch SGD (batch 10, lr 0.1), {len(SEEDS)} seeds; norms of the
full-training-set gradient, medians over seeds.

Published (../shared/REFERENCES.md): s'(z) <= 1/4, so through L sigmoid layers with abs(w) < 1 the gradient shrinks
by at least 4^L; Nielsen (ch. 5) reports the first hidden layer of a 784-30-30-30-30-10 sigmoid net learning about
100x slower than the last (his dC/db norms: 0.003, 0.017, 0.070, 0.285). tanh' <= 1; LeCun recommends
1.7159 tanh(2x/3), targets away from the asymptotes and standardised inputs.

{chr(10).join(lines)}

![per-layer gradients](figures/{fig})

- **Sigmoid: the first hidden layer learns {ratio('sigmoid'):.0f}x slower than the last at init** (Nielsen: ~100x
  on MNIST with the same depth); after 50 epochs the ratio is {ratio('sigmoid', 50):.0f}x.
- tanh: {ratio('tanh'):.2g}x, scaled tanh: {ratio('scaled_tanh'):.2g}x, ReLU: {ratio('relu'):.2g}x at init: a derivative
  whose maximum is 1 (or about 1.14 for the scaled tanh) does not shrink the signal by a fixed factor per layer.

Targets, 64-30-10 sigmoid net, 100 epochs of mini-batch SGD (batch 10, lr 0.5):

{chr(10).join(t_lines)}

Inputs, same net and training, three learning rates:

{chr(10).join(i_lines)}

{{conclusion}}
"""
    FOLDER.write_section(NAME, body.replace("{conclusion}", conclusion))


def run(args) -> None:
    FOLDER.save_json(NAME, {"depth": depth_norms(), "targets": targets_study(), "inputs": standardisation_study()})


def report() -> None:
    res = FOLDER.load_json(NAME)
    write_readme(res, figure(res))


def main(argv=None) -> int:
    return FOLDER.cli(NAME, __doc__, argv, run, report)


if __name__ == "__main__":
    sys.exit(main())
