//! The bus conformance suite on the in-process bus, under tokio's paused clock (heartbeat
//! expiry without waiting for it).

use std::time::Duration;

use chinwag_bus::conformance::{self, Network};
use chinwag_bus::LocalBus;

struct Local(LocalBus);

impl Network for Local {
    type Bus = LocalBus;

    async fn join(&self) -> LocalBus {
        self.0.join()
    }
}

#[tokio::test(start_paused = true)]
async fn local_bus_passes_the_conformance_suite() {
    conformance::run_all(async || Local(LocalBus::new(Duration::from_secs(5)))).await;
}
