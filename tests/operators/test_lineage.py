"""OpenLineage of the rewards operators, through the openlineage provider's own extractor, and without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_rewards.exceptions import RewardsError
from airflow_provider_rewards.operators.hpgames import HPGamesBulkCancelRewardsOperator
from airflow_provider_rewards.operators.report import RewardsTeardownReportOperator
from airflow_provider_rewards.operators.thanx import ThanxRevokeIssuanceJobOperator
from airflow_provider_rewards.utils.lineage import (
    HPGAMES_REWARDS,
    THANX_ISSUANCE_JOBS,
    counts_of,
    file_dataset,
)
from tests.conftest import HPGAMES_MERCHANT, HPGAMES_URL, REWARDS_URL, SECRETS, THANX_MERCHANT, THANX_URL

pytest.importorskip("airflow.providers.openlineage", reason="the openlineage provider is in the test extra")
from airflow.providers.common.compat.openlineage.facet import Dataset
from airflow.providers.openlineage.extractors.manager import ExtractorManager
from openlineage.client.serde import Serde

BULK = f"{REWARDS_URL}/bulkCancel"
REWARDS_DATASET = Dataset(namespace=HPGAMES_URL, name=f"merchants/{HPGAMES_MERCHANT}/rewards")
DAGS = Path(__file__).resolve().parents[2] / "dags"
IDS = [f"00000000-0000-4000-8000-{n:012d}" for n in range(5)]


def extract(operator, ti, *, failed: bool = False):
    """What the openlineage listener gets: the provider's extractor for this operator, on complete or failure."""
    extractor = ExtractorManager()._get_extractor(operator)
    assert type(extractor).__name__ == "DefaultExtractor"  # found through our get_openlineage_facets_* methods
    return extractor.extract_on_failure(ti) if failed else extractor.extract_on_complete(ti)


def run_facet(lineage) -> dict:
    """The ``rewards`` run facet as it goes on the wire (Serde, as the OpenLineage client sends it)."""
    facet = Serde.to_dict(lineage.run_facets["rewards"])
    json.dumps(facet)  # serializable as sent
    assert facet["_producer"]
    return {key: value for key, value in facet.items() if not key.startswith("_")}


def test_bulk_cancel_names_the_rewards_it_changed_the_merchant_and_the_counts(hpgames_conn, requests_mock, context, ti):
    requests_mock.post(BULK, text="")
    operator = HPGamesBulkCancelRewardsOperator(task_id="cancel", reward_ids=[*IDS, IDS[0]], batch_size=2)
    summary = operator.execute(context)

    lineage = extract(operator, ti)

    assert requests_mock.call_count == 3
    assert lineage.inputs == []
    assert lineage.outputs == [REWARDS_DATASET]
    facet = run_facet(lineage)
    counts = facet.pop("counts")
    assert facet == {
        "vendors": [
            {
                "vendor": "HPGames",
                "connection_id": "hpgames_default",
                "merchant_id": HPGAMES_MERCHANT,
                "collection": "rewards",
                "access": "write",
            }
        ],
        "dry_run": False,  # no "outcome": a bulk cancel has none, and Serde leaves out what is None
        "status": "complete",
    }
    assert {key: counts[key] for key in ("requested", "duplicates_dropped", "cancelled", "batches", "requests")} == {
        "requested": 5,
        "duplicates_dropped": 1,
        "cancelled": 5,
        "batches": 3,
        "requests": 3,
    }
    assert counts == {key: value for key, value in summary.items() if type(value) is int}  # every count, no list


def test_a_dry_run_only_reads_so_the_rewards_are_an_input(hpgames_conn, requests_mock, context, ti):
    operator = HPGamesBulkCancelRewardsOperator(task_id="cancel", reward_ids=IDS, dry_run=True)
    operator.execute(context)

    lineage = extract(operator, ti)

    assert requests_mock.call_count == 0
    assert (lineage.inputs, lineage.outputs) == ([REWARDS_DATASET], [])
    assert run_facet(lineage)["dry_run"] is True
    assert run_facet(lineage)["vendors"][0]["access"] == "read"


def test_a_failed_bulk_cancel_reports_the_counts_it_pushed_before_failing(
    hpgames_conn, requests_mock, context, ti, sleeps
):
    requests_mock.post(BULK, [{"text": ""}, {"status_code": 503, "json": {"errorCode": 1503, "errorText": "down"}}])
    requests_mock.post(f"{REWARDS_URL}/readAll", json=[])  # the read-back of the failed batch: nothing cancelled
    operator = HPGamesBulkCancelRewardsOperator(task_id="cancel", reward_ids=IDS, batch_size=2)
    with pytest.raises(RewardsError):
        operator.execute(context)

    facet = run_facet(extract(operator, ti, failed=True))

    assert facet["status"] == "failed"
    counts = facet["counts"]
    assert {key: counts[key] for key in ("cancelled", "failed_batch", "unconfirmed", "not_attempted")} == {
        "cancelled": 2,
        "failed_batch": 2,
        "unconfirmed": 2,
        "not_attempted": 1,
    }
    assert counts == {key: value for key, value in ti.pushed["summary"].items() if type(value) is int}


def test_refused_ids_fail_the_task_and_the_failure_lineage_still_counts_them(hpgames_conn, requests_mock, context, ti):
    def respond(request, answer) -> str:
        if IDS[1] in request.body.decode():
            answer.status_code = 404
            return json.dumps({"errorCode": 1004, "errorText": "Reward not found"})
        return ""

    requests_mock.post(BULK, text=respond)
    requests_mock.post(f"{REWARDS_URL}/readAll", json=[])  # the read-back: the refused id is not cancelled
    operator = HPGamesBulkCancelRewardsOperator(task_id="cancel", reward_ids=IDS[:2])
    with pytest.raises(AirflowFailException):
        operator.execute(context)

    lineage = extract(operator, ti, failed=True)

    assert lineage.outputs == [REWARDS_DATASET]
    assert run_facet(lineage)["counts"]["rejected"] == 1
    assert run_facet(lineage)["counts"]["cancelled"] == 1


def test_a_revoke_names_the_jobs_merchant_the_outcome_and_the_job_counts(thanx_conn, requests_mock, context, ti):
    job = {"id": "job_1", "state": "completed", "total_count": 3, "success_count": 3, "failure_count": 0}
    requests_mock.get(f"{THANX_URL}/partner/issuance_jobs/job_1", json={"issuance_job": job})
    requests_mock.post(
        f"{THANX_URL}/partner/issuance_jobs/job_1/revoke",
        status_code=202,
        json={"issuance_job": {**job, "state": "revoking"}},
    )
    operator = ThanxRevokeIssuanceJobOperator(task_id="revoke", issuance_job_id="job_1")
    operator.execute(context)

    lineage = extract(operator, ti)

    assert lineage.outputs == [Dataset(namespace=THANX_URL, name=f"merchants/{THANX_MERCHANT}/issuance_jobs")]
    facet = run_facet(lineage)
    assert facet["outcome"] == "revoke_started"
    assert facet["vendors"][0]["connection_id"] == "thanx_default"
    assert facet["counts"] == {"job.total_count": 3, "job.success_count": 3, "job.failure_count": 0}


def test_an_operator_that_declares_read_access_lists_both_vendors_as_inputs(thanx_conn, hpgames_conn, ti):
    class ReadOnlyReport(RewardsTeardownReportOperator):
        lineage_datasets = (THANX_ISSUANCE_JOBS.read(), HPGAMES_REWARDS.read())

    operator = ReadOnlyReport(task_id="report", thanx_merchant_id="other-merchant")

    lineage = extract(operator, ti)  # before any run: no summary, so no counts, and never an error

    assert lineage.outputs == []
    assert lineage.inputs == [
        Dataset(namespace=THANX_URL, name="merchants/other-merchant/issuance_jobs"),
        REWARDS_DATASET,
    ]
    assert run_facet(lineage)["counts"] == {}
    assert [vendor["access"] for vendor in run_facet(lineage)["vendors"]] == ["read", "read"]


def test_a_bulk_cancel_from_a_file_reads_the_file_and_writes_the_rewards_and_its_results_file(
    hpgames_conn, requests_mock, task_context, id_file
):
    requests_mock.post(BULK, text="")
    source = id_file(IDS)
    operator = HPGamesBulkCancelRewardsOperator(task_id="cancel", reward_ids_path=source, batch_size=2)
    summary = operator.execute(task_context)

    lineage = extract(operator, task_context["ti"])

    results = summary["results_path"].removeprefix("file://")
    assert results.endswith("/results.jsonl")
    assert lineage.inputs == [Dataset(namespace="file", name=source)]
    assert lineage.outputs == [REWARDS_DATASET, Dataset(namespace="file", name=results)]
    counts = run_facet(lineage)["counts"]
    assert (counts["requested"], counts["cancelled"], counts["refused"], counts["batches"]) == (5, 5, 0, 3)


def test_a_connection_that_cannot_be_read_still_names_the_vendor(ti):
    operator = HPGamesBulkCancelRewardsOperator(task_id="cancel", reward_ids=IDS, hpgames_conn_id="missing")

    lineage = operator.get_openlineage_facets_on_failure(ti)

    assert (lineage.inputs, lineage.outputs) == ([], [])
    assert run_facet(lineage)["vendors"][0] == {
        "vendor": "HPGames",
        "connection_id": "missing",  # no merchant_id: unknown, so left out
        "collection": "rewards",
        "access": "write",
    }


def test_no_secret_reaches_the_lineage(thanx_conn, hpgames_conn, requests_mock, context, ti):
    requests_mock.post(BULK, text="")
    operator = HPGamesBulkCancelRewardsOperator(task_id="cancel", reward_ids=IDS)
    operator.execute(context)
    lineage = extract(operator, ti)

    wire = json.dumps([Serde.to_dict(dataset) for dataset in lineage.outputs] + [run_facet(lineage)])

    assert not [secret for secret in SECRETS if secret in wire]
    assert "client-id" not in wire  # no login either


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/data/ids.csv", ("file", "/data/ids.csv")),
        ("file:///data/ids.csv", ("file", "/data/ids.csv")),
        ("s3://conn_id@bucket/a/b.csv", ("s3://bucket", "a/b.csv")),
        ("gs://user:pw@bucket:8443/k?token=t#f", ("gs://bucket:8443", "k")),
    ],
)
def test_file_datasets_follow_the_naming_spec_without_userinfo_or_query(location, expected):
    assert file_dataset(location) == expected


def test_counts_are_the_integers_of_the_summary_one_level_deep():
    summary = {"cancelled": 2, "dry_run": False, "rejected_ids": ["x"], "job": {"success_count": 1, "deep": {"n": 1}}}
    assert counts_of(summary) == {"cancelled": 2, "job.success_count": 1}


def test_without_the_openlineage_provider_an_operator_runs_and_emits_nothing(
    hpgames_conn, requests_mock, context, monkeypatch
):
    requests_mock.post(BULK, text="")
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)  # import -> ImportError
    operator = HPGamesBulkCancelRewardsOperator(task_id="cancel", reward_ids=IDS)

    assert operator.execute(context)["cancelled"] == 5
    assert operator.get_openlineage_facets_on_complete(context["ti"]) is None
    assert operator.get_openlineage_facets_on_failure(context["ti"]) is None


def test_importing_the_provider_imports_no_openlineage_code():
    script = (
        "import sys, airflow_provider_rewards.operators, airflow_provider_rewards.operators.report\n"
        "print(sorted(m for m in sys.modules if m.startswith(('openlineage', 'airflow.providers.openlineage.'))"
        " and not m.endswith('get_provider_info')))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_dry_run_that_failed_before_a_summary_still_only_reads(ti):
    operator = HPGamesBulkCancelRewardsOperator(task_id="cancel", reward_ids=IDS, dry_run="{{ params.dry }}")
    operator.dry_run = "true"  # as rendered

    lineage = operator.get_openlineage_facets_on_failure(ti)  # no connection either: vendor named, no dataset

    assert run_facet(lineage)["dry_run"] is True
    assert run_facet(lineage)["vendors"][0]["access"] == "read"


@pytest.mark.e2e
def test_a_teardown_run_under_airflow_emits_what_it_touched_and_no_secret(tmp_path):
    """The real listener, task runner and file transport: ``airflow dags test`` of the flagship DAG."""
    from rewards_sandbox.demo import FLAGSHIP_DAG_ID, Credentials, airflow_env, demo_params, migrate, run_dag
    from rewards_sandbox.testing import running_sandbox

    events_file = tmp_path / "ol.jsonl"
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    credentials = Credentials.demo()
    with running_sandbox(revoke_seconds=1) as sandbox:
        namespace = sandbox.base_url.rstrip("/")
        env = airflow_env(tmp_path / "home", DAGS, sandbox.base_url, credentials, poll_interval=0.5)
        env = {**env, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport), "AIRFLOW__OPENLINEAGE__DISABLED": "0"}
        migrate(env)
        result = run_dag(FLAGSHIP_DAG_ID, env, demo_params(), timeout=300)
    assert result.succeeded, result.output[-3000:]

    text = events_file.read_text()
    events = [json.loads(line) for line in text.splitlines()]
    tasks = [event for event in events if event["eventType"] == "COMPLETE" and "." in event["job"]["name"]]
    complete = {event["job"]["name"].split(".", 1)[1]: event for event in tasks}  # one mapped copy per task
    revoke, cancel = complete["revoke_thanx_jobs"], complete["cancel_rewards_by_id"]
    assert [(d["namespace"], d["name"]) for d in revoke["outputs"]] == [
        (namespace, f"merchants/{credentials.thanx_merchant_id}/issuance_jobs")
    ]
    assert [(d["namespace"], d["name"]) for d in cancel["outputs"]] == [
        (namespace, f"merchants/{credentials.hpgames_merchant_id}/rewards")
    ]
    assert cancel["run"]["facets"]["rewards"]["counts"]["cancelled"] == len(demo_params()["hpgames_reward_ids"])
    assert revoke["run"]["facets"]["rewards"]["outcome"] in ("revoke_started", "revoked")
    assert [secret for secret in (credentials.thanx_access_token, credentials.hpgames_secret) if secret in text] == []
