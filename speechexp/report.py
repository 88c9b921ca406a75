"""Write a run's or a multirun's report: ``speechexp-report PATH``.

PATH is a run dir (``outputs/<task>/runs/<time>``) or a multirun folder
(``outputs/<task>/multiruns/<time>``); ``PATH/report.html`` (self-contained: open it in
any browser, also offline or on a phone) and ``PATH/report.md`` are written. Runs and
multiruns write theirs at the end by themselves unless ``report=false``.
"""

from __future__ import annotations

import argparse
import sys

from speechexp.errors import SpeechexpError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="speechexp-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run dir or multirun folder")
    args = parser.parse_args(argv)
    from speechexp.reports import write_report  # noqa: PLC0415

    try:
        for path in args.paths:
            html_path, _ = write_report(path)
            print(html_path)
    except SpeechexpError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
