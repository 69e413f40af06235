//! The SVG chart of a comparison: three panels of grouped bars (medians of the runs that count).
//!
//! | panel | x: one group per                         | bars                  | y                               |
//! |-------|------------------------------------------|-----------------------|---------------------------------|
//! | 1     | closed-loop fan-out scenario             | one per target        | deliveries/s (millions)         |
//! | 2     | (open-loop or unicast scenario, target)  | p50, p99, p999        | latency, µs, log scale          |
//! | 3     | closed-loop fan-out scenario             | one per target        | server CPU s per M deliveries   |
//!
//! Within a group, only the series with a value take room: their bars share the group's width.

use std::path::Path;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::record::Record;
use super::summary::{Scenario, group};

/// Colours of the targets, in first-seen order, and of the percentiles.
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Bars of one panel: group labels and, per series, one optional value per group.
struct Bars {
    title: String,
    y_label: String,
    groups: Vec<String>,
    series: Vec<(String, Vec<Option<f64>>)>,
    log: bool,
}

/// Draws `records` into an SVG file at `out`.
pub fn draw(records: &[Record], out: &Path) -> anyhow::Result<()> {
    let scenarios = group(records);
    let closed: Vec<&Scenario<'_>> =
        scenarios.iter().filter(|s| s.kind() == "bench" && !s.open_loop() && !s.name.contains("unicast")).collect();
    let mut targets: Vec<String> = Vec::new();
    for s in &closed {
        for (t, _) in &s.targets {
            if !targets.contains(t) {
                targets.push(t.clone());
            }
        }
    }
    let per_target = |key: &str, scale: f64| -> Vec<(String, Vec<Option<f64>>)> {
        targets
            .iter()
            .map(|t| (t.clone(), closed.iter().map(|s| s.median(t, key).map(|v| v / scale)).collect()))
            .collect()
    };
    let throughput = Bars {
        title: "Throughput (median deliveries/s, closed loop)".into(),
        y_label: "million deliveries / s".into(),
        groups: closed.iter().map(|s| s.name.clone()).collect(),
        series: per_target("deliv_per_s", 1e6),
        log: false,
    };
    let cpu = Bars {
        title: "Server CPU per delivery (median)".into(),
        y_label: "CPU s per million deliveries".into(),
        groups: throughput.groups.clone(),
        series: per_target("cpu_s_per_M", 1.0),
        log: false,
    };
    let latency_scenarios: Vec<&Scenario<'_>> =
        scenarios.iter().filter(|s| s.kind() == "bench" && (s.open_loop() || s.name.contains("unicast"))).collect();
    let mut groups = Vec::new();
    let mut series: Vec<(String, Vec<Option<f64>>)> =
        ["p50_us", "p99_us", "p999_us"].iter().map(|k| (k.trim_end_matches("_us").to_string(), Vec::new())).collect();
    for s in &latency_scenarios {
        for (t, _) in &s.targets {
            groups.push(format!("{} {t}", s.name));
            for (k, (_, values)) in ["p50_us", "p99_us", "p999_us"].iter().zip(series.iter_mut()) {
                values.push(s.median(t, k));
            }
        }
    }
    let latency = Bars {
        title: "Latency percentiles (median of runs), open loop and unicast".into(),
        y_label: "µs (log scale)".into(),
        groups,
        series,
        log: true,
    };
    let root = SVGBackend::new(out, (1400, 1500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    let panels = root.split_evenly((3, 1));
    for (area, bars) in panels.iter().zip([&throughput, &latency, &cpu]) {
        panel(area, bars)?;
    }
    root.present().map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}

/// Draws one panel of grouped bars with a legend and value labels.
fn panel(area: &DrawingArea<SVGBackend<'_>, Shift>, bars: &Bars) -> anyhow::Result<()> {
    let n = bars.groups.len().max(1);
    let values = bars.series.iter().flat_map(|(_, v)| v.iter().flatten().copied());
    let max = values.clone().fold(0.0f64, f64::max).max(1e-3);
    let min = values.fold(f64::INFINITY, f64::min).min(max);
    // Slot of series k in group g and the bar width there: only series with a value take room.
    let slot = |g: usize, k: usize| -> (f64, f64) {
        let has = |i: usize| bars.series[i].1.get(g).is_some_and(|v| v.is_some());
        let present: Vec<usize> = (0..bars.series.len()).filter(|&i| has(i)).collect();
        let width = 0.8 / present.len().max(1) as f64;
        let pos = present.iter().position(|&i| i == k).unwrap_or(0);
        (g as f64 - 0.4 + pos as f64 * width, width)
    };
    let label = |x: &f64| -> String {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            bars.groups.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let builder = |area| {
        let mut b = ChartBuilder::on(area);
        b.caption(&bars.title, ("sans-serif", 22)).margin(12).x_label_area_size(36).y_label_area_size(80);
        b
    };
    let x_range = -0.5f64..n as f64 - 0.5;
    if bars.log {
        let lo = (min.max(1.0) / 2.0).max(1.0);
        let chart =
            builder(area).build_cartesian_2d(x_range, (lo..max * 10.0).log_scale()).map_err(|e| anyhow!("{e:?}"))?;
        let style = Style { base: lo, decimals: 0, text_y: &|v: f64| v.max(lo) * 1.15 };
        draw_bars(chart, bars, n, &style, &slot, &label)
    } else {
        let chart = builder(area).build_cartesian_2d(x_range, 0f64..max * 1.4).map_err(|e| anyhow!("{e:?}"))?;
        let style = Style { base: 0.0, decimals: 2, text_y: &|v: f64| v + max * 0.03 };
        draw_bars(chart, bars, n, &style, &slot, &label)
    }
}

/// How a panel's bars and labels sit on its y axis (linear or logarithmic).
struct Style<'a> {
    /// Where bars start.
    base: f64,
    /// Decimals of the value labels and the y axis.
    decimals: usize,
    /// Where the value label of a bar of height `v` goes.
    text_y: &'a dyn Fn(f64) -> f64,
}

/// Draws the mesh, the bars with their value labels, and the legend, on either kind of y axis.
fn draw_bars<'a, Y>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    bars: &Bars,
    n: usize,
    style: &Style<'_>,
    slot: &dyn Fn(usize, usize) -> (f64, f64),
    label: &dyn Fn(&f64) -> String,
) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let decimals = style.decimals;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(label)
        .y_label_formatter(&|v| format!("{v:.decimals$}"))
        .y_desc(bars.y_label.as_str())
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    for (k, (name, values)) in bars.series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let rects = values.iter().enumerate().filter_map(|(g, v)| {
            let (x0, width) = slot(g, k);
            v.map(|v| Rectangle::new([(x0, style.base), (x0 + width * 0.9, v.max(style.base))], color.filled()))
        });
        chart
            .draw_series(rects)
            .map_err(|e| anyhow!("{e:?}"))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        let texts = values.iter().enumerate().filter_map(|(g, v)| {
            let (x0, _) = slot(g, k);
            v.map(|v| Text::new(format!("{v:.decimals$}"), (x0, (style.text_y)(v)), ("sans-serif", 11)))
        });
        chart.draw_series(texts).map_err(|e| anyhow!("{e:?}"))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .position(SeriesLabelPosition::UpperMiddle)
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}
