"""Runs on a Dagster deployment: launched through its GraphQL API (dagster-graphql's client), so they
go through the deployment's run queue and executor, and followed until they end.

The deployment's code location evaluates with its own settings (its environment); the CLI only
names the job, the candidate and, for the replay, a deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from orchestration.partitions import CANDIDATES
from orchestration.runner import CANDIDATE_TAG, outcome

DONE = {"SUCCESS", "FAILURE", "CANCELED"}

_ADD_PARTITION = """
mutation($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""

_RUN = """
query($runId: ID!, $cursor: String) {
  runOrError(runId: $runId) { __typename ... on Run { status jobName } }
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 1000) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MessageEvent { stepKey eventType message }
        ... on ExecutionStepFailureEvent { error { message className cause { message className } } }
        ... on MaterializationEvent { assetKey { path } }
        ... on AssetCheckEvaluationEvent {
          evaluation { checkName success description assetKey { path } }
        }
      }
    }
    ... on PythonError { message }
  }
}"""


@dataclass
class Followed:
    """What a followed run reported: its status and the events the CLI decides on."""

    run_id: str
    status: str = "QUEUED"
    failed: list[str] = field(default_factory=list)
    why: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    enqueued: bool = False

    def outcome(self) -> dict:
        return outcome(self.failed, self.why, self.errors, self.done, self.run_id)


class Deployment:
    """A Dagster deployment's webserver, e.g. http://127.0.0.1:3000 (a path prefix is kept)."""

    def __init__(self, url: str, timeout_s: int = 60) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--dagster-url must be an http(s) URL of a Dagster webserver, not {url!r}")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.client = DagsterGraphQLClient(
            parts.hostname,
            port_number=parts.port,
            use_https=parts.scheme == "https",
            timeout=timeout_s,
            path_prefix=parts.path.rstrip("/"),
        )

    def _query(self, query: str, variables: dict) -> dict:
        try:
            return self.client._execute(query, variables)
        except DagsterGraphQLClientError as e:
            raise RuntimeError(f"the Dagster deployment at {self.url} did not answer: {str(e).splitlines()[0]}") from e

    def _location(self, job: str) -> tuple[str, str]:
        try:
            found = self.client._get_repo_locations_and_names_with_pipeline(job)
        except Exception as e:  # noqa: BLE001 - connection refused, bad gateway, ... one line
            raise RuntimeError(f"the Dagster deployment at {self.url} did not answer: {str(e).splitlines()[0]}") from e
        if not found:
            raise RuntimeError(f"the Dagster deployment at {self.url} has no job {job!r}: is deploysim's code loaded?")
        return found[0].repository_location_name, found[0].repository_name

    def ready(self, job: str = "simulate_candidate") -> bool:
        """Whether the webserver answers and has loaded deploysim's code (a location with the job)."""
        try:
            self._location(job)
        except RuntimeError:
            return False
        return True

    def add_candidate(self, name: str) -> None:
        """The candidate's partition, added if the deployment does not have it yet."""
        location, repo = self._location("simulate_candidate")
        selector = {"repositoryLocationName": location, "repositoryName": repo}
        res = self._query(_ADD_PARTITION, {"selector": selector, "name": CANDIDATES, "key": name})
        kind = res["addDynamicPartition"]["__typename"]
        if kind not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise RuntimeError(f"could not add candidate {name!r} to the deployment: {res['addDynamicPartition']}")

    def launch(
        self,
        job: str,
        candidate: str | None = None,
        run_config: dict | None = None,
        days: tuple[str, str] | None = None,
    ) -> str:
        """Submit a run of one job (through the deployment's run queue), for a candidate's partition or a
        range of days (first, last); its run id."""
        location, repo = self._location(job)
        tags = {"dagster/partition": candidate, CANDIDATE_TAG: candidate} if candidate else {}
        if days:
            tags |= {ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[1]}
        try:
            return self.client.submit_job_execution(
                job, repository_location_name=location, repository_name=repo, run_config=run_config or {}, tags=tags
            )
        except DagsterGraphQLClientError as e:
            raise RuntimeError(f"the deployment refused to launch {job}: {str(e).splitlines()[0]}") from e

    def follow(self, run_id: str, say: Callable[[str], None], poll_s: float = 1.0) -> Followed:
        """Wait for a run to end, saying each step as it finishes; what it reported."""
        run = Followed(run_id)
        cursor = None
        started: dict[str, float] = {}
        while True:
            res = self._query(_RUN, {"runId": run_id, "cursor": cursor})
            if res["runOrError"]["__typename"] != "Run":
                raise RuntimeError(f"the deployment has no run {run_id}")
            status = res["runOrError"]["status"]
            logs = res["logsForRun"]
            if logs["__typename"] != "EventConnection":
                raise RuntimeError(f"could not read the events of run {run_id}: {logs.get('message', '')}")
            for e in logs["events"]:
                self._note(run, e, started, say)
            cursor = logs["cursor"]
            if logs["hasMore"]:
                continue
            if status in DONE:
                run.status = status
                return run
            time.sleep(poll_s)

    @staticmethod
    def _note(run: Followed, e: dict, started: dict[str, float], say: Callable[[str], None]) -> None:
        kind, step = e["__typename"], e.get("stepKey")
        if kind == "RunEnqueuedEvent":
            run.enqueued = True
            say("  queued on the deployment")
        elif kind == "RunStartEvent":
            say("  started")
        elif kind == "ExecutionStepStartEvent" and step:
            started[step] = time.perf_counter()
        elif kind == "ExecutionStepSuccessEvent" and step:
            say(f"  ✓ {step} ({time.perf_counter() - started.get(step, time.perf_counter()):.1f}s)")
        elif kind == "ExecutionStepFailureEvent":
            err = e.get("error") or {}
            while err.get("cause") and "DagsterExecutionStepExecutionError" in (err.get("className") or ""):
                err = err["cause"]
            msg = (err.get("message") or e.get("message") or "unknown error").strip().splitlines()[0]
            run.errors.append(f"{step}: {msg}")
            say(f"  ✗ {step}: {msg}")
        elif kind == "MaterializationEvent":
            run.done.add("/".join(e["assetKey"]["path"]))
        elif kind == "AssetCheckEvaluationEvent":
            ev = e["evaluation"]
            if not ev["success"]:
                check = f"{'/'.join(ev['assetKey']['path'])}:{ev['checkName']}"
                run.failed.append(check)
                if ev.get("description"):
                    run.why[check] = ev["description"]
