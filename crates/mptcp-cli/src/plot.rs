//! Per-subflow time series of a simulator run: a tidy CSV and two SVG charts
//! (goodput and congestion window over time, one line per subflow).
//!
//! SVG through plotters without its font features: text goes into the file as
//! `<text>` elements for the viewer to render, so no font is bundled or looked up.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mptcp_sim::Recorder;
use mptcp_sim::traffic::Summary;
use plotters::prelude::*;

/// One subflow's series, ready to draw.
struct Line {
    /// "flow0/sf1 10.2.0.1 -> 10.0.0.1".
    label: String,
    connection: String,
    subflow: String,
    local: String,
    remote: String,
    /// (seconds, Mbit/s).
    goodput: Vec<(f64, f64)>,
    /// (seconds, bytes).
    cwnd: Vec<(f64, f64)>,
}

fn lines(summary: &Summary, recorder: &Recorder) -> Vec<Line> {
    let points = |name: &str, scale: f64| -> Vec<(f64, f64)> {
        recorder.series(name).map_or_else(Vec::new, |s| {
            s.points()
                .iter()
                .map(|(t, v)| (t.total_micros() as f64 / 1e6, v * scale))
                .collect()
        })
    };
    let mut out = Vec::new();
    for c in &summary.connections {
        for sf in &c.subflows {
            let subflow = if c.kind == "mptcp" {
                format!("sf{}", sf.id)
            } else {
                "tcp".to_owned()
            };
            let host = |a: &str| a.rsplit_once(':').map_or(a, |(h, _)| h).to_owned();
            out.push(Line {
                label: format!(
                    "{}/{} {} -> {}",
                    c.flow,
                    subflow,
                    host(&sf.local),
                    host(&sf.remote)
                ),
                connection: c.flow.clone(),
                subflow,
                local: sf.local.clone(),
                remote: sf.remote.clone(),
                goodput: points(&sf.goodput_series, 1e-6),
                cwnd: points(&sf.cwnd_series, 1.0),
            });
        }
    }
    out
}

/// Writes `subflows.csv`, `goodput.svg` and `cwnd.svg` into `dir`; returns their paths.
pub fn write_subflow_series(
    dir: &Path,
    summary: &Summary,
    recorder: &Recorder,
) -> anyhow::Result<Vec<PathBuf>> {
    let lines = lines(summary, recorder);
    let csv = dir.join("subflows.csv");
    write_csv(&csv, &lines).with_context(|| format!("writing {}", csv.display()))?;
    let title = |what: &str| format!("{what} per subflow: {}", summary.scenario);
    let goodput = dir.join("goodput.svg");
    chart(
        &goodput,
        &title("Goodput"),
        "Mbit/s",
        lines
            .iter()
            .map(|l| (l.label.as_str(), l.goodput.as_slice())),
    )
    .with_context(|| format!("drawing {}", goodput.display()))?;
    let cwnd = dir.join("cwnd.svg");
    let cwnd_kb: Vec<Vec<(f64, f64)>> = lines
        .iter()
        .map(|l| l.cwnd.iter().map(|&(t, b)| (t, b / 1000.0)).collect())
        .collect();
    chart(
        &cwnd,
        &title("Congestion window"),
        "kB",
        lines
            .iter()
            .zip(&cwnd_kb)
            .map(|(l, p)| (l.label.as_str(), p.as_slice())),
    )
    .with_context(|| format!("drawing {}", cwnd.display()))?;
    Ok(vec![csv, goodput, cwnd])
}

/// Tidy CSV, one row per subflow and sample time; a cell is empty when that series
/// had no sample then (a subflow not yet open, or closed).
fn write_csv(path: &Path, lines: &[Line]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(fs::File::create(path)?);
    writeln!(
        out,
        "connection,subflow,local,remote,time_s,goodput_mbps,cwnd_bytes"
    )?;
    for line in lines {
        // Keyed by microseconds: both series are sampled at the same ticks.
        let mut rows: BTreeMap<u64, (Option<f64>, Option<f64>)> = BTreeMap::new();
        for &(t, v) in &line.goodput {
            rows.entry((t * 1e6).round() as u64).or_default().0 = Some(v);
        }
        for &(t, v) in &line.cwnd {
            rows.entry((t * 1e6).round() as u64).or_default().1 = Some(v);
        }
        for (us, (goodput, cwnd)) in rows {
            writeln!(
                out,
                "{},{},{},{},{}.{:06},{},{}",
                line.connection,
                line.subflow,
                line.local,
                line.remote,
                us / 1_000_000,
                us % 1_000_000,
                goodput.map_or(String::new(), |v| format!("{v:.6}")),
                cwnd.map_or(String::new(), |v| format!("{v:.0}")),
            )?;
        }
    }
    out.flush()
}

fn chart<'a>(
    path: &Path,
    title: &str,
    y_desc: &str,
    series: impl Iterator<Item = (&'a str, &'a [(f64, f64)])> + Clone,
) -> anyhow::Result<()> {
    let (x_max, y_max) = series
        .clone()
        .flat_map(|(_, points)| points.iter())
        .fold((0.0f64, 0.0f64), |(x, y), &(px, py)| (x.max(px), y.max(py)));
    // Some head room above the highest point, and a non-empty range when idle.
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(y_desc)
        .draw()
        .map_err(plot_error)?;
    for (i, (label, points)) in series.enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}
