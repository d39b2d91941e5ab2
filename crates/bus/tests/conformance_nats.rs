//! The bus conformance suite on NATS (the machine's, `CHINWAG_TEST_NATS`), each check in a
//! cluster namespace of its own that is deleted afterwards.

use chinwag_bus::conformance;
use chinwag_bus::test_nats::TestNetwork;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_bus_passes_the_conformance_suite() {
    conformance::run_all(TestNetwork::new).await;
}
