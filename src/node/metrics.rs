//! Metrics in Prometheus's text exposition format (version 0.0.4), which
//! `--metrics-addr` serves at `/metrics`: each family is a `# HELP` line,
//! a `# TYPE` line and its samples, `name{label="value",...} number`.
//! Names follow Prometheus's conventions: a `cashe_` prefix, the unit in
//! the name (`_seconds`, `_bytes`), `_total` on counters. A histogram is
//! its cumulative `_bucket{le="..."}` samples, the last one `le="+Inf"`,
//! then `_sum` and `_count`.
//!
//! Pure: the router builds the families of what its groups know
//! (`Router::metrics`), the shell adds what only it can measure (fsync
//! time, memory, CPU), and `render` writes the text.

use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric family: its samples share a name, a help text and a type.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Added to the family's name: empty, or a histogram's `_bucket`,
    /// `_sum`, `_count`.
    pub suffix: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Family {
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family { name, help, kind, samples: Vec::new() }
    }

    /// A family of one unlabelled sample.
    pub fn single(name: &'static str, kind: Kind, help: &'static str, value: f64) -> Family {
        let mut family = Family::new(name, kind, help);
        family.add(&[], value);
        family
    }

    pub fn add(&mut self, labels: &[(&'static str, &str)], value: f64) {
        let labels = labels.iter().map(|(name, value)| (*name, value.to_string())).collect();
        self.samples.push(Sample { suffix: "", labels, value });
    }

    /// A histogram's samples: `buckets` are `(upper bound, observations at
    /// or below it)`, ascending; `count` is every observation (the `+Inf`
    /// bucket) and `sum` their total.
    pub fn add_histogram(
        &mut self,
        labels: &[(&'static str, &str)],
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        let with = |le: String| {
            let mut all: Vec<(&'static str, String)> =
                labels.iter().map(|(name, value)| (*name, value.to_string())).collect();
            all.push(("le", le));
            all
        };
        for (bound, below) in buckets {
            self.samples.push(Sample {
                suffix: "_bucket",
                labels: with(number(*bound)),
                value: *below as f64,
            });
        }
        self.samples.push(Sample { suffix: "_bucket", labels: with("+Inf".into()), value: count as f64 });
        let plain: Vec<(&'static str, String)> =
            labels.iter().map(|(name, value)| (*name, value.to_string())).collect();
        self.samples.push(Sample { suffix: "_sum", labels: plain.clone(), value: sum });
        self.samples.push(Sample { suffix: "_count", labels: plain, value: count as f64 });
    }
}

/// The text Prometheus scrapes. A family without samples is left out.
pub fn render(families: &[Family]) -> String {
    let mut text = String::new();
    for family in families.iter().filter(|f| !f.samples.is_empty()) {
        let kind = match family.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = family.help.replace('\\', "\\\\").replace('\n', "\\n");
        let name = family.name;
        write!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n")
            .expect("writing to a String cannot fail");
        for sample in &family.samples {
            text.push_str(name);
            text.push_str(sample.suffix);
            if !sample.labels.is_empty() {
                text.push('{');
                for (k, (label, value)) in sample.labels.iter().enumerate() {
                    if k > 0 {
                        text.push(',');
                    }
                    write!(text, "{label}=\"{}\"", escape_label(value))
                        .expect("writing to a String cannot fail");
                }
                text.push('}');
            }
            writeln!(text, " {}", number(sample.value)).expect("writing to a String cannot fail");
        }
    }
    text
}

/// A label value: backslash, double quote and newline escaped.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A sample value as Prometheus writes one: whole numbers without a
/// fraction, `+Inf`, `-Inf`, `NaN`.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < 9.007_199_254_740_992e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let mut commands = Family::new("cashe_commands_total", Kind::Counter, "Commands answered.");
        commands.add(&[("command", "get")], 3.0);
        commands.add(&[("command", "config|get")], 1.0);
        let mut latency = Family::new("cashe_write_latency_seconds", Kind::Histogram, "Write latency.");
        latency.add_histogram(&[], &[(0.001, 2), (0.01, 5)], 0.0125, 6);
        let empty = Family::new("cashe_nothing", Kind::Gauge, "Left out.");
        let term = Family::single("cashe_raft_term", Kind::Gauge, "Term.", 7.0);
        let text = render(&[commands, empty, latency, term]);
        assert_eq!(
            text,
            "# HELP cashe_commands_total Commands answered.\n\
             # TYPE cashe_commands_total counter\n\
             cashe_commands_total{command=\"get\"} 3\n\
             cashe_commands_total{command=\"config|get\"} 1\n\
             # HELP cashe_write_latency_seconds Write latency.\n\
             # TYPE cashe_write_latency_seconds histogram\n\
             cashe_write_latency_seconds_bucket{le=\"0.001\"} 2\n\
             cashe_write_latency_seconds_bucket{le=\"0.01\"} 5\n\
             cashe_write_latency_seconds_bucket{le=\"+Inf\"} 6\n\
             cashe_write_latency_seconds_sum 0.0125\n\
             cashe_write_latency_seconds_count 6\n\
             # HELP cashe_raft_term Term.\n\
             # TYPE cashe_raft_term gauge\n\
             cashe_raft_term 7\n"
        );
    }

    #[test]
    fn escapes_label_values_and_help() {
        let mut errors = Family::new("cashe_errors_total", Kind::Counter, "Errors\\by code\n.");
        errors.add(&[("code", "a\"b\\c\nd")], 1.0);
        let text = render(&[errors]);
        assert!(text.contains("# HELP cashe_errors_total Errors\\\\by code\\n.\n"), "{text}");
        assert!(text.contains("cashe_errors_total{code=\"a\\\"b\\\\c\\nd\"} 1\n"), "{text}");
    }

    #[test]
    fn writes_special_and_fractional_numbers() {
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1e17), "100000000000000000");
        assert_eq!(number(-2.0), "-2");
    }
}
