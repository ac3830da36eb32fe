//! The bridge's `/metrics` (Prometheus text) as a map from series to value, for the counters a row compares before
//! and after its faults.

use std::collections::BTreeMap;

/// One reading of `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    series: BTreeMap<String, f64>,
}

impl Metrics {
    /// Reads `name{labels} value` lines; comments and anything unreadable are skipped.
    pub fn parse(text: &str) -> Metrics {
        let series = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Metrics { series }
    }

    /// The value of one series, e.g. `skillbridge_malformed_frames_total{kind="not_json"}` (0 when absent).
    pub fn get(&self, series: &str) -> f64 {
        self.series.get(series).copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_series() {
        let text = "# HELP x y\nskillbridge_calls_in_flight 3\n\
                    skillbridge_calls_total{skill=\"echo_call\",outcome=\"success\"} 7\n\
                    not a sample\n";
        let metrics = Metrics::parse(text);
        assert_eq!(metrics.get("skillbridge_calls_in_flight"), 3.0);
        assert_eq!(
            metrics.get("skillbridge_calls_total{skill=\"echo_call\",outcome=\"success\"}"),
            7.0
        );
        assert_eq!(metrics.get("absent"), 0.0);
    }
}
