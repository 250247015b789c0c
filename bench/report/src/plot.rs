//! Line charts on log–log axes, as SVG. No font is loaded: plotters (without its
//! `ttf`/`ab_glyph` features) estimates text extents and writes SVG `<text>`,
//! which the viewer renders with its own fonts.

use std::path::Path;

use plotters::prelude::*;

/// One line of a chart.
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) points: Vec<(f64, f64)>,
    pub(crate) color: RGBColor,
    /// Dashed (used for the raw floor).
    pub(crate) dashed: bool,
}

/// A chart: title, axis descriptions (with units) and how tick values are written.
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) y_label: String,
    pub(crate) x_ticks: fn(f64) -> String,
    pub(crate) series: Vec<Series>,
}

/// Soledad's colour, and the others'.
pub(crate) const SOLEDAD: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
pub(crate) const SOLEDAD_2: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
pub(crate) const FLOOR: RGBColor = RGBColor(0x55, 0x55, 0x55);
pub(crate) const POUCHDB: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
pub(crate) const COMDB: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// Draws `chart` into the SVG file `path` (both axes logarithmic).
pub(crate) fn draw(chart: &Chart, path: &Path) -> anyhow::Result<()> {
    let points = || {
        chart
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| *x > 0.0 && *y > 0.0 && x.is_finite() && y.is_finite())
    };
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (1.0, 10.0, 1.0, 10.0);
    }
    let (x0, x1, y0, y1) = (x0 / 1.6, x1 * 1.6, y0 / 2.5, y1 * 2.5);

    let root = SVGBackend::new(path, (860, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut plot = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(78)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    let x_ticks = chart.x_ticks;
    plot.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.12))
        .x_labels(10)
        .y_labels(10)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 13))
        .x_label_formatter(&|v| x_ticks(*v))
        .y_label_formatter(&|v| number(*v))
        .draw()?;
    for series in &chart.series {
        let line: Vec<(f64, f64)> = series
            .points
            .iter()
            .copied()
            .filter(|(x, y)| *x > 0.0 && *y > 0.0)
            .collect();
        let style = series.color.stroke_width(2);
        let drawn = if series.dashed {
            plot.draw_series(DashedLineSeries::new(line.clone(), 8, 5, style))?
        } else {
            plot.draw_series(LineSeries::new(line.clone(), style))?
        };
        let color = series.color;
        drawn.label(series.name.as_str()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(2))
        });
        plot.draw_series(line.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
    }
    plot.configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// `1 KiB`, `16 MiB`, `1 GiB` (binary units, as the sizes are chosen).
pub(crate) fn bytes(v: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = v;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if value >= 10.0 || (value - value.round()).abs() < 0.05 {
        format!("{value:.0} {name}")
    } else {
        format!("{value:.1} {name}")
    }
}

/// Tick labels of a byte axis (ticks fall on powers of ten): `1 kB`, `10 MB`, `1 GB`.
pub(crate) fn si_bytes(v: f64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = v;
    let mut unit = 0;
    while value >= 999.5 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!(
        "{} {}",
        number(value),
        UNITS.get(unit).copied().unwrap_or("B")
    )
}

/// `0.5`, `20`, `1.5k`, `100k`.
pub(crate) fn number(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.0}M", v / 1e6)
    } else if v >= 1e3 {
        let k = v / 1e3;
        if (k - k.round()).abs() < 0.05 {
            format!("{k:.0}k")
        } else {
            format!("{k:.1}k")
        }
    } else if v >= 10.0 || (v - v.round()).abs() < 0.001 {
        format!("{v:.0}")
    } else if v >= 0.1 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_read_as_a_person_writes_them() {
        assert_eq!(bytes(1024.0), "1 KiB");
        assert_eq!(bytes(1024.0 * 1024.0 * 1024.0), "1 GiB");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(number(100_000.0), "100k");
        assert_eq!(si_bytes(1000.0), "1 kB");
        assert_eq!(si_bytes(1e9), "1 GB");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(20.0), "20");
    }
}
