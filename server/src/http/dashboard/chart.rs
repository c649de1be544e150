//! Bar charts as inline SVG, drawn on the server: one or two series per bucket, a
//! horizontal grid, and the plan's limit as a dashed line when it fits the scale.

use std::fmt::Write;

use super::render::esc;

/// One series of values, one per bucket.
pub(super) struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<f64>,
}

/// What to draw.
pub(super) struct ChartSpec<'a> {
    /// For the accessible name.
    pub title: &'a str,
    /// One label per bucket.
    pub labels: &'a [String],
    pub series: &'a [Series<'a>],
    /// A limit line.
    pub limit: Option<f64>,
    /// How a value reads (`1.2 KiB`, `3`).
    pub format: &'a dyn Fn(f64) -> String,
}

const W: f64 = 560.0;
const H: f64 = 210.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 26.0;
const COLORS: [&str; 2] = ["#6366f1", "#22d3ee"];

/// The chart as an `<svg>` element, and whether the limit line is on it (a limit far
/// above the data would flatten every bar, so it is then only named in the legend).
pub(super) fn bars(spec: &ChartSpec<'_>) -> (String, bool) {
    let max_value = spec
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0_f64, f64::max);
    let limit_drawn = spec
        .limit
        .is_some_and(|l| l > 0.0 && (max_value == 0.0 && l <= 10.0 || l <= max_value * 4.0));
    let top_value = if limit_drawn {
        max_value.max(spec.limit.unwrap_or(0.0))
    } else {
        max_value
    };
    // Gridlines every `step` (1, 2 or 5 × 10ⁿ), four or five of them.
    let step = nice_ceiling((top_value * 1.1).max(1.0) / 4.0);
    let lines = ((top_value * 1.1).max(1.0) / step).ceil().max(1.0);
    let scale_max = step * lines;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h - (v / scale_max) * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{}" preserveAspectRatio="xMidYMid meet">"#,
        esc(spec.title)
    );
    for i in 0..=(lines as u32) {
        let v = step * f64::from(i);
        let gy = y(v);
        let _ = write!(
            svg,
            r#"<line class="grid-line" x1="{LEFT}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            gy + 4.0,
            esc(&(spec.format)(v))
        );
    }
    let n = spec.labels.len().max(1);
    let slot = plot_w / n as f64;
    let group = (slot * 0.78).min(56.0);
    let per = group / spec.series.len().max(1) as f64;
    for (si, series) in spec.series.iter().enumerate() {
        for (i, value) in series.values.iter().enumerate() {
            if *value <= 0.0 {
                continue;
            }
            let x = LEFT + slot * i as f64 + (slot - group) / 2.0 + per * si as f64;
            let top = y(*value);
            let height = (TOP + plot_h - top).max(1.0);
            let label = spec.labels.get(i).map(String::as_str).unwrap_or("");
            let _ = write!(
                svg,
                r#"<rect class="bar" x="{x:.1}" y="{top:.1}" width="{:.1}" height="{height:.1}" rx="1.5" style="fill:{}"><title>{} · {}: {}</title></rect>"#,
                (per - 0.6).max(0.8),
                COLORS[si % COLORS.len()],
                esc(label),
                esc(series.name),
                esc(&(spec.format)(*value))
            );
        }
    }
    let base = TOP + plot_h;
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{base:.1}" x2="{:.1}" y2="{base:.1}"/>"#,
        W - RIGHT
    );
    // First, middle and last bucket labels.
    let mut shown = vec![0, n / 2, n.saturating_sub(1)];
    shown.dedup();
    for i in shown {
        if let Some(label) = spec.labels.get(i) {
            let x = LEFT + slot * i as f64 + slot / 2.0;
            let anchor = if i == 0 {
                "start"
            } else if i + 1 == n {
                "end"
            } else {
                "middle"
            };
            let x = match anchor {
                "start" => LEFT,
                "end" => W - RIGHT,
                _ => x,
            };
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
                H - 8.0,
                esc(label)
            );
        }
    }
    if let (true, Some(limit)) = (limit_drawn, spec.limit) {
        let ly = y(limit);
        let _ = write!(
            svg,
            r#"<line class="limit" x1="{LEFT}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}"/><text class="limit-label" x="{:.1}" y="{:.1}" text-anchor="end">plan limit {}</text>"#,
            W - RIGHT,
            W - RIGHT - 2.0,
            ly - 4.0,
            esc(&(spec.format)(limit))
        );
    }
    svg.push_str("</svg>");
    (svg, limit_drawn)
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if step * magnitude >= v {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("h{i}")).collect()
    }

    #[test]
    fn bars_scale_to_the_data_and_draw_a_near_limit() {
        let labels = labels(4);
        let series = [Series {
            name: "peak",
            values: vec![0.0, 3.0, 8.0, 1.0],
        }];
        let format = |v: f64| format!("{v:.0}");
        let (svg, drawn) = bars(&ChartSpec {
            title: "Peak <connections>",
            labels: &labels,
            series: &series,
            limit: Some(10.0),
            format: &format,
        });
        assert!(drawn);
        assert_eq!(svg.matches("<rect").count(), 3, "zero values draw no bar");
        assert!(svg.contains(r#"class="limit""#));
        assert!(svg.contains("plan limit 10"));
        assert!(svg.contains("Peak &lt;connections&gt;"));
        assert!(svg.contains("h0") && svg.contains("h3"));
    }

    #[test]
    fn a_far_limit_is_not_drawn() {
        let labels = labels(2);
        let series = [Series {
            name: "peak",
            values: vec![1.0, 2.0],
        }];
        let format = |v: f64| format!("{v:.0}");
        let (svg, drawn) = bars(&ChartSpec {
            title: "t",
            labels: &labels,
            series: &series,
            limit: Some(200.0),
            format: &format,
        });
        assert!(!drawn);
        assert!(!svg.contains(r#"class="limit""#));
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(3.3), 5.0);
        assert_eq!(nice_ceiling(11.0), 20.0);
        assert_eq!(nice_ceiling(0.4), 0.5);
    }
}
