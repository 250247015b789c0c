//! PADMÉ padding lengths (Nikitin et al., "Reducing Metadata Leakage from Encrypted
//! Files and Communication with PURBs", PETS 2019).
//!
//! A length `L` is rounded up so that only its top ⌊log₂ log₂ L⌋ + 1 bits may be
//! non-zero. The overhead `(padme(L) − L) / L` is below `2^(E−S) / 2^E = 2^−S`
//! (E = ⌊log₂ L⌋, S = ⌊log₂ E⌋ + 1); its maximum over all L is 11.63 % (L = 129 → 144),
//! so ≤ 12 % always (unit-tested), and the number of distinct padded lengths up to L is
//! O(log L · log log L), so an observer learns roughly the order of magnitude only.

/// The PADMÉ padded length of `len` (`len` itself for `len` < 2).
pub fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - u64::from(len.leading_zeros()); // ⌊log₂ L⌋ ≥ 1
    let s = 64 - u64::from(e.leading_zeros()); // ⌊log₂ E⌋ + 1
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    // len < 2^63 in every caller (sizes are capped far lower), so this cannot overflow.
    len.saturating_add(mask) & !mask
}

#[cfg(test)]
mod tests {
    use super::padme;

    #[test]
    fn known_values() {
        // Values from the PURBs paper's definition, computed by hand.
        assert_eq!(padme(0), 0);
        assert_eq!(padme(1), 1);
        assert_eq!(padme(7), 7);
        assert_eq!(padme(9), 10);
        assert_eq!(padme(100), 104);
        assert_eq!(padme(1000), 1024);
        assert_eq!(padme(1025), 1088);
        assert_eq!(padme(1 << 20), 1 << 20);
        assert_eq!(padme((1 << 20) + 1), (1 << 20) + (1 << 15));
        // The worst case: 129 → 144 (+11.63 %).
        assert_eq!(padme(129), 144);
    }

    #[test]
    fn overhead_is_at_most_twelve_percent_and_monotone() {
        let mut previous = 0;
        for len in 1..200_000u64 {
            let padded = padme(len);
            assert!(padded >= len);
            assert!(
                (padded - len) * 100 <= len * 12,
                "len {len} padded {padded}"
            );
            assert!(padded >= previous);
            previous = padded;
        }
    }
}
