//! --plot FILE.svg: latency percentiles and deliveries per second over the run, as plain SVG
//! text (two panels sharing the time axis, each with its axis titles, units and a legend).

use std::fmt::Write;

use crate::timeline::Sample;

const WIDTH: f64 = 900.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
/// Top and height of each panel.
const LATENCY: (f64, f64) = (60.0, 230.0);
const RATE: (f64, f64) = (360.0, 170.0);
const HEIGHT: f64 = 580.0;

/// The percentiles drawn, with their colours and dash patterns.
const SERIES: [(&str, &str, &str); 3] = [
    ("p50", "#1b7837", ""),
    ("p90", "#d95f02", "6 3"),
    ("p99", "#7570b3", "2 3"),
];
const RATE_COLOUR: &str = "#2166ac";

/// A round step for about `ticks` divisions of 0..max (1, 2 or 5 times a power of ten), and
/// the top of the axis: the first multiple of it at or above max.
pub fn axis(max: f64, ticks: f64) -> (f64, f64) {
    let max = if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    };
    let rough = max / ticks;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|k| k * power)
        .find(|&s| s >= rough * (1.0 - 1e-9))
        .unwrap_or(10.0 * power);
    (step, step * (max / step - 1e-9).ceil().max(1.0))
}

/// A tick label with as many decimals as the step needs; thousands as k, millions as M.
pub fn label(v: f64, step: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let (v, step, suffix) = if step >= 1e6 {
        (v / 1e6, step / 1e6, "M")
    } else if step >= 1e3 {
        (v / 1e3, step / 1e3, "k")
    } else {
        (v, step, "")
    };
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}{suffix}")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Polylines of (seconds, value) with gaps where a value is missing.
fn path(points: impl Iterator<Item = Option<(f64, f64)>>) -> String {
    let mut d = String::new();
    let mut open = false;
    for p in points {
        match p {
            Some((x, y)) => {
                let _ = write!(d, "{}{x:.1} {y:.1}", if open { "L" } else { "M" });
                open = true;
            }
            None => open = false,
        }
    }
    d
}

struct Panel {
    top: f64,
    height: f64,
    y_max: f64,
    x_max: f64,
}

impl Panel {
    fn x(&self, t: f64) -> f64 {
        LEFT + t / self.x_max * (WIDTH - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        self.top + self.height - v / self.y_max * self.height
    }

    /// Frame, grid, tick labels and axis titles.
    fn axes(&self, svg: &mut String, x_step: f64, y_step: f64, y_title: &str, y_unit_scale: f64) {
        let (l, r) = (LEFT, WIDTH - RIGHT);
        let (t, b) = (self.top, self.top + self.height);
        let mut v = 0.0;
        while v <= self.y_max * (1.0 + 1e-9) {
            let y = self.y(v);
            let _ = write!(
                svg,
                r##"<line x1="{l}" x2="{r}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                l - 6.0,
                y + 4.0,
                label(v * y_unit_scale, y_step * y_unit_scale)
            );
            v += y_step;
        }
        let mut s = 0.0;
        while s <= self.x_max * (1.0 + 1e-9) {
            let x = self.x(s);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{t}" y2="{b}" stroke="#e5e5e5"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                b + 16.0,
                label(s, x_step)
            );
            s += x_step;
        }
        let _ = write!(
            svg,
            r##"<path d="M{l} {t}V{b}H{r}" fill="none" stroke="#555"/><text x="{}" y="{}" text-anchor="middle">time since start (s)</text><text transform="translate(18 {}) rotate(-90)" text-anchor="middle">{}</text>"##,
            (l + r) / 2.0,
            b + 34.0,
            t + self.height / 2.0,
            escape(y_title)
        );
    }
}

/// The whole SVG document.
pub fn svg(title: &str, samples: &[Sample], publish_at: Option<f64>) -> String {
    let x_max_raw = samples
        .last()
        .map_or(1.0, |s| s.at)
        .max(publish_at.unwrap_or(0.0));
    let (x_step, x_max) = axis(x_max_raw, 10.0);
    let worst = samples.iter().filter_map(|s| s.p99).max().unwrap_or(0) as f64;
    let (lat_step, lat_max) = axis(worst, 5.0);
    let (rate_step, rate_max) = axis(samples.iter().map(|s| s.rate).fold(0.0, f64::max), 4.0);
    let latency = Panel {
        top: LATENCY.0,
        height: LATENCY.1,
        y_max: lat_max,
        x_max,
    };
    let rate = Panel {
        top: RATE.0,
        height: RATE.1,
        y_max: rate_max,
        x_max,
    };

    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>
"##,
        escape(title)
    );
    // Latency: the scale is in ns, the labels in ms.
    latency.axes(&mut svg, x_step, lat_step, "delivery latency (ms)", 1e-6);
    for (name, colour, dash) in SERIES {
        let pick = |s: &Sample| match name {
            "p50" => s.p50,
            "p90" => s.p90,
            _ => s.p99,
        };
        let d = path(
            samples
                .iter()
                .map(|s| pick(s).map(|v| (latency.x(s.at), latency.y(v as f64)))),
        );
        let _ = writeln!(
            svg,
            r##"<path id="{name}" d="{d}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-dasharray="{dash}"/>"##
        );
    }
    // Deliveries per second.
    rate.axes(&mut svg, x_step, rate_step, "deliveries per second", 1.0);
    let d = path(samples.iter().map(|s| Some((rate.x(s.at), rate.y(s.rate)))));
    let _ = writeln!(
        svg,
        r##"<path id="rate" d="{d}" fill="none" stroke="{RATE_COLOUR}" stroke-width="1.5"/>"##
    );
    // When publishing began, in both panels.
    if let Some(at) = publish_at {
        let x = latency.x(at);
        let _ = writeln!(
            svg,
            r##"<path d="M{x:.1} {}V{}M{x:.1} {}V{}" stroke="#999" stroke-dasharray="3 3"/><text x="{:.1}" y="{}" fill="#777">publishing</text>"##,
            LATENCY.0,
            LATENCY.0 + LATENCY.1,
            RATE.0,
            RATE.0 + RATE.1,
            x + 4.0,
            LATENCY.0 + 12.0
        );
    }
    // The legend, above each panel.
    let mut x = LEFT;
    let _ = write!(svg, r#"<g id="legend">"#);
    let entries = SERIES
        .iter()
        .map(|(name, colour, dash)| {
            (
                format!("{name} latency (ms)"),
                *colour,
                *dash,
                LATENCY.0 - 10.0,
            )
        })
        .chain(std::iter::once((
            "deliveries/s (unique, all subscribers)".to_string(),
            RATE_COLOUR,
            "",
            RATE.0 - 10.0,
        )));
    for (i, (text, colour, dash, y)) in entries.enumerate() {
        if i == SERIES.len() {
            x = LEFT;
        }
        let _ = write!(
            svg,
            r##"<path d="M{x} {}h24" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{}" y="{}">{}</text>"##,
            y - 4.0,
            x + 30.0,
            y,
            escape(&text)
        );
        x += 190.0;
    }
    svg.push_str("</g>\n</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_have_round_steps_and_cover_the_maximum() {
        for (max, ticks, want) in [
            (1.0, 5.0, (0.2, 1.0)),
            (7.3, 5.0, (2.0, 8.0)),
            (10.0, 10.0, (1.0, 10.0)),
            (123.0, 10.0, (20.0, 140.0)),
            (4_100_000.0, 5.0, (1_000_000.0, 5_000_000.0)),
            (0.0, 5.0, (0.2, 1.0)),
            (f64::NAN, 5.0, (0.2, 1.0)),
        ] {
            let (step, top) = axis(max, ticks);
            assert!(
                (step - want.0).abs() < 1e-9 && (top - want.1).abs() < 1e-6,
                "{max}: {step} {top}"
            );
        }
    }

    #[test]
    fn labels_carry_the_decimals_their_step_needs() {
        for (v, step, want) in [
            (0.0, 0.2, "0"),
            (0.0, 50_000.0, "0"),
            (0.4, 0.2, "0.4"),
            (140.0, 20.0, "140"),
            (2_500.0, 500.0, "2500"),
            (250_000.0, 50_000.0, "250k"),
            (3_000_000.0, 1_000_000.0, "3M"),
            (1_500_000.0, 500_000.0, "1500k"),
        ] {
            assert_eq!(label(v, step), want, "{v} by {step}");
        }
    }

    fn sample(at: f64, rate: f64, p50_ms: Option<f64>) -> Sample {
        let ns = |ms: f64| (ms * 1e6) as u64;
        Sample {
            at,
            delivered: rate as u64,
            rate,
            p50: p50_ms.map(ns),
            p90: p50_ms.map(|m| ns(m * 2.0)),
            p99: p50_ms.map(|m| ns(m * 3.0)),
            max: p50_ms.map(|m| ns(m * 4.0)),
        }
    }

    #[test]
    fn the_plot_has_both_panels_with_titles_units_and_a_legend() {
        let samples = [
            sample(1.0, 0.0, None),
            sample(2.0, 1000.0, Some(1.0)),
            sample(3.0, 2000.0, Some(2.0)),
            sample(4.0, 0.0, None),
            sample(4.5, 500.0, Some(1.0)),
        ];
        let svg = svg("a <run> & more", &samples, Some(1.2));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert!(svg.contains(">a &lt;run&gt; &amp; more</text>"));
        for text in [
            ">delivery latency (ms)<",
            ">deliveries per second<",
            ">time since start (s)<",
            ">p50 latency (ms)<",
            ">p90 latency (ms)<",
            ">p99 latency (ms)<",
            ">deliveries/s (unique, all subscribers)<",
            ">publishing<",
        ] {
            assert!(svg.contains(text), "{text} in {svg}");
        }
        // p99 peaks at 6 ms: the latency axis runs to 6 in 1 ms steps; the rate axis to 2000.
        assert!(
            svg.contains(">6</text>") && !svg.contains(">7</text>"),
            "{svg}"
        );
        assert!(svg.contains(">2000</text>"), "{svg}");
        // Latency lines break where a second had no deliveries: two runs of points each.
        let p50 = svg
            .split("id=\"p50\" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(
            (p50.matches('M').count(), p50.matches('L').count()),
            (2, 1),
            "{p50}"
        );
        let rate = svg
            .split("id=\"rate\" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(
            (rate.matches('M').count(), rate.matches('L').count()),
            (1, 4),
            "{rate}"
        );
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
    }

    #[test]
    fn an_empty_run_still_draws_axes() {
        let svg = svg("nothing", &[], None);
        assert!(svg.contains(">time since start (s)<") && svg.contains("</svg>"));
    }
}
