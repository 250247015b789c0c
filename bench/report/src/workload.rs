//! The documents every system is given: JSON objects of incompressible text.

/// A JSON object of about `size` bytes of incompressible text (`{"body":"..."}`).
pub(crate) fn filler(seed: usize, size: usize) -> String {
    let mut state = u64::try_from(seed)
        .unwrap_or(u64::MAX)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut text = String::with_capacity(size + 16);
    text.push_str("{\"body\":\"");
    while text.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let pick = usize::try_from(state % 62).unwrap_or(0);
        text.push(char::from(ALPHABET.get(pick).copied().unwrap_or(b'A')));
    }
    text.push_str("\"}");
    text
}

/// The id of the `index`-th document of a scenario.
pub(crate) fn doc_id(index: usize) -> String {
    format!("doc-{index:06}")
}

/// The median of `values` (the upper one of an even count); 0 when empty.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_is_json_of_the_size_asked() {
        let text = filler(7, 10 * 1024);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert!(value.get("body").is_some());
        assert!((10 * 1024..10 * 1024 + 3).contains(&text.len()));
    }

    #[test]
    fn median_takes_the_middle() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[]), 0.0);
    }
}
