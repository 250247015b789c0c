//! Conformance suites of the storage traits: one suite per trait, checking
//! the contract its documentation states, runnable against any
//! implementation. The embedded implementations run them in this crate's
//! tests (`tests/storage`), next to a small in-memory implementation of each
//! trait; a second backend (e.g. Garage, DESIGN §9) runs the same suites.
//!
//! Built only with the cargo feature `conformance` (test support, not part
//! of the server's API). A backend crate runs a suite like this:
//!
//! ```toml
//! [dev-dependencies]
//! soledad-server = { workspace = true, features = ["conformance"] }
//! ```
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! use futures_util::future::BoxFuture;
//! use soledad_server::conformance::shared;
//! use soledad_server::{SharedStore, SqliteSharedStore};
//!
//! /// Makes a fresh, empty store for each case (for a distributed backend: a new
//! /// bucket or key prefix; here the embedded store in a new file).
//! struct MyBackend;
//!
//! static NEXT: AtomicUsize = AtomicUsize::new(0);
//!
//! impl shared::Factory for MyBackend {
//!     fn fresh(&self) -> BoxFuture<'_, Arc<dyn SharedStore>> {
//!         Box::pin(async {
//!             let n = NEXT.fetch_add(1, Ordering::SeqCst);
//!             let dir = std::env::temp_dir().join(format!("shared-{}-{n}", std::process::id()));
//!             let store = SqliteSharedStore::open(&dir.join("shared.sqlite")).expect("a new store");
//!             Arc::new(store) as Arc<dyn SharedStore>
//!         })
//!     }
//! }
//!
//! mod my_backend_shared {
//!     // One #[test] per case of the suite, each on its own runtime.
//!     soledad_server::conformance_tests!(shared, super::MyBackend);
//! }
//! # fn main() {}
//! ```
//!
//! [`conformance_tests!`](crate::conformance_tests) takes the suite
//! (`tokens`, `shared`, `blobs`, `docstores`, `incoming`, `quota` or `notifier`),
//! an expression making its factory, and optionally `if <bool expression>`,
//! evaluated first in each test (a backend whose service was not asked for
//! returns early after saying so) ([`tokens::Factory`], [`shared::Factory`],
//! [`blobs::Factory`], [`docstores::Factory`], [`incoming::Factory`],
//! [`quota::Factory`], [`notifier::Factory`]); the
//! expression is evaluated inside each test's runtime. Every case is also a
//! public `async fn(&dyn Factory)`, so a test can run one case and then check
//! what only its backend can see (e.g. no temporary file left on disk).
//! Each case calls `fresh` once and panics when the contract is broken.

// Test support: a broken contract is reported by panicking, as in tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod blobs;
pub mod docstores;
pub mod incoming;
pub mod notifier;
pub mod quota;
pub mod shared;
pub mod tokens;

use std::future::Future;

/// Runs one case on a fresh multi-threaded runtime (two workers, so cases
/// about concurrent calls really run concurrently).
pub fn block_on<F: Future<Output = ()>>(case: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a tokio runtime for a conformance case")
        .block_on(case);
}

/// Expands to one `#[test]` per case of a conformance suite; see the
/// [module documentation](crate::conformance).
#[macro_export]
macro_rules! conformance_tests {
    (tokens, $factory:expr $(, if $enabled:expr)?) => {
        $crate::conformance_tests!(@cases tokens, $factory, ($($enabled)?), [
            verify_accepts_only_the_current_token,
            add_refuses_known_and_invalid_users,
            expiry_is_enforced_and_listed,
            rotate_replaces_the_token,
            remove_forgets_the_user,
            list_is_sorted_by_uuid,
        ]);
    };
    (shared, $factory:expr $(, if $enabled:expr)?) => {
        $crate::conformance_tests!(@cases shared, $factory, ($($enabled)?), [
            put_creates_and_get_reads_back,
            put_needs_the_current_revision,
            delete_needs_the_current_revision,
            owners_are_isolated,
        ]);
    };
    (blobs, $factory:expr $(, if $enabled:expr)?) => {
        $crate::conformance_tests!(@cases blobs, $factory, ($($enabled)?), [
            round_trips_empty_small_and_multi_megabyte_blobs,
            duplicate_put_is_already_exists_and_keeps_the_original,
            a_put_while_another_of_the_same_id_is_in_flight_fails,
            concurrent_duplicate_puts_exactly_one_wins,
            an_upload_is_invisible_until_complete,
            ranges_from_to_suffix_and_unsatisfiable,
            missing_blobs_are_not_found,
            flags_initial_get_and_set,
            delete_frees_quota_leaves_a_tombstone_and_allows_a_new_put,
            list_filters_orders_and_counts,
            namespaces_are_isolated,
            users_are_isolated,
            quota_exceeded_up_front_never_reads_the_body,
            quota_exceeded_mid_stream_stores_nothing,
            a_failed_body_stores_nothing,
            a_put_dropped_half_way_leaves_nothing,
        ]);
    };
    (docstores, $factory:expr $(, if $enabled:expr)?) => {
        $crate::conformance_tests!(@cases docstores, $factory, ($($enabled)?), [
            create_and_exists,
            positions_are_recorded_and_read,
            apply_follows_u1db_target_rules,
            changes_after_in_order_and_bounded,
            quota_charged_by_stored_size,
        ]);
    };
    (incoming, $factory:expr $(, if $enabled:expr)?) => {
        $crate::conformance_tests!(@cases incoming, $factory, ($($enabled)?), [
            concurrent_claims_exactly_one_wins,
            an_expired_claim_is_taken_over,
            failed_is_retried_only_by_a_newer_version,
            listing_orders_pages_and_skips_oversized,
            keys_are_published_and_rotated,
            claims_and_failed_versions_survive_a_restart,
            a_claim_expires_after_a_restart,
        ]);
    };
    (quota, $factory:expr $(, if $enabled:expr)?) => {
        $crate::conformance_tests!(@cases quota, $factory, ($($enabled)?), [
            reserved_bytes_count_once_committed,
            the_limit_holds_and_refusals_change_nothing,
            charge_and_release_adjust_the_stored_bytes,
            users_are_isolated,
            concurrent_reservations_never_pass_the_limit,
        ]);
    };
    (notifier, $factory:expr $(, if $enabled:expr)?) => {
        $crate::conformance_tests!(@cases notifier, $factory, ($($enabled)?), [
            without_a_marker_every_kind_at_once,
            no_change_ends_empty_after_the_timeout,
            changes_are_reported_by_kind_and_never_lost,
            a_replica_is_not_woken_by_its_own_documents,
            users_are_isolated_and_markers_checked,
        ]);
    };
    (@enabled ()) => { true };
    (@enabled ($enabled:expr)) => { $enabled };
    (@cases $suite:ident, $factory:expr, $enabled:tt, [$($case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                if !$crate::conformance_tests!(@enabled $enabled) {
                    return;
                }
                $crate::conformance::block_on(async {
                    let factory = $factory;
                    $crate::conformance::$suite::$case(&factory).await;
                });
            }
        )*
    };
}
