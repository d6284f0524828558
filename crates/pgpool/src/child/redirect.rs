//! database_redirect_preference_list and app_name_redirect_preference_list: entries
//! `regex:target[(weight)]` separated by commas, where target is `primary`, `standby`
//! or a node id and weight (0..1, default 1) is the probability that a session whose
//! database / application name matches the whole regex gets that target as its
//! load-balance node. The application-name list is looked at first.

use regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Primary,
    Standby,
    Node(usize),
}

#[derive(Debug, Clone)]
pub struct Rule {
    pattern: Regex,
    pub target: Target,
    pub weight: f64,
}

/// Parses one preference list; a bad entry is reported and skipped.
pub fn parse_list(list: &str, what: &str) -> Vec<Rule> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((pat, spec)) = entry.rsplit_once(':') else {
            log::warn!("{what}: entry \"{entry}\" has no ':' and is ignored");
            continue;
        };
        let (spec, weight) = match spec.split_once('(') {
            Some((t, w)) => match w.trim_end_matches(')').trim().parse::<f64>() {
                Ok(w) if (0.0..=1.0).contains(&w) => (t.trim(), w),
                _ => {
                    log::warn!("{what}: bad weight in \"{entry}\"; entry ignored");
                    continue;
                }
            },
            None => (spec.trim(), 1.0),
        };
        let target = match spec.to_ascii_lowercase().as_str() {
            "primary" => Target::Primary,
            "standby" => Target::Standby,
            n => match n.parse::<usize>() {
                Ok(id) => Target::Node(id),
                Err(_) => {
                    log::warn!("{what}: unknown target \"{spec}\" in \"{entry}\"; entry ignored");
                    continue;
                }
            },
        };
        match Regex::new(&format!("^(?:{})$", pat.trim())) {
            Ok(pattern) => out.push(Rule {
                pattern,
                target,
                weight,
            }),
            Err(e) => log::warn!("{what}: bad pattern in \"{entry}\": {e}"),
        }
    }
    out
}

/// The first rule matching `name`.
pub fn find<'a>(rules: &'a [Rule], name: &str) -> Option<&'a Rule> {
    rules.iter().find(|r| r.pattern.is_match(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pgpool_style_lists() {
        let r = parse_list(
            "postgres:primary,mydb[0-4]:1,mydb5:2(0.5),bi.*:standby, bad",
            "x",
        );
        assert_eq!(r.len(), 4);
        assert_eq!(
            find(&r, "postgres").map(|r| r.target),
            Some(Target::Primary)
        );
        assert_eq!(find(&r, "mydb3").map(|r| r.target), Some(Target::Node(1)));
        let m = find(&r, "mydb5").unwrap();
        assert_eq!((m.target, m.weight), (Target::Node(2), 0.5));
        assert_eq!(
            find(&r, "bi_reports").map(|r| r.target),
            Some(Target::Standby)
        );
        assert!(find(&r, "mydb55").is_none(), "patterns match whole names");
    }

    #[test]
    fn rejects_bad_entries() {
        assert!(parse_list("x:nowhere,y:1(2.0),z:1(abc),(:1", "x").is_empty());
    }
}
