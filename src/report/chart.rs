//! Charts as SVG text: time-series line charts drawn with plotters, and sparklines.

use chrono::NaiveDateTime;
use maud::{html, Markup};
use plotters::coord::types::RangedDateTime;
use plotters::prelude::*;

use super::data::Series;
use crate::error::Result;
use crate::human;

/// Okabe–Ito colours, told apart by colour-blind readers; yellow is left out, too pale on white.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x00, 0x00, 0x00), // black
];

const SIZE: (u32, u32) = (960, 340);
/// Generic families only: the browser's own fonts, nothing is loaded.
const FONT: &str = "sans-serif";

/// How the time axis is labelled.
#[derive(Clone, Copy)]
pub enum TimeAxis {
    Days,
    Hours,
}

impl TimeAxis {
    pub fn label(self, t: &NaiveDateTime) -> String {
        match self {
            TimeAxis::Days => t.format("%Y-%m-%d").to_string(),
            TimeAxis::Hours => t.format("%m-%d %H:00").to_string(),
        }
    }
    pub fn description(self) -> &'static str {
        match self {
            TimeAxis::Days => "date (UTC)",
            TimeAxis::Hours => "hour (UTC)",
        }
    }
}

/// A line chart of one or more series over time, with a legend when there are several.
pub fn line_chart(
    title: &str,
    y_description: &str,
    series: &[Series],
    axis: TimeAxis,
) -> Result<String> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let (Some(first), Some(last)) = (points().map(|p| p.0).min(), points().map(|p| p.0).max())
    else {
        anyhow::bail!("chart `{title}` has no points");
    };
    // One point still needs a range to sit in.
    let last = if last == first {
        last + chrono::Duration::days(1)
    } else {
        last
    };
    let low = points().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let high = points().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    // Counts start at zero, so their lines' heights compare; measures that go below zero
    // (dBm) keep their own range.
    let (low, high) = if low >= 0.0 {
        (0.0, high.max(1.0) * 1.08)
    } else {
        let pad = ((high - low) * 0.08).max(1.0);
        (low - pad, high + pad)
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(RangedDateTime::from(first..last), low..high)?;
        chart
            .configure_mesh()
            .x_desc(axis.description())
            .y_desc(y_description)
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&|t| axis.label(t))
            .y_label_formatter(&|v| human::float(*v, if high - low < 10.0 { 1 } else { 0 }))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(RGBColor(0xEE, 0xEE, 0xEE))
            .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let drawn = chart.draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?;
            if series.len() > 1 {
                drawn.label(s.name.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            }
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .label_font((FONT, 13))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(0x99, 0x99, 0x99))
                .position(SeriesLabelPosition::LowerRight)
                .draw()?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// A small line of `values` for a table cell, with its range in a tooltip.
pub fn sparkline(values: &[i64], label: &str) -> Markup {
    const W: f64 = 160.0;
    const H: f64 = 28.0;
    let max = values.iter().copied().max().unwrap_or(0);
    let low = values.iter().copied().min().unwrap_or(0);
    let step = W / values.len().saturating_sub(1).max(1) as f64;
    let y = |v: i64| H - 2.0 - (v as f64 / max.max(1) as f64) * (H - 4.0);
    let points = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, y(*v)))
        .collect::<Vec<_>>()
        .join(" ");
    let title = format!("{label}: from {} to {}", human::int(low), human::int(max));
    html! {
        svg.sparkline width=(W) height=(H) viewBox={"0 0 " (W) " " (H)}
            xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title) {
            title { (title) }
            polyline fill="none" stroke="#0072B2" stroke-width="1.5" points=(points) {}
        }
    }
}
