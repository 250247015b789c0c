//! The peer (`bench/peer/peer.js`): run with `node`, its JSON lines read back.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::results::PeerLine;

/// Runs the peer script with `runs` runs per figure; its progress goes to stderr.
pub(crate) fn run(script: &Path, runs: usize) -> anyhow::Result<Vec<PeerLine>> {
    let out = Command::new("node")
        .arg(script)
        .args(["--runs", &runs.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running node (is Node.js installed?)")?;
    if !out.status.success() {
        bail!("the peer failed ({})", out.status);
    }
    let text = String::from_utf8(out.stdout).context("the peer's output is not UTF-8")?;
    read_lines(&text)?
        .into_iter()
        .map(|value| serde_json::from_value(value).context("a peer line of an unknown shape"))
        .collect()
}

/// The JSON objects of `text`, one a line (blank lines and lines not starting
/// with `{` are skipped, so a harness's other output may surround them).
pub(crate) fn read_lines(text: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_lines_among_other_output() -> anyhow::Result<()> {
        let text = "running...\n{\"scenario\":\"live_latency\",\"p50_ms\":3.5,\"p90_ms\":5,\"max_ms\":9,\"n\":30}\n\n";
        let lines = read_lines(text)?;
        assert_eq!(lines.len(), 1);
        let line: PeerLine = serde_json::from_value(lines.into_iter().next().unwrap_or_default())?;
        assert!(matches!(line, PeerLine::Live { ref system, n: 30, .. } if system == "soledad"));
        Ok(())
    }
}
