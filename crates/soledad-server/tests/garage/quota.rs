//! What only the Garage quota counters show: several servers over one
//! cluster converge on each user's counts, a restarted server starts from
//! them, and existing data is measured once, when a user's counts are made.

use std::sync::Arc;
use std::time::{Duration, Instant};

use soledad_server::blobs::{BlobError, QuotaCounters, QuotaLedger, UsageSource, UserId};
use soledad_server::conformance::block_on;
use soledad_server::garage::{GarageBackend, GarageConfig, GarageQuotaCounters};

use crate::cluster;

fn counters(config: &GarageConfig) -> GarageQuotaCounters {
    GarageBackend::connect(config.clone())
        .unwrap()
        .quota_counters()
        .unwrap()
}

fn ledger(counters: &GarageQuotaCounters, limit: u64) -> QuotaLedger {
    QuotaLedger::with_counters(limit, Arc::new(counters.clone()))
}

/// Polls `ledger`'s usage of `user` until it is `expected` (bounded wait).
async fn usage_becomes(ledger: &QuotaLedger, user: &UserId, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let used = ledger.usage(user).await.unwrap().used_bytes;
        if used == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "usage stays {used}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn servers_converge_and_a_restart_keeps_the_counts() {
    if !cluster::requested() {
        return;
    }
    block_on(async {
        let config = cluster::config();
        let alice = UserId::parse("alice").unwrap();
        let (one, two) = (counters(&config), counters(&config));
        let (ledger_one, ledger_two) = (ledger(&one, 10_000), ledger(&two, 10_000));
        ledger_one.reserve(&alice, 6_000).await.unwrap().commit();
        one.write_back().await.unwrap();
        usage_becomes(&ledger_two, &alice, 6_000).await;
        assert!(matches!(
            ledger_two.reserve(&alice, 4_001).await,
            Err(BlobError::QuotaExceeded {
                used_bytes: 6_000,
                ..
            })
        ));
        ledger_two.reserve(&alice, 4_000).await.unwrap().commit();
        ledger_two.ensure_loaded(&alice).await.unwrap();
        ledger_two.release(&alice, 1_000);
        two.write_back().await.unwrap();
        usage_becomes(&ledger_one, &alice, 9_000).await;
        // A restarted server (a new instance) starts where they are.
        let restarted = counters(&config);
        let ledger_restarted = ledger(&restarted, 10_000);
        assert_eq!(
            ledger_restarted.usage(&alice).await.unwrap().used_bytes,
            9_000
        );
        assert!(ledger_restarted.reserve(&alice, 1_001).await.is_err());
    });
}

struct Fixed(u64);

impl UsageSource for Fixed {
    fn measure(&self, _user: &UserId) -> std::io::Result<u64> {
        Ok(self.0)
    }
}

#[test]
fn existing_data_is_measured_once_when_the_counts_are_made() {
    if !cluster::requested() {
        return;
    }
    block_on(async {
        let config = cluster::config();
        let bob = UserId::parse("bob").unwrap();
        let first = counters(&config);
        first.register_source(Arc::new(Fixed(1_234)));
        let ledger_first = ledger(&first, u64::MAX);
        assert_eq!(ledger_first.usage(&bob).await.unwrap().used_bytes, 1_234);
        ledger_first.reserve(&bob, 66).await.unwrap().commit();
        first.write_back().await.unwrap();
        // Another server measuring something else: the counts stand.
        let second = counters(&config);
        second.register_source(Arc::new(Fixed(99_999)));
        let ledger_second = ledger(&second, u64::MAX);
        assert_eq!(ledger_second.usage(&bob).await.unwrap().used_bytes, 1_300);
    });
}
