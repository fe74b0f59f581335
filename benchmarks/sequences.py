"""The second book's sequence results, handgrad beside a PyTorch mirror of each model.

    python benchmarks/sequences.py [--data-dir ../shared/data] [--json benchmarks/results/sequences.json]
                                   [--only lstm|dates|addition] [--threads 2] [--quick]

Rows (float32, 2 threads; each PyTorch mirror starts from the very same weights and sees the
same batches in the same order, so the two columns differ only by arithmetic; PyTorch's LSTM has
two biases that add up, the mirrors train one, as handgrad's LSTM and the book's have one):
  sequential MNIST  each image read as 28 rows of 28 pixels: LSTM 128 -> last state -> Affine 10,
                    Adam 1e-3, batch 100, 10 epochs; test accuracy after each epoch (goal >= 98.5 %
                    within 10) and seconds per training epoch of both (goal: no slower than 1.3x
                    PyTorch's time)
  dates             attention seq2seq (embedding 16, LSTM 256), questions read backwards, Adam 1e-3, 10 epochs,
                    batch 128, clip 5: the book's chapter 8 script; exact answers on the test split
                    after each epoch (>= 99 %)
  addition          seq2seq (embedding 16, LSTM 128), Adam 1e-3, batch 128, clip 5, 25 epochs:
                    plain, reversed input, reversed + peeky (the book's chapter 7), exact answers

handgrad's sequential-MNIST LSTM splits each batch over ``--threads`` threads (default 2, one BLAS
thread each: what ``handgrad train --dataset mnist --model lstm`` runs; 1: one thread, its BLAS on
2); the seq2seq rows run one thread, as ``handgrad train`` runs them. PyTorch uses 2 threads.

Timing: an epoch is a block of 50-600 steps; the two libraries take turns epoch by epoch, the
one that goes first alternating, with a 0.3 s pause before each (the other runner's BLAS
threads stop spinning); the table gives the median seconds per epoch and the ratio of medians.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import handgrad as hg  # noqa: E402
from handgrad.layers import LSTM, Affine, LastStep, Reshape  # noqa: E402
from handgrad.model import Sequential, Seq2seq  # noqa: E402
from machine import machine_line, write_results  # noqa: E402


# --- PyTorch mirrors, loaded with handgrad's weights ----------------------------------------------


def torch_lstm_classifier(torch, model):
    """nn.LSTM + nn.Linear with the handgrad Sequential's weights (LSTM at index 1, Affine at 3)."""
    lstm, head = model.layers[1], model.layers[3]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
            self.head = torch.nn.Linear(lstm.hidden_size, head.W.shape[1])

        def forward(self, x):
            return self.head(self.lstm(x.reshape(len(x), 28, 28))[0][:, -1])

    net = Net()
    with torch.no_grad():
        net.lstm.weight_ih_l0.copy_(torch.from_numpy(lstm.params["Wx"].T.copy()))
        net.lstm.weight_hh_l0.copy_(torch.from_numpy(lstm.params["Wh"].T.copy()))
        net.lstm.bias_ih_l0.copy_(torch.from_numpy(lstm.params["b"]))
        net.lstm.bias_hh_l0.zero_()
        net.head.weight.copy_(torch.from_numpy(head.W.T.copy()))
        net.head.bias.copy_(torch.from_numpy(head.b))
    net.lstm.bias_hh_l0.requires_grad_(False)  # one bias b, as handgrad's (and the book's) LSTM
    return net


def torch_seq2seq(torch, model: Seq2seq):
    """The book's seq2seq (plain, peeky or attention) in PyTorch, with the handgrad model's weights."""
    H, peeky, attention = model.hidden, model.peeky, model.attention
    children = dict(model.children())

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            V, D = children["enc_embed"].params["W"].shape
            self.enc_embed, self.dec_embed = torch.nn.Embedding(V, D), torch.nn.Embedding(V, D)
            self.encoder = torch.nn.LSTM(D, H, batch_first=True)
            self.decoder = torch.nn.LSTM(D + H if peeky else D, H, batch_first=True)
            self.out = torch.nn.Linear(2 * H if (peeky or attention) else H, V)

        def forward(self, x, t_in):
            if model.reverse_input:
                x = x.flip(1)
            hs, (h, _) = self.encoder(self.enc_embed(x))
            e = self.dec_embed(t_in)
            if peeky:
                e = torch.cat([e, h[0][:, None].expand(-1, e.shape[1], -1)], dim=2)
            o, _ = self.decoder(e, (h, torch.zeros_like(h)))
            if attention:
                weights = torch.softmax(o @ hs.transpose(1, 2), dim=-1)
                o = torch.cat([weights @ hs, o], dim=2)
            elif peeky:
                o = torch.cat([h[0][:, None].expand(-1, o.shape[1], -1), o], dim=2)
            return self.out(o)

        def generate(self, x, length, start):
            answers = torch.full((len(x), length), start, dtype=torch.long)
            for step in range(1, length):
                answers[:, step] = self(x, answers[:, :step])[:, -1].argmax(-1)
            return answers

    net = Net()
    with torch.no_grad():
        for name, module in (("enc_embed", net.enc_embed), ("dec_embed", net.dec_embed)):
            module.weight.copy_(torch.from_numpy(children[name].params["W"]))
        for name, module in (("encoder", net.encoder), ("decoder", net.decoder)):
            module.weight_ih_l0.copy_(torch.from_numpy(children[name].params["Wx"].T.copy()))
            module.weight_hh_l0.copy_(torch.from_numpy(children[name].params["Wh"].T.copy()))
            module.bias_ih_l0.copy_(torch.from_numpy(children[name].params["b"]))
            module.bias_hh_l0.zero_()
            module.bias_hh_l0.requires_grad_(False)  # one bias b per LSTM, as handgrad's and the book's
        net.out.weight.copy_(torch.from_numpy(children["out"].W.T.copy()))
        net.out.bias.copy_(torch.from_numpy(children["out"].b))
    return net


# --- training loops: handgrad's fit, and the same batches in PyTorch ------------------------------


def torch_epoch(torch, net, optimizer, x, t, order, batch_size, loss_of, clip=None):
    """PyTorch's steps over the batches of ``order`` (a permutation of x's rows, or any rows)."""
    net.train()
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        optimizer.zero_grad()
        loss = loss_of(net, torch.from_numpy(x[index]), torch.from_numpy(t[index]))
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], clip)
        optimizer.step()


def timed_in_turns(epoch: int, ours, theirs) -> tuple[float, float]:
    """Seconds of ``ours()`` and ``theirs()`` (one epoch each): handgrad first in odd epochs,
    PyTorch first in even ones, a 0.3 s pause before each."""
    seconds = {}
    for who, run in ((("ours", ours), ("theirs", theirs)) if epoch % 2 else (("theirs", theirs), ("ours", ours))):
        time.sleep(0.3)
        started = time.perf_counter()
        run()
        seconds[who] = time.perf_counter() - started
    return seconds["ours"], seconds["theirs"]


def lstm_classifier(H: int = 128) -> Sequential:
    """Sequential MNIST's model: each image as 28 rows of 28 pixels, LSTM H, the last state,
    Affine 10; PyTorch's initialisation (uniform in +-1/sqrt(H)), seed 0."""
    rng = np.random.default_rng(0)
    bound = 1 / np.sqrt(H)

    def uniform(*shape):
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    return Sequential([Reshape((28, 28)), LSTM(uniform(28, 4 * H), uniform(H, 4 * H), uniform(4 * H)), LastStep(),
                       Affine(uniform(H, 10), uniform(10))], seed=0)


def sequential_mnist(torch, data_dir, quick: bool, threads: int = 2) -> dict:
    (x, t), (x_test, t_test) = hg.data.load_dataset("mnist", data_dir=data_dir)
    if quick:
        x, t, x_test, t_test = x[:2000], t[:2000], x_test[:500], t_test[:500]
    epochs, batch = (2 if quick else 10), 100
    model = lstm_classifier()
    net = torch_lstm_classifier(torch, model)
    ours, theirs = hg.optim.Adam(lr=1e-3), torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    cross_entropy = torch.nn.functional.cross_entropy
    orders = np.random.default_rng(0)
    row = {"run": "sequential MNIST, LSTM 128, Adam 1e-3, batch 100", "epochs": epochs, "threads": threads,
           "handgrad": [], "torch": []}
    split = hg.threads.BatchThreads(model, threads) if threads > 1 else None
    try:
        for epoch in range(1, epochs + 1):
            order = orders.permutation(len(x))
            ours_seconds, torch_seconds = timed_in_turns(
                epoch, lambda: handgrad_epoch(model, ours, x, t, order, batch, split),
                lambda: torch_epoch(torch, net, theirs, x, t, order, batch, lambda n, xb, tb: cross_entropy(n(xb), tb)))
            with torch.no_grad():
                net.eval()
                torch_accuracy = float((net(torch.from_numpy(x_test)).argmax(-1).numpy() == t_test).mean())
            row["handgrad"].append({"epoch": epoch, "accuracy": model.accuracy(x_test, t_test), "seconds": ours_seconds})
            row["torch"].append({"epoch": epoch, "accuracy": torch_accuracy, "seconds": torch_seconds})
            print(f"  epoch {epoch}: handgrad {row['handgrad'][-1]['accuracy']:.4f} ({ours_seconds:.1f} s), "
                  f"PyTorch {torch_accuracy:.4f} ({torch_seconds:.1f} s)", flush=True)
    finally:
        if split is not None:
            split.close()
    return row


def handgrad_epoch(model, optimizer, x, t, order, batch_size, split=None):
    """One epoch of handgrad's training step over the batches of ``order`` (what fit does inside,
    here with the permutation given so that PyTorch sees the same batches); ``split``, a
    :class:`handgrad.threads.BatchThreads`, runs each batch over its threads."""
    model.train()
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        hg.train.train_step(model, optimizer, x[index], t[index], parallel=split, count=False)


def seq2seq_run(torch, name, data, label, epochs, **options) -> dict:
    (x, t), (x_test, t_test), vocab = data
    model = Seq2seq(vocab, x.shape[1], t.shape[1], seed=0, **options)
    net = torch_seq2seq(torch, model)
    ours, theirs = hg.optim.Adam(lr=1e-3), torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    start_id = vocab.id_of("_")
    orders = np.random.default_rng(0)

    def torch_loss(n, xb, tb):
        scores = n(xb, tb[:, :-1])
        return torch.nn.functional.cross_entropy(scores.reshape(-1, scores.shape[-1]), tb[:, 1:].reshape(-1))

    row = {"run": f"{name}: {label}", "epochs": epochs, "handgrad": [], "torch": []}
    for epoch in range(1, epochs + 1):
        order = orders.permutation(len(x))

        def ours_epoch():
            model.train()
            for begin in range(0, len(x), 128):
                index = order[begin:begin + 128]
                model.loss(x[index], t[index])
                model.backward()
                hg.optim.clip_grad_norm(model.grads, 5.0)
                ours.update(model.params, model.grads)

        ours_seconds, torch_seconds = timed_in_turns(
            epoch, ours_epoch, lambda: torch_epoch(torch, net, theirs, x, t, order, 128, torch_loss, clip=5.0))
        with torch.no_grad():
            net.eval()
            generated = net.generate(torch.from_numpy(x_test), t.shape[1], start_id).numpy()
        theirs_exact = float(np.all(generated == t_test, axis=1).mean())
        row["handgrad"].append({"epoch": epoch, "accuracy": model.accuracy(x_test, t_test), "seconds": ours_seconds})
        row["torch"].append({"epoch": epoch, "accuracy": theirs_exact, "seconds": torch_seconds})
        print(f"  {name} {label} epoch {epoch}: handgrad {row['handgrad'][-1]['accuracy']:.4f} ({ours_seconds:.1f} s), "
              f"PyTorch {theirs_exact:.4f} ({torch_seconds:.1f} s)", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("HANDGRAD_DATA"))
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "sequences.json"))
    parser.add_argument("--only", choices=["lstm", "dates", "addition"])
    parser.add_argument("--threads", type=int, default=2,
                        help="the LSTM's batch split over this many threads (handgrad.threads; 1: none), as "
                        "`handgrad train --dataset mnist --model lstm` runs it (default: 2)")
    parser.add_argument("--quick", action="store_true", help="small subsets and few epochs: a smoke test")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    print(machine_line(), flush=True)
    rows = []
    if args.only in (None, "lstm"):
        rows.append(sequential_mnist(torch, args.data_dir, args.quick, args.threads))
    subset = (lambda d: ((d[0][0][:3000], d[0][1][:3000]), (d[1][0][:300], d[1][1][:300]), d[2])) if args.quick \
        else (lambda d: d)
    if args.only in (None, "dates"):
        data = subset(hg.data.load_seq2seq("dates", data_dir=args.data_dir))
        rows.append(seq2seq_run(torch, "dates", data, "attention seq2seq, LSTM 256, reversed input",
                                1 if args.quick else 10, embed=16, hidden=256, attention=True, reverse_input=True))
    if args.only in (None, "addition"):
        data = subset(hg.data.load_seq2seq("addition", data_dir=args.data_dir))
        for label, options in (("plain", {}), ("reversed", {"reverse_input": True}),
                               ("reversed + peeky", {"reverse_input": True, "peeky": True})):
            rows.append(seq2seq_run(torch, "addition", data, label, 1 if args.quick else 25,
                                    embed=16, hidden=128, **options))
    print("\n| run | epochs | handgrad (last epoch) | PyTorch (last epoch) | best epoch, handgrad | "
          "s/epoch handgrad | s/epoch PyTorch | time ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        ours, theirs = row["handgrad"], row["torch"]
        ours_s, theirs_s = np.median([r["seconds"] for r in ours]), np.median([r["seconds"] for r in theirs])
        best = max(ours, key=lambda r: r["accuracy"])
        print(f"| {row['run']} | {row['epochs']} | {ours[-1]['accuracy']:.4f} | {theirs[-1]['accuracy']:.4f} | "
              f"{best['accuracy']:.4f} (epoch {best['epoch']}) | {ours_s:.1f} | {theirs_s:.1f} | {ours_s / theirs_s:.2f}x |")
    print(machine_line())
    write_results(args.json, {"rows": rows, "quick": args.quick})


if __name__ == "__main__":
    main()
