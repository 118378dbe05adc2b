"""`deploysim discover show NAME` and `deploysim discover promote NAME CLUSTER --id BEHAVIOUR`: the possible
new failure modes of a candidate's last discover step, and turning one into a taxonomy behaviour.

promote appends a behaviour graded by the judge (`judge.<id>`, its rubric built from the cluster's terms and
examples), not gated, to <DEPLOYSIM_HOME>/taxonomy.yaml (first a copy of the taxonomy in use). Set
DEPLOYSIM_TAXONOMY to that file to grade with it. Exit code: 0 done, 2 could not run."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_discover_command(sub: Any) -> None:
    d = sub.add_parser("discover", help="possible new failure modes of a candidate; promote one into the taxonomy")
    act = d.add_subparsers(dest="action", required=True)
    show = act.add_parser("show", help="list the clusters of the candidate's last discover step")
    show.add_argument("name", help="candidate")
    show.add_argument("--json", action="store_true", help="print the clusters as JSON")
    show.add_argument("--examples", action="store_true", help="also print each cluster's redacted examples")
    show.set_defaults(func=cmd_show)
    pr = act.add_parser("promote", help="add a cluster to <DEPLOYSIM_HOME>/taxonomy.yaml as a new behaviour")
    pr.add_argument("name", help="candidate")
    pr.add_argument("cluster", type=int, help="cluster number (see `deploysim discover show NAME`)")
    pr.add_argument("--id", required=True, dest="behaviour", help="id of the new behaviour (lower_snake_case)")
    pr.add_argument("--max-rate", type=float, default=0.02, help="its max_rate (reported, not gated; default 0.02)")
    pr.add_argument("--description", help="what the behaviour is (default: from the cluster's name)")
    pr.add_argument("--severity", default="medium", choices=["low", "medium", "high", "critical"])
    pr.set_defaults(func=cmd_promote)


def cmd_show(a: argparse.Namespace) -> int:
    from deploysim import candidates, discover
    from deploysim.report.discover import concern

    candidates.get(a.name)  # an unknown candidate: one line, exit 2
    clusters = discover.load_clusters(a.name)
    if a.json:
        print(json.dumps(clusters, indent=1, ensure_ascii=False))
        return 0
    if not clusters:
        print(f"{a.name}: no possible new failure modes (or no discover step yet)")
        return 0
    print(f"{a.name}: possible new failure modes (share of traffic, 95% interval; ! = the judge finds it concerning)")
    for c in clusters:
        mark = "! " if c.get("concerning") is True else "  "
        print(
            f"{mark}{c['cluster']:>2}  {c['name']:<40} {c['size']:>5} conversations  "
            f"{c['share']:.1%} [{c['ci_low']:.1%}, {c['ci_high']:.1%}]  terms: {', '.join(c['terms'])}"
        )
        if c.get("named_by", "terms") != "terms":
            verdict = concern(c.get("concerning"))
            print(f"      named by {c['named_by']}: {verdict}. {c.get('judge_note') or ''}".rstrip())
        for e in c["examples"] if a.examples else []:
            print(f"        {e['conversation_id']}: user: {e['request'][:120]}")
            print(f"        {'':{len(e['conversation_id'])}}  candidate: {e['candidate'][:160]}")
    return 0


def cmd_promote(a: argparse.Namespace) -> int:
    from deploysim import candidates, discover
    from deploysim.settings import load

    candidates.get(a.name)
    path, beh = discover.promote(
        a.name,
        a.cluster,
        a.behaviour,
        max_rate=a.max_rate,
        description=a.description,
        severity=a.severity,
        source=load().taxonomy,
    )
    print(f"added behaviour {beh.id} (grader judge.{beh.id}, not gated, max_rate {beh.max_rate}) to {path}")
    print(f"grade with it: export DEPLOYSIM_TAXONOMY={path} (its judge grader needs DEPLOYSIM_JUDGE_MODEL)")
    return 0
