"""Write a run's or a multirun's report: ``speechexp-report PATH``.

PATH is a run dir (``outputs/<task>/runs/<time>``) or a multirun folder
(``outputs/<task>/multiruns/<time>``); ``PATH/report.html`` (self-contained: open it in
any browser, also offline or on a phone) and ``PATH/report.md`` are written. Runs and
multiruns write theirs at the end by themselves unless ``report=false``.
"""

from __future__ import annotations

import argparse
import sys

from speechexp.runs.entry import entry_point


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="speechexp-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run dir or multirun folder")
    args = parser.parse_args(argv)
    from speechexp.reports import write_report  # noqa: PLC0415

    for path in args.paths:
        html_path, _ = write_report(path)
        print(html_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
