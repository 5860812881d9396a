#!/usr/bin/env python3
"""Summarise Autobahn|TestSuite results and fail unless every case passed.

Reads `<outdir>/index.json` written by `wstest -m fuzzingserver` (our client under test)
and/or `wstest -m fuzzingclient` (our server under test). Its shape is
{agent: {case_id: {"behavior": ..., "behaviorClose": ..., "duration": ..., "reportfile": ...}}}.

Prints, per role and agent, a table by section (1-13) counting the case outcomes, then
lists every case that is not OK. Exits 1 if any case's `behavior` or `behaviorClose` is
anything but OK or INFORMATIONAL, 2 if a report cannot be read.

    conformance/report.py                          # both roles, default report folders
    conformance/report.py --client conformance/reports/client --markdown summary.md
"""

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUTDIRS = {
    "client": HERE / "reports" / "client",
    "server": HERE / "reports" / "server",
}
SECTIONS = list(range(1, 14))
BEHAVIOR_COLUMNS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
HEADERS = ["Section", "Cases"] + BEHAVIOR_COLUMNS + ["Close OK", "Close other"]
PASSING = {"OK", "INFORMATIONAL"}


def case_key(case_id):
    """Sort key for ids like "6.4.10": numeric parts compare as numbers."""
    return [int(part) if part.isdigit() else part for part in case_id.split(".")]


def section_of(case_id):
    head = case_id.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def behavior_column(behavior):
    # Every failing verdict (FAILED, WRONG CODE, UNCLEAN, FAILED BY CLIENT, ...) counts
    # as FAILED.
    return behavior if behavior in BEHAVIOR_COLUMNS else "FAILED"


def fail_to_read(message):
    print("report.py: " + message, file=sys.stderr)
    raise SystemExit(2)


def load_index(outdir):
    path = Path(outdir) / "index.json"
    try:
        with path.open(encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        fail_to_read("cannot read {}: {}".format(path, e))
    if not isinstance(index, dict) or not all(isinstance(c, dict) for c in index.values()):
        fail_to_read("{}: not an Autobahn index".format(path))
    return index


def summarise(cases):
    """Rows of the section table, and the cases that are not OK (sorted by id)."""
    rows = {}
    for case_id, result in cases.items():
        section = section_of(case_id)
        label = str(section) if section in SECTIONS else "other"
        row = rows.setdefault(label, dict.fromkeys(HEADERS[1:], 0))
        row["Cases"] += 1
        row[behavior_column(result.get("behavior"))] += 1
        row["Close OK" if result.get("behaviorClose") == "OK" else "Close other"] += 1
    table = []
    for label in [str(s) for s in SECTIONS] + ["other"]:
        if label == "other" and label not in rows:
            continue
        row = rows.get(label, dict.fromkeys(HEADERS[1:], 0))
        table.append([label] + [row[h] for h in HEADERS[1:]])
    totals = ["total"] + [sum(r[i] for r in table) for i in range(1, len(HEADERS))]
    table.append(totals)
    not_ok = [
        (case_id, cases[case_id])
        for case_id in sorted(cases, key=case_key)
        if cases[case_id].get("behavior") != "OK" or cases[case_id].get("behaviorClose") != "OK"
    ]
    return table, not_ok


def is_failure(result):
    return result.get("behavior") not in PASSING or result.get("behaviorClose") not in PASSING


def text_table(table):
    cells = [HEADERS] + [[str(c) for c in row] for row in table]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(table):
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in table:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def case_line(case_id, result):
    verdict = "FAIL" if is_failure(result) else "accepted"
    return "{} behavior={} behaviorClose={} ({}) {}".format(
        case_id,
        result.get("behavior"),
        result.get("behaviorClose"),
        verdict,
        result.get("reportfile", ""),
    ).rstrip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--client", metavar="DIR", help="fuzzingserver outdir (our client)")
    parser.add_argument("--server", metavar="DIR", help="fuzzingclient outdir (our server)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the summary as Markdown")
    args = parser.parse_args(argv)

    roles = {role: d for role, d in (("client", args.client), ("server", args.server)) if d}
    if not roles:
        roles = {
            role: d for role, d in DEFAULT_OUTDIRS.items() if (d / "index.json").is_file()
        }
        if not roles:
            print("report.py: no index.json under {}".format(HERE / "reports"), file=sys.stderr)
            return 2

    failures = 0
    total = 0
    markdown = ["# Autobahn|TestSuite results", ""]
    for role, outdir in roles.items():
        index = load_index(outdir)
        if not index:
            print("report.py: {}/index.json has no agent".format(outdir), file=sys.stderr)
            return 2
        for agent in sorted(index):
            cases = index[agent]
            table, not_ok = summarise(cases)
            role_failures = sum(1 for result in cases.values() if is_failure(result))
            failures += role_failures
            total += len(cases)
            title = "{} (agent {}): {} cases, {} failing".format(
                role, agent, len(cases), role_failures
            )
            print(title)
            print(text_table(table))
            markdown += ["## " + title, "", markdown_table(table), ""]
            if not_ok:
                print("cases not OK:")
                markdown.append("Cases not OK:")
                markdown.append("")
                for case_id, result in not_ok:
                    print("  " + case_line(case_id, result))
                    markdown.append("- `" + case_line(case_id, result) + "`")
                markdown.append("")
            print()

    verdict = "{} of {} cases failing".format(failures, total)
    print(verdict)
    markdown.append("**" + verdict + "**")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(markdown) + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
