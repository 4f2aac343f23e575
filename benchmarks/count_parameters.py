"""Parameter counts of the default (ViT-B/16 + AST-base) model for every fusion type.

Usage: python benchmarks/count_parameters.py [--out benchmarks/parameter_counts.json]
Prints a markdown table (the one in README.md) and writes JSON. Models are built on the meta device:
no weights are allocated or downloaded.
"""

import argparse
import json

import torch

from hf_avemotion import FUSION_TYPES, AVEmotionConfig, AVEmotionForAudioVisualClassification


def count(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/parameter_counts.json")
    args = parser.parse_args()
    rows = []
    for fusion_type in FUSION_TYPES:
        with torch.device("meta"):
            model = AVEmotionForAudioVisualClassification(AVEmotionConfig(fusion_type=fusion_type))
        vision, audio = count(model.avemotion.vision_encoder), count(model.avemotion.audio_encoder)
        total = count(model)
        rows.append(dict(fusion_type=fusion_type, total=total, vision_encoder=vision, audio_encoder=audio,
                         fusion_head=total - vision - audio))
    print("| fusion_type | total | ViT-B/16 encoder | AST-base encoder | fusion head + classifier |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['fusion_type']} | {r['total'] / 1e6:.2f} M | {r['vision_encoder'] / 1e6:.2f} M | "
              f"{r['audio_encoder'] / 1e6:.2f} M | {r['fusion_head'] / 1e6:.3f} M |")
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
