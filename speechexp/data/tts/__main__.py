"""``python -m speechexp.data.tts --apt-packages [--nonfree]``: print the Debian packages of the
offline voices on one line (what ``make voices`` installs)."""

from __future__ import annotations

import argparse

from speechexp.data.tts import apt_packages

parser = argparse.ArgumentParser(prog="python -m speechexp.data.tts",
                                 description="Print the Debian packages of the offline voices.")
parser.add_argument("--apt-packages", action="store_true", required=True,
                    help="print the Debian packages of the voices from Debian's main archive")
parser.add_argument("--nonfree", action="store_true",
                    help="... from its contrib and non-free components instead (make voices NONFREE=1)")
print(" ".join(apt_packages(parser.parse_args().nonfree)))
