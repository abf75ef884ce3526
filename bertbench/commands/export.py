"""`bertbench export CKPT --to keras-hub|huggingface --out DIR`: an encoder in the ecosystem's folders.

CKPT is any folder `--init` takes (bertbench, keras-hub preset, Hugging Face, google-research/bert).
- keras-hub: a preset folder that `keras_hub.models.BertBackbone.from_preset(DIR)` and
  `keras_hub.models.BertTokenizer.from_preset(DIR)` load. BertBackbone computes tanh GELU: an encoder
  trained with the exact GELU (bertbench's default) loads with slightly different outputs; the
  printed `max_abs_difference` (measured on a probe batch) says by how much (0.0: identical).
- huggingface: config.json, model.safetensors, vocab.txt, tokenizer_config.json (BertModel layout,
  no PyTorch needed to write it); `--init DIR` and transformers read it back.
"""

import json
import sys

from bertbench.files import check_writable_dir
from bertbench.model.checkpoint import INIT_HELP, load_encoder
from bertbench.model.export import export_huggingface, export_keras_hub

FORMATS = ("keras-hub", "huggingface")


def add_arguments(parser):
    parser.add_argument("checkpoint", metavar="CKPT", help=INIT_HELP)
    parser.add_argument("--to", required=True, choices=FORMATS, help="the folder format to write")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write (replaced if it exists)")


def main(args):
    check_writable_dir(args.out, "--out")
    loaded = load_encoder(args.checkpoint)
    shown = {"from": str(args.checkpoint), "source": loaded.source, "to": args.to}
    if args.to == "keras-hub":
        folder, difference = export_keras_hub(loaded, args.out)
        shown["max_abs_difference"] = difference
        if difference > 0:
            print(f"bertbench: note: keras-hub's BertBackbone computes tanh GELU with LayerNorm epsilon "
                  f"1e-12; this encoder uses activation={loaded.model_cfg.activation}, epsilon="
                  f"{loaded.model_cfg.layer_norm_epsilon}: its outputs differ by up to {difference:.2g} "
                  f"(--to huggingface keeps them exactly)", file=sys.stderr)
    else:
        folder = export_huggingface(loaded, args.out)
    shown["out"] = str(folder)
    print(json.dumps(shown, indent=2))
    return 0
