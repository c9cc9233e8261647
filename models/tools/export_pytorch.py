"""Export a trained CIFAR ResNet18 / HybReNet from PyTorch for pi-runtime.

Writes, into --out:
  weights.safetensors   the state dict, saved with safetensors.torch.save_file
  model.toml            spec, weights, DeepReDuce cull/thin, normalisation and
                        per-activation ReLU masks ([[relu]], channels or pixels)
  input-K.npy           test images as float32 (C, H, W), before normalisation
  pytorch_logits.json   PyTorch's own eval-mode logits for each input (with the
                        masks applied), to compare with `pi-models infer --json`

Usage (see README.md, "Bring your own trained network"):

  python3 models/tools/export_pytorch.py --spec 'resnet18(m=64)' \
      --state-dict ckpt.pt --out mynet \
      --mean 0.4914,0.4822,0.4465 --std 0.2470,0.2435,0.2616 \
      [--cull stage1] [--thin stage3] [--masks masks.safetensors] \
      [--images test_x.npy --count 4]

--state-dict: a file of torch.save(model.state_dict()) (a dict under 'state_dict'
or 'model', or keys with a 'module.' prefix from DataParallel, are accepted), or a
.safetensors file. Names must be those of the common CIFAR ResNet code
(conv1, bn1, layer1.0.conv1, ..., layer2.0.shortcut.0, linear), as in
models/fixtures/digits/hybrenet.py, which this script builds the network with.

--masks: a .safetensors or torch file of tensors named by activation (`relu`
for the stem, `layer2.0.relu1`, `layer2.0.relu2`, ...): 1 where the ReLU is
kept, 0 where it is linearised (identity), shaped (C, H, W) (SNL-style per-pixel
masks) or (C,) (per channel). --cull / --thin: DeepReDuce stages (stage1 ..
stage4; culling stage 1 includes the stem ReLU; thinning drops relu2 of every
block).

--images: a float32 .npy of shape (N, C, H, W) or (C, H, W), values before
normalisation; without it, --count seeded N(0, 1) images are written.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures", "digits"))
from hybrenet import HybReNet, parse_spec  # noqa: E402

PRESETS = {
    "resnet18": (2, 2, 2, 64),
    "hrn-5x5x3x": (5, 5, 3, 16),
    "hrn-7x5x2x": (7, 5, 2, 16),
    "hrn-6x6x2x": (6, 6, 2, 16),
    "hrn-5x7x2x": (5, 7, 2, 16),
}


def build(spec: str) -> HybReNet:
    """The network of a pi-models spec: a preset, optionally with options in
    parentheses (`resnet18(m=32)`), or `AxBxCx(m=..,phi=..,...)`."""
    name, _, rest = spec.partition("(")
    if name.strip() in PRESETS:
        a, b, g, m = PRESETS[name.strip()]
        opts = rest.rstrip(")")
        spec = f"{a}x{b}x{g}x(m={m}{',' + opts if opts else ''})"
    p = parse_spec(spec)
    return HybReNet(p["alpha"], p["beta"], p["gamma"], p["m"], p["phi"], p["classes"], p["channels"])


def load_tensors(path: str) -> dict:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    return {k.removeprefix("module."): v for k, v in obj.items()}


def stage_number(s: str) -> int:
    for prefix in ("stage", "layer"):
        if s.startswith(prefix) and s[len(prefix):] in ("1", "2", "3", "4"):
            return int(s[len(prefix):])
    raise ValueError(f"stage {s!r}: expected stage1 .. stage4")


def relu_entry(name: str, keep: torch.Tensor) -> str:
    """A [[relu]] table of model.toml for a bool mask (C, H, W)."""
    if bool(keep.all()):
        return ""
    if not bool(keep.any()):
        return f'\n[[relu]]\nactivation = "{name}"\nmode = "none"\n'
    per_channel = keep.flatten(1)
    if bool((per_channel == per_channel[:, :1]).all()):
        chans = [int(c) for c in torch.nonzero(per_channel[:, 0]).flatten()]
        return f'\n[[relu]]\nactivation = "{name}"\nmode = "channels"\nkeep = {chans}\n'
    pos = ", ".join(f"[{c}, {y}, {x}]" for c, y, x in torch.nonzero(keep).tolist())
    return f'\n[[relu]]\nactivation = "{name}"\nmode = "pixels"\nkeep = [{pos}]\n'


def activation_shapes(model: HybReNet, c: int, h: int) -> dict:
    """(C, H, W) of every activation, by a forward pass with hooks."""
    shapes = {}
    x = torch.zeros(1, c, h, h)
    with torch.no_grad():
        out = model.bn1(model.conv1(x))
        shapes["relu"] = tuple(out.shape[1:])
        for s in range(1, 5):
            for b, blk in enumerate(getattr(model, f"layer{s}")):
                o1 = blk.bn1(blk.conv1(out))
                shapes[f"layer{s}.{b}.relu1"] = tuple(o1.shape[1:])
                out = blk(out)
                shapes[f"layer{s}.{b}.relu2"] = tuple(out.shape[1:])
    return shapes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--state-dict", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--input", type=int, default=32, help="input height and width (if not in --spec)")
    ap.add_argument("--mean", help="per-channel mean, comma-separated (one value for all)")
    ap.add_argument("--std", help="per-channel std, comma-separated")
    ap.add_argument("--cull", default="", help="stages whose ReLUs all become identity")
    ap.add_argument("--thin", default="", help="stages whose relu2 become identity")
    ap.add_argument("--masks", help="per-activation ReLU masks (1 keep, 0 identity)")
    ap.add_argument("--images", help="float32 .npy (N, C, H, W), before normalisation")
    ap.add_argument("--count", type=int, default=4, help="images to export")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random images")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    model = build(args.spec).eval()
    state = load_tensors(args.state_dict)
    model.load_state_dict(state, strict=True)
    h = int(args.spec.split("input=")[1].split(",")[0].rstrip(")")) if "input=" in args.spec else args.input
    c = model.conv1.in_channels

    # ReLU masks: cull/thin by stage, then per activation (as pi-models applies them).
    shapes = activation_shapes(model, c, h)
    keep = {name: torch.ones(shape, dtype=torch.bool) for name, shape in shapes.items()}
    cull = [stage_number(s) for s in filter(None, args.cull.split(","))]
    thin = [stage_number(s) for s in filter(None, args.thin.split(","))]
    for name, stage, _ in model.activations():
        if stage in cull or (stage in thin and name.endswith(".relu2")):
            keep[name][:] = False
    entries = []
    if args.masks:
        for name, m in load_tensors(args.masks).items():
            if name not in keep:
                raise SystemExit(f"--masks: no activation {name!r} (names: relu, layer1.0.relu1, ...)")
            m = m.bool()
            if m.dim() == 1:
                m = m[:, None, None].expand(keep[name].shape)
            if tuple(m.shape) != tuple(keep[name].shape):
                raise SystemExit(f"--masks: {name} has shape {tuple(m.shape)}, the activation {keep[name].shape}")
            keep[name] = keep[name] & m
            entries.append(relu_entry(name, keep[name]))
    model.set_masks({k: v for k, v in keep.items() if not bool(v.all())})

    os.makedirs(args.out, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(args.out, "weights.safetensors"))

    toml = [f"# Exported by models/tools/export_pytorch.py from {os.path.basename(args.state_dict)}\n",
            f'spec = "{args.spec}"\n', 'weights = "weights.safetensors"\n']
    if cull:
        toml.append(f"cull = {json.dumps([f'stage{s}' for s in cull])}\n")
    if thin:
        toml.append(f"thin = {json.dumps([f'stage{s}' for s in thin])}\n")
    mean = std = None
    if args.mean or args.std:
        if not (args.mean and args.std):
            raise SystemExit("give both --mean and --std")
        mean = [float(v) for v in args.mean.split(",")]
        std = [float(v) for v in args.std.split(",")]
        toml.append(f"\n[normalization]\nmean = {mean}\nstd = {std}\n")
    toml.extend(entries)
    with open(os.path.join(args.out, "model.toml"), "w") as fh:
        fh.write("".join(toml))

    if args.images:
        xs = np.load(args.images).astype(np.float32)
        if xs.ndim == 3:
            xs = xs[None]
        xs = xs[: args.count]
    else:
        gen = torch.Generator().manual_seed(args.seed)
        xs = torch.randn((args.count, c, h, h), generator=gen).numpy()
    x = torch.from_numpy(xs)
    if mean is not None:
        m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        x = (x - m) / s
    with torch.no_grad():
        logits = model(x)
    out = {}
    for k in range(len(xs)):
        name = f"input-{k}.npy"
        np.save(os.path.join(args.out, name), xs[k].astype(np.float32))
        out[name] = [float(v) for v in logits[k]]
    with open(os.path.join(args.out, "pytorch_logits.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    relus = sum(int(v.sum()) for v in keep.values())
    total = sum(v.numel() for v in keep.values())
    print(f"wrote {args.out}: {relus} of {total} ReLUs kept, {len(xs)} inputs, torch {torch.__version__}")


if __name__ == "__main__":
    main()
