"""Download what the paper-scale runs need into the Hugging Face cache, on a machine with
internet (a cluster's login node); compute nodes then run with HF_HUB_OFFLINE=1.

    python scripts/prefetch.py [--model albert-base-v2] [--dataset squad_v2]
"""

from __future__ import annotations

import argparse


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="albert-base-v2")
    parser.add_argument("--dataset", default="squad_v2")
    args = parser.parse_args(argv)

    import datasets
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    AutoTokenizer.from_pretrained(args.model)
    AutoModelForQuestionAnswering.from_pretrained(args.model)
    data = datasets.load_dataset(args.dataset)
    print(f"cached {args.model} and {args.dataset}: {({k: len(v) for k, v in data.items()})}")


if __name__ == "__main__":
    main()
