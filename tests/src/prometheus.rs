//! A strict parser of the Prometheus text exposition format (version 0.0.4), for tests
//! that read `/metrics`: every line must be a well-formed `# HELP`, `# TYPE` or sample
//! line, every sample must belong to a family declared by `# TYPE` before it, a family's
//! samples must be contiguous, and a histogram's buckets must be cumulative and end in
//! `+Inf` equal to its `_count`.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A metric family: its type, help and samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Family {
    pub kind: String,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

/// A parsed exposition: families by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    pub families: BTreeMap<String, Family>,
}

impl Exposition {
    /// The value of the sample `name` whose labels include every pair of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.families
            .values()
            .flat_map(|f| &f.samples)
            .find(|s| {
                s.name == name
                    && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse::<f64>().map_err(|_| format!("bad value {text:?}")),
    }
}

/// Parses `{a="x",b="y"}` at the start of `text`; returns the labels and the rest.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) =
            rest.split_once("=\"").ok_or_else(|| format!("bad label in {text:?}"))?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {text:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) | None => {
                    return Err(format!("unterminated label value in {text:?}"))
                }
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} repeated in {text:?}"));
        }
        rest = &after[end + 1..];
        if let Some(after_comma) = rest.strip_prefix(',') {
            rest = after_comma;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} in {text:?}"));
        }
    }
}

/// The family a sample named `name` belongs to, among the declared ones.
fn family_of(families: &BTreeMap<String, Family>, name: &str) -> Option<String> {
    if families.contains_key(name) {
        return Some(name.to_owned());
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        families.get(base).filter(|f| f.kind == "histogram" || f.kind == "summary")?;
        Some(base.to_owned())
    })
}

/// Parses an exposition, refusing anything not well-formed.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut finished: Vec<String> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", number + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), help) => {
                    if !is_metric_name(name) {
                        return Err(at(format!("bad metric name {name:?}")));
                    }
                    families.entry(name.to_owned()).or_default().help =
                        Some(help.unwrap_or("").to_owned());
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_metric_name(name) {
                        return Err(at(format!("bad metric name {name:?}")));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind:?}")));
                    }
                    let family = families.entry(name.to_owned()).or_default();
                    if !family.kind.is_empty() || !family.samples.is_empty() {
                        return Err(at(format!("TYPE of {name} after its samples or twice")));
                    }
                    family.kind = kind.to_owned();
                }
                _ => {} // Other comments are allowed.
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().ok_or_else(|| at("no value".into()))?).map_err(at)?;
        if let Some(timestamp) = fields.next() {
            timestamp.parse::<i64>().map_err(|_| at("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let family = family_of(&families, name).ok_or_else(|| at(format!("{name} has no TYPE")))?;
        if families[&family].kind.is_empty() {
            return Err(at(format!("{family} has HELP but no TYPE")));
        }
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(at(format!("samples of {family} are not contiguous")));
            }
            if let Some(previous) = current.replace(family.clone()) {
                finished.push(previous);
            }
        }
        if let Some(family) = families.get_mut(&family) {
            family.samples.push(Sample { name: name.to_owned(), labels, value });
        }
    }
    for (name, family) in &families {
        if family.kind == "histogram" {
            check_histogram(name, family)?;
        }
    }
    Ok(Exposition { families })
}

/// Buckets are cumulative and the `+Inf` bucket equals `_count`, for each label set.
fn check_histogram(name: &str, family: &Family) -> Result<(), String> {
    type LabelPairs = Vec<(String, String)>;
    let mut series: BTreeMap<LabelPairs, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts: BTreeMap<LabelPairs, f64> = BTreeMap::new();
    for sample in &family.samples {
        let mut labels = sample.labels.clone();
        if sample.name.ends_with("_bucket") {
            let le = labels.remove("le").ok_or_else(|| format!("{name}: bucket without le"))?;
            let key = labels.into_iter().collect();
            series.entry(key).or_default().push((parse_value(&le)?, sample.value));
        } else if sample.name.ends_with("_count") {
            counts.insert(labels.into_iter().collect(), sample.value);
        }
    }
    for (labels, buckets) in &series {
        let increasing = buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        if !increasing {
            return Err(format!("{name}{labels:?}: buckets are not cumulative: {buckets:?}"));
        }
        let last = buckets.last().filter(|(le, _)| le.is_infinite());
        match (last, counts.get(labels)) {
            (Some((_, inf)), Some(count)) if inf == count => {}
            _ => return Err(format!("{name}{labels:?}: +Inf bucket and _count disagree")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1\\\"\\n\"} 3\n\
        # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 2.5\nh_count 2\n";

    #[test]
    fn a_well_formed_exposition_parses() {
        let parsed = parse(GOOD).expect("parsed");
        assert_eq!(parsed.value("a_total", &[("x", "1\"\n")]), Some(3.0));
        assert_eq!(parsed.value("h_count", &[]), Some(2.0));
        assert_eq!(parsed.families["h"].kind, "histogram");
    }

    #[test]
    fn malformed_expositions_are_refused() {
        for bad in [
            "a 1\n",                                                    // no TYPE
            "# TYPE a gauge\na{x=1} 1\n",                               // unquoted label value
            "# TYPE a gauge\na one\n",                                  // bad value
            "# TYPE a gauge\na 1 2 3\n",                                // trailing fields
            "# TYPE a wibble\na 1\n",                                   // unknown type
            "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na 2\n",          // not contiguous
            "# TYPE 1a gauge\n",                                        // bad name
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n", // count mismatch
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn every_other_strictness_check_refuses() {
        for bad in [
            "# TYPE a gauge\na 1\n# TYPE a gauge\n", // TYPE after samples
            "# HELP a Things.\na 1\n",               // HELP but no TYPE
            "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n", // repeated label
            "# TYPE a gauge\na{x=\"\\t\"} 1\n",      // unknown escape
            "# TYPE a gauge\na{x=\"1} 1\n",          // unterminated value
            "# TYPE a gauge\na{1x=\"1\"} 1\n",       // bad label name
            "# TYPE a gauge\na{x=\"1\" y=\"2\"} 1\n", // no comma
            "# TYPE a gauge\na 1 soon\n",            // bad timestamp
            "# TYPE a gauge\na\n",                   // no value
            "# TYPE a gauge\na_count 1\n",           // suffix of a gauge
            "# TYPE h histogram\nh_bucket 1\nh_count 1\n", // bucket without le
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n", // no +Inf bucket
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_bucket{le=\"1\"} 1\nh_count 1\n",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn timestamps_comments_and_special_values_are_accepted() {
        let text = "# a comment\n#no space\n# TYPE a gauge\na 1 1700000000000\n\
                    a{x=\"y\"} NaN\n# TYPE b gauge\nb -Inf\n";
        let parsed = parse(text).expect("parsed");
        assert!(parsed.value("a", &[("x", "y")]).is_some_and(f64::is_nan));
        assert_eq!(parsed.value("b", &[]), Some(f64::NEG_INFINITY));
    }
}
