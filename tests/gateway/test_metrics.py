"""The gateway's metrics: the documented series exist, with code-only labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics

DOCUMENTED = {
    "igo_gateway_build_info": "gauge",
    "igo_gateway_uploads": "counter",
    "igo_gateway_upload_bytes": "counter",
    "igo_gateway_upload_rejections": "counter",
    "igo_gateway_upload_refusals": "counter",
    "igo_gateway_http_requests": "counter",
    "igo_gateway_http_request_duration_seconds": "histogram",
    "igo_gateway_store_up": "gauge",
    "igo_gateway_store_bytes": "gauge",
    "igo_gateway_store_transaction_seconds": "histogram",
    "igo_gateway_pruned_payloads": "counter",
    "igo_gateway_job_failures": "counter",
    "igo_gateway_outbound_files": "gauge",
    "igo_gateway_outbound_attempts": "counter",
    "igo_gateway_retours_received": "counter",
    "igo_gateway_lines_decided": "counter",
    "igo_gateway_integral_claims": "counter",
    "igo_gateway_integral_claimed_eurocents": "counter",
    "igo_gateway_integral_credits": "counter",
    "igo_gateway_integral_credited_eurocents": "counter",
    "igo_gateway_outbound_oldest_unanswered_age_seconds": "gauge",
    "igo_gateway_bundling_latency_seconds": "histogram",
    "igo_gateway_end_to_end_seconds": "histogram",
    "igo_gateway_check_workers": "gauge",
    "igo_gateway_checks_in_gateway": "counter",
    "igo_gateway_bundle_batches_in_gateway": "counter",
    "process_resident_memory_bytes": "gauge",
    "python_gc_collections": "counter",
}


def test_every_documented_series_is_exposed_with_help_text() -> None:
    metrics = Metrics()
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    for name, kind in DOCUMENTED.items():
        assert name in families, name
        assert families[name].type == kind, name
        assert families[name].documentation, name


def test_two_gateways_in_one_process_do_not_share_counts() -> None:
    first, second = Metrics(), Metrics()
    first.rejections.labels("0010").inc()
    assert b'retourcode="0010"' in first.exposition()
    assert b'retourcode="0010"' not in second.exposition()


def test_a_credit_line_is_counted_apart_and_never_decrements_a_counter() -> None:
    metrics = Metrics()
    metrics.count_integral_line("3311", 150000)
    metrics.count_integral_line("3311", -100000)  # a credit of an earlier claim
    samples = {
        s.name: s.value
        for f in text_string_to_metric_families(metrics.exposition().decode())
        for s in f.samples
        if s.labels == {"insurer": "3311"}
    }
    assert samples["igo_gateway_integral_claims_total"] == 1
    assert samples["igo_gateway_integral_claimed_eurocents_total"] == 150000
    assert samples["igo_gateway_integral_credits_total"] == 1
    assert samples["igo_gateway_integral_credited_eurocents_total"] == 100000
