//! The report generator on tiny inputs (`--smoke`: every scenario against a real
//! server on 127.0.0.1, no peer): it writes the markdown with its tables, plots
//! that parse as SVG with labelled axes, and replaces only the README's block.

use std::process::Command;

#[test]
fn smoke_run_writes_tables_plots_and_the_readme_block() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let readme = dir.path().join("README.md");
    std::fs::write(
        &readme,
        "# Project\n\nBefore.\n\n<!-- bench-report:begin -->\nold table\n<!-- bench-report:end -->\n\nAfter.\n",
    )?;
    let extra = dir.path().join("extra.jsonl");
    std::fs::write(
        &extra,
        "{\"scenario\":\"live_latency\",\"p50_ms\":12.5,\"p90_ms\":20.0,\"max_ms\":31.0,\"n\":30}\n\
         {\"scenario\":\"scaling\",\"n\":1000,\"noop_ms\":4.0}\n",
    )?;
    let out = Command::new(env!("CARGO_BIN_EXE_bench-report"))
        .arg("--smoke")
        .arg("--out-dir")
        .arg(dir.path().join("docs"))
        .arg("--readme")
        .arg(&readme)
        .arg("--extra-json")
        .arg(&extra)
        .output()?;
    assert!(
        out.status.success(),
        "bench-report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let markdown = std::fs::read_to_string(dir.path().join("docs/benchmarks.md"))?;
    for heading in [
        "## Device → server → device",
        "## Sync time by document count",
        "## Small syncs on a large store",
        "## Blobs",
        "## Server under concurrent clients",
        "## Live propagation latency",
    ] {
        assert!(markdown.contains(heading), "no {heading:?} in:\n{markdown}");
    }
    assert!(markdown.contains("| 20 × 1 KiB |"), "{markdown}");
    assert!(
        markdown.contains("| Soledad | 12.5 | 20.0 | 31.0 | 30 |"),
        "{markdown}"
    );
    assert!(markdown.contains("\"scenario\":\"scaling\""), "{markdown}");

    let plots: Vec<_> = std::fs::read_dir(dir.path().join("docs/benchmarks"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "svg"))
        .collect();
    assert!(plots.len() >= 4, "{plots:?}");
    for plot in &plots {
        let name = plot
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(
            markdown.contains(&format!("(benchmarks/{name})")),
            "{name} not in the page"
        );
        let text = std::fs::read_to_string(plot)?;
        let svg = roxmltree::Document::parse(&text)?;
        assert_eq!(svg.root_element().tag_name().name(), "svg", "{name}");
        let texts: Vec<&str> = svg
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        // Both axes say what they measure, with a unit in parentheses or a size.
        assert!(
            texts.iter().any(|t| t.contains("(ms)")
                || t.contains("(MB/s")
                || t.contains("(MiB)")
                || t.contains("per second")),
            "{name}: no y axis label with a unit in {texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.contains("size") || t.contains("documents") || t.contains("clients")),
            "{name}: no x axis label in {texts:?}"
        );
        assert!(
            svg.descendants()
                .any(|n| n.has_tag_name("polyline") || n.has_tag_name("path")),
            "{name}: no line"
        );
    }

    let readme = std::fs::read_to_string(&readme)?;
    assert!(
        readme.starts_with("# Project\n\nBefore.\n\n<!-- bench-report:begin -->\n"),
        "{readme}"
    );
    assert!(
        readme.ends_with("<!-- bench-report:end -->\n\nAfter.\n"),
        "{readme}"
    );
    assert!(!readme.contains("old table"), "{readme}");
    assert!(readme.contains("| 20 × 1 KiB |"), "{readme}");
    Ok(())
}
