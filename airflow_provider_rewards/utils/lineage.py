"""OpenLineage for the rewards operators: vendor datasets, id and results files, a run facet with the counts.

Nothing here imports OpenLineage at module level: :func:`operator_lineage` imports it when called and
returns ``None`` when ``apache-airflow-providers-openlineage`` is not installed, so the provider works
without it. What is emitted (documented in ``docs/lineage.md``):

- a **vendor dataset** per vendor collection the task touches, in the namespace of the connection's API
  base URL (``scheme://host[:port]``, never userinfo) and named ``merchants/<merchant id>/<collection>``:
  an *output* when the task changes it, an *input* when it only reads it (a dry run only reads);
- an **input dataset** per id file the task read (a template field ending in ``_path``, other than
  ``results_path``) and an **output dataset** for the results file the summary names (``results_path``);
- the run facet ``rewards``: the vendors (connection id, merchant id, access), ``dry_run``, ``outcome``
  and every count of the summary the task returned or pushed to XCom. Never a secret: connection ids and
  merchant ids only, never a login, token, key or id list.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

#: The run facet's key in ``run.facets``.
RUN_FACET_KEY = "rewards"
#: The summary key that names the results file a task wrote.
RESULTS_PATH_KEY = "results_path"
Access = Literal["read", "write"]


@dataclass(frozen=True)
class VendorDataset:
    """One vendor collection an operator reads or changes (see the module docstring for its name).

    ``vendor`` is ``"thanx"`` or ``"hpgames"``: the operator's ``<vendor>_conn_id`` attribute names the
    connection, whose base URL gives the namespace and (HPGames) whose login is the merchant id.
    """

    vendor: str
    collection: str
    access: Access = "write"

    def read(self) -> VendorDataset:
        """The same collection, only read (e.g. by the teardown report)."""
        return VendorDataset(self.vendor, self.collection, "read")


THANX_ISSUANCE_JOBS = VendorDataset("thanx", "issuance_jobs")
THANX_CAMPAIGNS = VendorDataset("thanx", "campaigns")
HPGAMES_REWARDS = VendorDataset("hpgames", "rewards")
HPGAMES_REWARD_CONFIGURATIONS = VendorDataset("hpgames", "reward_configurations")
#: The default collection of each vendor, for an operator that declares none (found by its ``<vendor>_conn_id``).
DEFAULT_DATASETS = {dataset.vendor: dataset for dataset in (THANX_ISSUANCE_JOBS, HPGAMES_REWARDS)}


@dataclass(frozen=True)
class Target:
    """A resolved vendor dataset: where it lives and whose it is (no secret)."""

    vendor: str
    connection_id: str
    namespace: str | None  # None: the connection could not be read (the task failed over it)
    merchant_id: str | None
    collection: str
    access: Access

    @property
    def name(self) -> str:
        return f"merchants/{self.merchant_id}/{self.collection}" if self.merchant_id else self.collection

    def as_facet(self) -> dict[str, str | None]:
        return {
            "vendor": self.vendor,
            "connection_id": self.connection_id,
            "merchant_id": self.merchant_id,
            "collection": self.collection,
            "access": self.access,
        }


def declared_datasets(operator: Any) -> tuple[VendorDataset, ...]:
    """``operator.lineage_datasets`` if it declares any, else the default collection per ``<vendor>_conn_id``."""
    declared = tuple(getattr(operator, "lineage_datasets", ()) or ())
    if declared:
        return declared
    return tuple(dataset for vendor, dataset in DEFAULT_DATASETS.items() if hasattr(operator, f"{vendor}_conn_id"))


def api_namespace(base_url: str) -> str:
    """``scheme://host[:port]`` of an API base URL: no userinfo, path, query or fragment."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"


def file_dataset(location: object) -> tuple[str, str]:
    """``(namespace, name)`` of a file URI or path, per the OpenLineage naming spec, without any secret.

    ``/x/ids.csv`` and ``file:///x/ids.csv`` give ``("file", "/x/ids.csv")``; ``s3://conn@bucket/k`` gives
    ``("s3://bucket", "k")`` (the conn id in the userinfo, a query string or a fragment are dropped).
    """
    text = str(location)
    parts = urlsplit(text)
    if parts.scheme in ("", "file"):
        return "file", parts.path or text
    host = parts.hostname or ""
    authority = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{authority}", parts.path.lstrip("/")


def resolve_target(operator: Any, dataset: VendorDataset, summary: Mapping[str, Any], *, single: bool) -> Target:
    """Where ``dataset`` lives for ``operator``: reads its connection (no request is sent).

    The merchant is, in this order: the summary's ``merchant_id`` and the operator's ``merchant_id``
    (when the operator has one vendor), its ``<vendor>_merchant_id``, then the connection's. A connection
    that cannot be read (missing, invalid: the task failed over it) gives no namespace, never an error.
    """
    hook_class = _hook_class(dataset.vendor)
    conn_id = getattr(operator, f"{dataset.vendor}_conn_id", None) or hook_class.default_conn_name
    hook = operator.__dict__.get("hook")
    if not isinstance(hook, hook_class) or hook.conn_id != conn_id:
        hook = hook_class(conn_id)
    try:
        config = hook.config
    except Exception:
        config = None
    candidates = [getattr(operator, f"{dataset.vendor}_merchant_id", None)]
    if single:
        candidates[:0] = [summary.get("merchant_id"), getattr(operator, "merchant_id", None)]
    merchant = next((str(value) for value in candidates if isinstance(value, str) and value), None)
    return Target(
        vendor=hook_class.vendor,
        connection_id=conn_id,
        namespace=None if config is None else api_namespace(config.base_url),
        merchant_id=merchant or getattr(config, "merchant_id", None),
        collection=dataset.collection,
        access=dataset.access,
    )


def counts_of(summary: Mapping[str, Any]) -> dict[str, int]:
    """Every integer of the summary, one level of nesting flattened (``job.success_count``); booleans excluded."""

    def items(mapping: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, int]]:
        for key, value in mapping.items():
            if isinstance(value, int) and not isinstance(value, bool):
                yield f"{prefix}{key}", value
            elif isinstance(value, Mapping) and not prefix:
                yield from items(value, f"{key}.")

    return dict(items(summary))


def dry_run_of(value: object) -> bool | None:
    """A summary's (or a rendered argument's) ``dry_run`` as a bool; ``None`` when it says nothing clear."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def input_files(operator: Any) -> list[str]:
    """The id files an operator read: set template fields ending in ``_path`` (``results_path`` aside)."""
    fields = [name for name in getattr(operator, "template_fields", ()) if name.endswith("_path")]
    return [str(value) for name in fields if name != RESULTS_PATH_KEY and (value := getattr(operator, name, None))]


def operator_lineage(operator: Any, summary: Mapping[str, Any] | None, *, failed: bool) -> OperatorLineage | None:
    """The ``OperatorLineage`` of a finished rewards task, or ``None`` without the openlineage provider.

    ``summary`` is what the task returned or pushed under ``"summary"`` (``None`` when it stopped before
    having one: the datasets and vendors are still named, without counts, and ``dry_run`` is read from the
    operator's rendered argument). In a dry run every vendor dataset is an input: nothing was changed.
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    summary = summary or {}
    dry_run = dry_run_of(summary.get("dry_run", getattr(operator, "dry_run", None)))
    datasets = [dataset.read() if dry_run else dataset for dataset in declared_datasets(operator)]  # reads only
    targets = [resolve_target(operator, dataset, summary, single=len(datasets) == 1) for dataset in datasets]
    inputs = [Dataset(namespace=namespace, name=name) for namespace, name in map(file_dataset, input_files(operator))]
    outputs = []
    for target in targets:
        if target.namespace is not None:
            changed = target.access == "write"
            (outputs if changed else inputs).append(Dataset(namespace=target.namespace, name=target.name))
    if isinstance(results := summary.get(RESULTS_PATH_KEY), str) and results:
        namespace, name = file_dataset(results)
        outputs.append(Dataset(namespace=namespace, name=name))
    outcome = summary.get("outcome")
    facet = run_facet_class()(
        vendors=[target.as_facet() for target in targets],
        dry_run=dry_run,
        outcome=outcome if isinstance(outcome, str) else None,
        counts=counts_of(summary),
        status="failed" if failed else "complete",
    )
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets={RUN_FACET_KEY: facet})


@functools.cache
def run_facet_class() -> type:
    """The ``rewards`` run facet class, defined on first use (it needs openlineage-python)."""
    import attrs
    from airflow.providers.common.compat.openlineage.facet import RunFacet

    @attrs.define
    class RewardsRunFacet(RunFacet):
        """What a rewards task did: vendors (connection and merchant ids), dry run, outcome and counts."""

        vendors: list[dict[str, str | None]] = attrs.field(factory=list)
        dry_run: bool | None = None
        outcome: str | None = None
        counts: dict[str, int] = attrs.field(factory=dict)
        status: str = "complete"

    return RewardsRunFacet


def _hook_class(vendor: str) -> Any:
    if vendor == "thanx":
        from airflow_provider_rewards.hooks.thanx import ThanxHook

        return ThanxHook
    if vendor == "hpgames":
        from airflow_provider_rewards.hooks.hpgames import HPGamesHook

        return HPGamesHook
    raise ValueError(f"VendorDataset.vendor must be 'thanx' or 'hpgames', got {vendor!r}")
