"""``ganforge-features``: train the offline domain network (the digit classifier) for metrics.

Usage:
    ganforge-features                                  # rewrite the shipped weights (seed 0)
    ganforge-features out=my_classifier.pt seed=1 epochs=12

Prints the held-out accuracy and the weights' SHA-256, which every metric computed with
these weights records as part of its protocol.
"""

from __future__ import annotations

import sys

from ganforge.metrics.domain import DEFAULT_WEIGHTS, train_digit_classifier

DEFAULTS = {"out": str(DEFAULT_WEIGHTS), "seed": 0, "epochs": 12}


def main(argv: list[str] | None = None) -> None:
    args = dict(DEFAULTS)
    for item in sys.argv[1:] if argv is None else argv:
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULTS:
            print(
                f"ganforge-features: unknown argument '{item}'. Valid keys: {', '.join(DEFAULTS)}",
                file=sys.stderr,
            )
            sys.exit(2)
        args[key] = value if key == "out" else int(value)
    record = train_digit_classifier(args["out"], seed=args["seed"], epochs=args["epochs"])
    print(
        f"digit classifier -> {args['out']}\n"
        f"  held-out accuracy {record['val_accuracy']:.4f} on mnist5k's validation split\n"
        f"  sha256 {record['sha256']}"
    )


if __name__ == "__main__":
    main()
