"""``python -m rewardkit.testing tiny-hps FOLDER``: write the seeded tiny HPS checkpoint CI's regression
check scores the examples with, and print the options that select it."""

import sys

from rewardkit.testing.clip import write_tiny_hps

if len(sys.argv) != 3 or sys.argv[1] != "tiny-hps":
    sys.exit("usage: python -m rewardkit.testing tiny-hps FOLDER")
checkpoint, config = write_tiny_hps(sys.argv[2])
print(f"--weights hpsv2={checkpoint} --set hpsv2.architecture={config}")
