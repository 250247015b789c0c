//! Revision vector clocks (`replica:counter|…`, sorted by replica), as u1db's
//! `vectorclock.py`: parse, compare, increment, maximize (join).
//!
//! The parser is strict: replica uids match `[A-Za-z0-9.%_-]+`, counters are
//! decimal without leading zeros and ≥ 1, entries are sorted and unique. A
//! revision that parses always prints back to the same string.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Result, StoreError};

/// Longest revision string accepted (bytes). Caps the cost of hostile input.
pub const MAX_REVISION_BYTES: usize = 64 * 1024 - 1;

/// How two vector clocks relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockOrdering {
    /// Same counters for every replica.
    Equal,
    /// `self` supersedes `other`.
    Newer,
    /// `other` supersedes `self`.
    Older,
    /// Neither supersedes the other.
    Concurrent,
}

/// A parsed revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorClock {
    counters: BTreeMap<String, u64>,
}

/// True if `s` is a valid replica uid (same alphabet as document ids).
pub fn is_valid_replica_uid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'%' | b'_' | b'-'))
}

/// Walks the entries of a revision text, checking that it is canonical (what
/// [`VectorClock::parse`] accepts) without allocating. `""` has no entries.
fn for_each_entry(text: &str, mut entry: impl FnMut(&str, u64)) -> Result<()> {
    if text.len() > MAX_REVISION_BYTES {
        return Err(StoreError::InvalidRevision);
    }
    if text.is_empty() {
        return Ok(());
    }
    let mut previous: Option<&str> = None;
    for part in text.split('|') {
        let (replica, counter) = part.split_once(':').ok_or(StoreError::InvalidRevision)?;
        if !is_valid_replica_uid(replica) {
            return Err(StoreError::InvalidRevision);
        }
        if counter.is_empty()
            || counter.len() > 20
            || counter.starts_with('0')
            || !counter.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(StoreError::InvalidRevision);
        }
        let value: u64 = counter.parse().map_err(|_| StoreError::InvalidRevision)?;
        if let Some(prev) = previous
            && prev >= replica
        {
            return Err(StoreError::InvalidRevision);
        }
        previous = Some(replica);
        entry(replica, value);
    }
    Ok(())
}

/// Checks that `text` is a canonical, non-empty revision (no allocation).
pub(crate) fn check_revision(text: &str) -> Result<()> {
    if text.is_empty() {
        return Err(StoreError::InvalidRevision);
    }
    for_each_entry(text, |_, _| {})
}

impl VectorClock {
    /// The empty clock (a document that was never written).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a revision string. `""` is the empty clock.
    ///
    /// # Errors
    /// [`StoreError::InvalidRevision`] unless the text is canonical.
    pub fn parse(text: &str) -> Result<Self> {
        let mut counters = BTreeMap::new();
        for_each_entry(text, |replica, value| {
            counters.insert(replica.to_owned(), value);
        })?;
        Ok(Self { counters })
    }

    /// Parses an optional revision (`None` is the empty clock).
    ///
    /// # Errors
    /// As [`VectorClock::parse`].
    pub fn parse_opt(text: Option<&str>) -> Result<Self> {
        text.map_or_else(|| Ok(Self::new()), Self::parse)
    }

    /// True for the empty clock.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// The counter of `replica_uid` (0 when absent).
    pub fn counter(&self, replica_uid: &str) -> u64 {
        self.counters.get(replica_uid).copied().unwrap_or(0)
    }

    /// u1db's `is_newer`: `self` strictly supersedes `other`. An empty clock is
    /// never newer; any non-empty clock is newer than the empty one.
    pub fn is_newer(&self, other: &Self) -> bool {
        self.compare(other) == ClockOrdering::Newer
    }

    /// Compares two clocks (missing replicas count as 0).
    pub fn compare(&self, other: &Self) -> ClockOrdering {
        let mut self_greater = false;
        let mut other_greater = false;
        for (replica, &mine) in &self.counters {
            match mine.cmp(&other.counter(replica)) {
                Ordering::Greater => self_greater = true,
                Ordering::Less => other_greater = true,
                Ordering::Equal => {}
            }
        }
        for (replica, &theirs) in &other.counters {
            if !self.counters.contains_key(replica) && theirs > 0 {
                other_greater = true;
            }
        }
        match (self_greater, other_greater) {
            (false, false) => ClockOrdering::Equal,
            (true, false) => ClockOrdering::Newer,
            (false, true) => ClockOrdering::Older,
            (true, true) => ClockOrdering::Concurrent,
        }
    }

    /// Adds one to `replica_uid`'s counter.
    ///
    /// # Errors
    /// [`StoreError::InvalidReplicaUid`] for a bad uid,
    /// [`StoreError::InvalidRevision`] if the counter would overflow.
    pub fn increment(&mut self, replica_uid: &str) -> Result<()> {
        if !is_valid_replica_uid(replica_uid) {
            return Err(StoreError::InvalidReplicaUid);
        }
        let next = self
            .counter(replica_uid)
            .checked_add(1)
            .ok_or(StoreError::InvalidRevision)?;
        self.counters.insert(replica_uid.to_owned(), next);
        Ok(())
    }

    /// u1db's `maximize`: every counter becomes the larger of both clocks'.
    pub fn maximize(&mut self, other: &Self) {
        for (replica, &theirs) in &other.counters {
            let entry = self.counters.entry(replica.clone()).or_insert(0);
            if *entry < theirs {
                *entry = theirs;
            }
        }
    }

    /// The join (least upper bound) of two clocks.
    pub fn join(&self, other: &Self) -> Self {
        let mut joined = self.clone();
        joined.maximize(other);
        joined
    }
}

impl fmt::Display for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (replica, counter) in &self.counters {
            if !first {
                f.write_str("|")?;
            }
            first = false;
            write!(f, "{replica}:{counter}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    fn clock() -> impl Strategy<Value = VectorClock> {
        proptest::collection::btree_map("[a-d]", 1u64..5, 0..4)
            .prop_map(|counters| VectorClock { counters })
    }

    #[test]
    fn parse_examples() {
        let c = VectorClock::parse("a:1|b:2").unwrap();
        assert_eq!(c.counter("a"), 1);
        assert_eq!(c.counter("b"), 2);
        assert_eq!(c.counter("c"), 0);
        assert_eq!(c.to_string(), "a:1|b:2");
        assert!(VectorClock::parse("").unwrap().is_empty());
        for bad in [
            "a",
            "a:",
            ":1",
            "a:0",
            "a:01",
            "a:-1",
            "a:1|",
            "|a:1",
            "b:1|a:1",
            "a:1|a:2",
            "a b:1",
            "a:1:2",
            "a:+1",
            "a:99999999999999999999",
        ] {
            assert!(
                matches!(VectorClock::parse(bad), Err(StoreError::InvalidRevision)),
                "{bad}"
            );
        }
    }

    #[test]
    fn u1db_is_newer_cases() {
        let p = |s| VectorClock::parse(s).unwrap();
        assert!(p("a:1").is_newer(&p("")));
        assert!(!p("").is_newer(&p("a:1")));
        assert!(!p("").is_newer(&p("")));
        assert!(p("a:2").is_newer(&p("a:1")));
        assert!(!p("a:1").is_newer(&p("a:1")));
        assert!(p("a:1|b:1").is_newer(&p("a:1")));
        assert!(!p("a:1").is_newer(&p("b:1")));
        assert!(!p("a:2|b:1").is_newer(&p("a:1|b:2")));
        assert!(p("a:2|b:2").is_newer(&p("a:1|b:2")));
        assert_eq!(p("a:1").compare(&p("b:1")), ClockOrdering::Concurrent);
    }

    #[test]
    fn increment_overflow_is_an_error() {
        let mut c = VectorClock::parse("a:18446744073709551615").unwrap();
        assert!(matches!(c.increment("a"), Err(StoreError::InvalidRevision)));
        assert!(matches!(
            c.increment("bad uid"),
            Err(StoreError::InvalidReplicaUid)
        ));
    }

    proptest! {
        #[test]
        fn roundtrip(c in clock()) {
            prop_assert_eq!(VectorClock::parse(&c.to_string()).unwrap(), c);
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = VectorClock::parse(&s);
        }

        #[test]
        fn check_agrees_with_parse(s in "([a-c]{1,2}:[0-9]{1,2}[|]?){0,3}") {
            let parsed = VectorClock::parse(&s);
            let accepted = parsed.as_ref().is_ok_and(|c| !c.is_empty());
            prop_assert_eq!(check_revision(&s).is_ok(), accepted, "{:?}", s);
        }

        #[test]
        fn compare_is_antisymmetric(a in clock(), b in clock()) {
            let expected = match a.compare(&b) {
                ClockOrdering::Equal => ClockOrdering::Equal,
                ClockOrdering::Newer => ClockOrdering::Older,
                ClockOrdering::Older => ClockOrdering::Newer,
                ClockOrdering::Concurrent => ClockOrdering::Concurrent,
            };
            prop_assert_eq!(b.compare(&a), expected);
            prop_assert_eq!(a.compare(&b) == ClockOrdering::Equal, a == b);
        }

        #[test]
        fn newer_is_transitive(a in clock(), b in clock(), c in clock()) {
            if a.is_newer(&b) && b.is_newer(&c) {
                prop_assert!(a.is_newer(&c));
            }
        }

        #[test]
        fn increment_supersedes(a in clock(), r in "[a-e]") {
            let mut b = a.clone();
            b.increment(&r).unwrap();
            prop_assert!(b.is_newer(&a));
            prop_assert_eq!(b.counter(&r), a.counter(&r) + 1);
        }

        #[test]
        fn join_laws(a in clock(), b in clock(), c in clock()) {
            let ab = a.join(&b);
            // commutative, associative, idempotent
            prop_assert_eq!(&ab, &b.join(&a));
            prop_assert_eq!(ab.join(&c), a.join(&b.join(&c)));
            prop_assert_eq!(a.join(&a), a.clone());
            // upper bound: never older than either side
            prop_assert!(matches!(ab.compare(&a), ClockOrdering::Newer | ClockOrdering::Equal));
            prop_assert!(matches!(ab.compare(&b), ClockOrdering::Newer | ClockOrdering::Equal));
            // join then increment dominates both (u1db's merge rule)
            let mut merged = ab.clone();
            merged.increment("z").unwrap();
            prop_assert!(merged.is_newer(&a) && merged.is_newer(&b));
        }
    }
}
