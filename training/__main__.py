import sys

from emotion_contract.extras import MissingExtra, require

try:
    require("tensorflow", "train", "Training")
    require("keras", "train", "Training")
except MissingExtra as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)

from .cli import main  # noqa: E402

sys.exit(main())
