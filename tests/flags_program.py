"""A program-sweep script as W&B users write them: argparse flags, then wandb.init(config=args)."""

import argparse

import wandb

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--layers", type=int, required=True)
parser.add_argument("--amp", action="store_true")  # a boolean flag: present or absent
args = parser.parse_args()

with wandb.init(config=vars(args)) as run:
    run.log({"loss": args.lr * args.layers + (0.5 if args.amp else 0.0)})
