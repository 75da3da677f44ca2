//! The time axis: seconds since the run started to x pixels, and ticks at round steps (1, 2,
//! 5 × a power of ten below a minute; 15 s, 30 s, minutes, hours above) spaced so that their
//! labels never crowd.

/// Steps the axis may use, in seconds.
const STEPS: [f64; 27] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10_800.0, 21_600.0, 43_200.0, 86_400.0,
];

/// Maps run time to x.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// x of time 0.
    pub x0: f64,
    /// Pixels from time 0 to the end.
    pub width: f64,
    /// Seconds shown (the run's length; at least a millisecond).
    pub span: f64,
}

impl Scale {
    /// `span` seconds over `width` pixels from `x0`.
    pub fn new(x0: f64, width: f64, span: f64) -> Self {
        Scale {
            x0,
            width,
            span: if span.is_finite() && span > 0.001 {
                span
            } else {
                0.001
            },
        }
    }

    /// The x of time `t` (clamped to the axis).
    pub fn x(&self, t: f64) -> f64 {
        self.x0 + (t / self.span).clamp(0.0, 1.0) * self.width
    }

    /// Pixels for `d` seconds.
    pub fn px(&self, d: f64) -> f64 {
        d.max(0.0) / self.span * self.width
    }

    /// The step between ticks: the smallest at least `min_px` apart.
    pub fn step(&self, min_px: f64) -> f64 {
        STEPS
            .iter()
            .copied()
            .find(|s| self.px(*s) >= min_px)
            .unwrap_or(STEPS[STEPS.len() - 1])
    }

    /// Ticks from 0 to the end: (time, label).
    pub fn ticks(&self, min_px: f64) -> Vec<(f64, String)> {
        let step = self.step(min_px);
        let n = (self.span / step + 1e-9).floor() as usize;
        // A run shorter than a second is labelled in ms throughout, a longer one in seconds.
        let ms = self.span < 1.0;
        (0..=n)
            .map(|i| {
                let t = i as f64 * step;
                (t, label(t, step, ms))
            })
            .collect()
    }
}

/// A tick's label: `0`, `250 ms` (`ms`), `1.5 s`, `45 s`, `1m30s`, `2h`, `1h30m`.
fn label(t: f64, step: f64, ms: bool) -> String {
    if t == 0.0 {
        return "0".into();
    }
    if ms {
        return format!("{} ms", (t * 1000.0).round());
    }
    if step < 1.0 {
        let decimals = if step >= 0.1 { 1 } else { 2 };
        return format!("{t:.decimals$} s");
    }
    let s = t.round() as u64;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 && s % 60 == 0 => format!("{}m", s / 60),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_spaced() {
        let labels = |span: f64| -> Vec<String> {
            Scale::new(0.0, 900.0, span)
                .ticks(64.0)
                .into_iter()
                .map(|(_, l)| l)
                .collect()
        };
        assert_eq!(
            labels(13.8),
            [
                "0", "1 s", "2 s", "3 s", "4 s", "5 s", "6 s", "7 s", "8 s", "9 s", "10 s", "11 s",
                "12 s", "13 s"
            ]
        );
        assert_eq!(
            labels(0.9),
            [
                "0", "100 ms", "200 ms", "300 ms", "400 ms", "500 ms", "600 ms", "700 ms",
                "800 ms", "900 ms"
            ]
        );
        assert_eq!(labels(2.5)[..4], ["0", "0.2 s", "0.4 s", "0.6 s"]);
        assert_eq!(labels(400.0)[..4], ["0", "30 s", "1m", "1m30s"]);
        assert_eq!(labels(5.0 * 3600.0)[..3], ["0", "30m", "1h"]);
        let s = Scale::new(100.0, 900.0, 13.8);
        assert_eq!(s.x(0.0), 100.0);
        assert_eq!(s.x(13.8), 1000.0);
        assert_eq!(s.x(99.0), 1000.0);
        // A run of no length still has an axis.
        assert_eq!(Scale::new(0.0, 900.0, 0.0).ticks(64.0)[0].1, "0");
    }
}
